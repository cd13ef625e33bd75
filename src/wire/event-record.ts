/**
 * The events topic's value: stratus.v1.kafka.EventRecord (proto/stratus/v1/kafka.proto), the
 * events of many devices in one record, in the order the gateway took them. A record of the
 * earlier layout (one event, first byte 1, the device id in the key: event-codec.ts) is read too.
 */
import { ErrorCode, StratusError } from '../errors.js';
import { decodeEvent, EVENT_FORMAT } from './event-codec.js';
import { delimitedSize, mapRepeated, ProtoReader, ProtoWriter, varintSize } from './proto-wire.js';

export interface AcceptedEvent {
  deviceId: string;
  seq: number;
  type: string;
  value: number;
  payload: Uint8Array;
  sentAtUs: number;
  receivedAtUs: number;
}

/** An event's encoded size inside a record (its tag and length included), for record limits. */
export function eventRecordBytes(e: AcceptedEvent): number {
  return delimitedSize(bodySize(e, e.deviceId.length * 3, e.type.length * 3));
}

function bodySize(e: AcceptedEvent, deviceLen: number, typeLen: number): number {
  return (
    delimitedSize(deviceLen) +
    1 + varintSize(e.seq) +
    delimitedSize(typeLen) +
    9 +
    delimitedSize(e.payload.length) +
    1 + varintSize(e.sentAtUs) +
    1 + varintSize(e.receivedAtUs)
  );
}

export function encodeEventRecord(events: readonly AcceptedEvent[]): Buffer {
  const lens = new Array<number>(events.length * 3);
  let size = 0;
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    const dl = Buffer.byteLength(e.deviceId);
    const tl = Buffer.byteLength(e.type);
    const body = bodySize(e, dl, tl);
    lens[i * 3] = dl;
    lens[i * 3 + 1] = tl;
    lens[i * 3 + 2] = body;
    size += delimitedSize(body);
  }
  const w = new ProtoWriter(Buffer.allocUnsafe(size));
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    w.tag(1, 2);
    w.varint(lens[i * 3 + 2]!);
    w.string(1, e.deviceId, lens[i * 3]!);
    w.uint(2, e.seq);
    w.string(3, e.type, lens[i * 3 + 1]!);
    w.double(4, e.value);
    w.bytes(5, e.payload);
    w.uint(6, e.sentAtUs);
    w.uint(7, e.receivedAtUs);
  }
  if (w.at !== size) throw new Error(`event record sized ${size} bytes but ${w.at} written`);
  return w.buf;
}

/** The record's events in order. `key`: the record's key, the device id of a record of the earlier layout. */
export function decodeEventRecord(value: Buffer, key: Buffer | null): AcceptedEvent[] {
  if (value.length > 0 && value[0] === EVENT_FORMAT) {
    if (key === null) throw new StratusError(ErrorCode.WIRE_CORRUPT, 'an event record of the single-event layout has no key (device id)');
    const e = decodeEvent(value);
    return [{ deviceId: key.toString('utf8'), seq: e.seq, type: e.type, value: e.value, payload: e.payload, sentAtUs: e.sentAtUs, receivedAtUs: e.receivedAtUs }];
  }
  return mapRepeated(value, (start, end) => decodeAcceptedEvent(value, start, end));
}

function decodeAcceptedEvent(buf: Buffer, start: number, end: number): AcceptedEvent {
  const e: AcceptedEvent = { deviceId: '', seq: 0, type: '', value: 0, payload: EMPTY, sentAtUs: 0, receivedAtUs: 0 };
  const r = new ProtoReader(buf, start, end);
  while (!r.done) {
    const { field, wireType } = r.tag();
    if (!readEventField(r, field, wireType, e)) r.skip(wireType);
  }
  return e;
}

/**
 * Reads one of fields 1..7, which AcceptedEvent and DeviceResult share (same numbers and types),
 * into `e`; false for any other field (the caller reads or skips it).
 */
export function readEventField(r: ProtoReader, field: number, wireType: number, e: AcceptedEvent): boolean {
  if (field === 1 && wireType === 2) e.deviceId = r.string();
  else if (field === 2 && wireType === 0) e.seq = r.uint();
  else if (field === 3 && wireType === 2) e.type = r.string();
  else if (field === 4 && wireType === 1) e.value = r.double();
  else if (field === 5 && wireType === 2) e.payload = r.bytes();
  else if (field === 6 && wireType === 0) e.sentAtUs = r.int();
  else if (field === 7 && wireType === 0) e.receivedAtUs = r.int();
  else return false;
  return true;
}

const EMPTY = Buffer.alloc(0);
