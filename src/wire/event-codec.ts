/**
 * The earlier layout of an events record (before proto/stratus/v1/kafka.proto's EventRecord), still
 * read (event-record.ts); written only by tests. One accepted device event; the key is the device id (UTF-8), so every
 * event of a device lands in one partition, in order. Numbers are little-endian doubles: seq and
 * microsecond clocks stay exact up to 2^53-1, which the gateway enforces.
 *
 *   offset  size  field
 *   0       1     format version (1)
 *   1       8     seq            f64, integer 1 .. 2^53-1
 *   9       8     value          f64
 *   17      8     sentAtUs       f64, device clock
 *   25      8     receivedAtUs   f64, gateway clock
 *   33      1     typeLen        n <= 255
 *   34      n     type           UTF-8 (processor name)
 *   34+n    4     payloadLen     u32 m
 *   38+n    m     payload
 */
import { ErrorCode, StratusError } from '../errors.js';

export const EVENT_FORMAT = 1;
const HEADER = 34;

export interface WireEvent {
  seq: number;
  value: number;
  sentAtUs: number;
  receivedAtUs: number;
  type: string;
  payload: Uint8Array;
}

export function encodeEvent(e: WireEvent): Buffer {
  const typeLen = Buffer.byteLength(e.type);
  const buf = Buffer.allocUnsafe(HEADER + typeLen + 4 + e.payload.length);
  buf[0] = EVENT_FORMAT;
  buf.writeDoubleLE(e.seq, 1);
  buf.writeDoubleLE(e.value, 9);
  buf.writeDoubleLE(e.sentAtUs, 17);
  buf.writeDoubleLE(e.receivedAtUs, 25);
  buf[33] = typeLen;
  buf.write(e.type, HEADER, 'utf8');
  buf.writeUInt32LE(e.payload.length, HEADER + typeLen);
  buf.set(e.payload, HEADER + typeLen + 4);
  return buf;
}

export function decodeEvent(buf: Buffer): WireEvent {
  if (buf.length < HEADER + 4 || buf[0] !== EVENT_FORMAT) throw corrupt('event', buf);
  const typeLen = buf[33]!;
  const payloadAt = HEADER + typeLen + 4;
  if (buf.length < payloadAt) throw corrupt('event', buf);
  const payloadLen = buf.readUInt32LE(HEADER + typeLen);
  if (buf.length !== payloadAt + payloadLen) throw corrupt('event', buf);
  return {
    seq: buf.readDoubleLE(1),
    value: buf.readDoubleLE(9),
    sentAtUs: buf.readDoubleLE(17),
    receivedAtUs: buf.readDoubleLE(25),
    type: buf.toString('utf8', HEADER, HEADER + typeLen),
    payload: buf.subarray(payloadAt),
  };
}

export function corrupt(what: string, buf: Buffer): StratusError {
  return new StratusError(ErrorCode.WIRE_CORRUPT, `${what} value of ${buf.length} bytes is not format ${EVENT_FORMAT} (first byte ${buf[0] ?? 'none'}): truncated, or written by another version`);
}
