/**
 * The results topic's value: stratus.v1.kafka.ResultRecord (proto/stratus/v1/kafka.proto), the
 * results of many devices in one record. Each DeviceResult's bytes are also the body of the result
 * in Redis (the device's buffer, delivery frames): the forwarder passes views of the record on,
 * never a copy. Results of the earlier layout (first byte 1, device id in the record's key:
 * result-codec.ts) are read too, in the topic and in Redis.
 */
import { decodeResultV1, RESULT_FORMAT } from './result-codec.js';
import { delimitedSize, mapRepeated, ProtoReader, ProtoWriter, varintSize } from './proto-wire.js';
import { ErrorCode, StratusError } from '../errors.js';
import { readEventField } from './event-record.js';

export interface DeviceResult {
  deviceId: string;
  seq: number;
  type: string;
  value: number;
  payload: Uint8Array;
  sentAtUs: number;
  receivedAtUs: number;
  processedAtUs: number;
}

/** One DeviceResult message (no tag or length of its own). */
export function encodeResult(r: DeviceResult): Buffer {
  const dl = Buffer.byteLength(r.deviceId);
  const tl = Buffer.byteLength(r.type);
  const size =
    delimitedSize(dl) +
    1 + varintSize(r.seq) +
    delimitedSize(tl) +
    9 +
    delimitedSize(r.payload.length) +
    1 + varintSize(r.sentAtUs) +
    1 + varintSize(r.receivedAtUs) +
    1 + varintSize(r.processedAtUs);
  const w = new ProtoWriter(Buffer.allocUnsafe(size));
  w.string(1, r.deviceId, dl);
  w.uint(2, r.seq);
  w.string(3, r.type, tl);
  w.double(4, r.value);
  w.bytes(5, r.payload);
  w.uint(6, r.sentAtUs);
  w.uint(7, r.receivedAtUs);
  w.uint(8, r.processedAtUs);
  if (w.at !== size) throw new Error(`result sized ${size} bytes but ${w.at} written`);
  return w.buf;
}

/** A ResultRecord of results encoded by encodeResult, in order. */
export function encodeResultRecord(results: readonly Buffer[]): Buffer {
  let size = 0;
  for (const r of results) size += delimitedSize(r.length);
  const w = new ProtoWriter(Buffer.allocUnsafe(size));
  for (const r of results) w.bytes(1, r);
  return w.buf;
}

/** A result's size inside a record (tag and length included). */
export function resultRecordBytes(result: Buffer): number {
  return delimitedSize(result.length);
}

/** One result of a record: its device, seq and bytes (a view into the record). */
export interface RecordResult {
  deviceId: string;
  seq: number;
  bytes: Buffer;
}

/** The record's results in order, without decoding more than device and seq. */
export function splitResultRecord(value: Buffer, key: Buffer | null): RecordResult[] {
  if (value.length > 0 && value[0] === RESULT_FORMAT) {
    if (key === null) throw new StratusError(ErrorCode.WIRE_CORRUPT, 'a result record of the single-result layout has no key (device id)');
    return [{ deviceId: key.toString('utf8'), seq: decodeResultV1(value).seq, bytes: value }];
  }
  return mapRepeated(value, (start, end) => ({ ...deviceAndSeq(value, start, end), bytes: value.subarray(start, end) }));
}

function deviceAndSeq(buf: Buffer, start: number, end: number): { deviceId: string; seq: number } {
  let deviceId = '';
  let seq = 0;
  const r = new ProtoReader(buf, start, end);
  while (!r.done) {
    const { field, wireType } = r.tag();
    if (field === 1 && wireType === 2) deviceId = r.string();
    else if (field === 2 && wireType === 0) seq = r.uint();
    else r.skip(wireType);
  }
  return { deviceId, seq };
}

/** Gateway receive and processor times (µs) of a result in this file's layout, nothing else decoded. */
export function resultTimesUs(buf: Buffer): { receivedAtUs: number; processedAtUs: number } {
  if (buf.length > 0 && buf[0] === RESULT_FORMAT) {
    const v1 = decodeResultV1(buf);
    return { receivedAtUs: v1.receivedAtUs, processedAtUs: v1.processedAtUs };
  }
  let receivedAtUs = 0;
  let processedAtUs = 0;
  const r = new ProtoReader(buf);
  while (!r.done) {
    const { field, wireType } = r.tag();
    if (field === 7 && wireType === 0) receivedAtUs = r.int();
    else if (field === 8 && wireType === 0) processedAtUs = r.int();
    else r.skip(wireType);
  }
  return { receivedAtUs, processedAtUs };
}

/** A result's body as Redis holds it (either layout); deviceId is '' for the earlier layout. */
export function decodeResult(buf: Buffer): DeviceResult {
  if (buf.length > 0 && buf[0] === RESULT_FORMAT) return { deviceId: '', ...decodeResultV1(buf) };
  const d: DeviceResult = { deviceId: '', seq: 0, type: '', value: 0, payload: EMPTY, sentAtUs: 0, receivedAtUs: 0, processedAtUs: 0 };
  const r = new ProtoReader(buf);
  while (!r.done) {
    const { field, wireType } = r.tag();
    if (field === 8 && wireType === 0) d.processedAtUs = r.int();
    else if (!readEventField(r, field, wireType, d)) r.skip(wireType);
  }
  return d;
}

const EMPTY = Buffer.alloc(0);
