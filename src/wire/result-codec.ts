/**
 * The earlier layout of a result (before proto/stratus/v1/kafka.proto's DeviceResult): the value of
 * a results record keyed by its device id, and the body of a result in Redis. Still read
 * (result-record.ts), so records and buffers written before stay readable; written only by tests.
 * Little-endian doubles as in event-codec.ts.
 *
 *   offset  size  field
 *   0       1     format version (1)
 *   1       8     seq            f64
 *   9       8     value          f64 (the processor's output)
 *   17      8     sentAtUs       f64, device clock, echoed
 *   25      8     receivedAtUs   f64, gateway clock (ingest), for per-stage latency
 *   33      8     processedAtUs  f64, processor clock
 *   41      1     typeLen        n
 *   42      n     type
 *   42+n    4     payloadLen     m
 *   46+n    m     payload
 */
import { corrupt } from './event-codec.js';

export const RESULT_FORMAT = 1;
const HEADER = 42;

export interface WireResult {
  seq: number;
  value: number;
  sentAtUs: number;
  receivedAtUs: number;
  processedAtUs: number;
  type: string;
  payload: Uint8Array;
}

export function encodeResultV1(r: WireResult): Buffer {
  const typeLen = Buffer.byteLength(r.type);
  const buf = Buffer.allocUnsafe(HEADER + typeLen + 4 + r.payload.length);
  buf[0] = RESULT_FORMAT;
  buf.writeDoubleLE(r.seq, 1);
  buf.writeDoubleLE(r.value, 9);
  buf.writeDoubleLE(r.sentAtUs, 17);
  buf.writeDoubleLE(r.receivedAtUs, 25);
  buf.writeDoubleLE(r.processedAtUs, 33);
  buf[41] = typeLen;
  buf.write(r.type, HEADER, 'utf8');
  buf.writeUInt32LE(r.payload.length, HEADER + typeLen);
  buf.set(r.payload, HEADER + typeLen + 4);
  return buf;
}

export function decodeResultV1(buf: Buffer): WireResult {
  if (buf.length < HEADER + 4 || buf[0] !== RESULT_FORMAT) throw corrupt('result', buf);
  const typeLen = buf[41]!;
  const payloadAt = HEADER + typeLen + 4;
  if (buf.length < payloadAt) throw corrupt('result', buf);
  const payloadLen = buf.readUInt32LE(HEADER + typeLen);
  if (buf.length !== payloadAt + payloadLen) throw corrupt('result', buf);
  return {
    seq: buf.readDoubleLE(1),
    value: buf.readDoubleLE(9),
    sentAtUs: buf.readDoubleLE(17),
    receivedAtUs: buf.readDoubleLE(25),
    processedAtUs: buf.readDoubleLE(33),
    type: buf.toString('utf8', HEADER, HEADER + typeLen),
    payload: buf.subarray(payloadAt),
  };
}
