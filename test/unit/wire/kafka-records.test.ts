/**
 * The Kafka records (proto/stratus/v1/kafka.proto): the hand-written codecs round-trip, read the
 * earlier one-event layout, refuse what is not a record, and agree byte for byte with protobufjs
 * reading the .proto file: what any Kafka consumer with that file decodes.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import protobuf from 'protobufjs';
import { PROJECT_ROOT } from '../../../src/config.js';
import { ErrorCode, StratusError } from '../../../src/errors.js';
import { encodeEvent } from '../../../src/wire/event-codec.js';
import { decodeEventRecord, encodeEventRecord, eventRecordBytes, type AcceptedEvent } from '../../../src/wire/event-record.js';
import { encodeResultV1 } from '../../../src/wire/result-codec.js';
import { decodeResult, encodeResult, encodeResultRecord, resultRecordBytes, resultTimesUs, splitResultRecord, type DeviceResult } from '../../../src/wire/result-record.js';

const isCorrupt = (err: unknown) => err instanceof StratusError && err.code === ErrorCode.WIRE_CORRUPT;

const EVENTS: AcceptedEvent[] = [
  { deviceId: 'd1', seq: 1, type: 'sq', value: 0, payload: new Uint8Array(0), sentAtUs: 0, receivedAtUs: 0 },
  { deviceId: 'dev-ü-型', seq: Number.MAX_SAFE_INTEGER, type: 'échø', value: -0, payload: Buffer.alloc(70_000, 0xab), sentAtUs: -1, receivedAtUs: 1_795_000_000_000_000 },
  { deviceId: 'x'.repeat(300), seq: 2 ** 32 + 5, type: 'echo', value: -1.5e300, payload: Buffer.from([0, 255, 1]), sentAtUs: -(2 ** 40) - 3, receivedAtUs: 2 ** 53 - 1 },
];

const sameEvent = (a: AcceptedEvent, b: AcceptedEvent) => {
  assert.equal(a.deviceId, b.deviceId);
  assert.equal(a.seq, b.seq);
  assert.equal(a.type, b.type);
  assert.ok(Object.is(a.value, b.value), `${a.value} vs ${b.value}`);
  assert.deepEqual(Buffer.from(a.payload), Buffer.from(b.payload));
  assert.equal(a.sentAtUs, b.sentAtUs);
  assert.equal(a.receivedAtUs, b.receivedAtUs);
};

test('event records round-trip exactly, in order, edge values included; eventRecordBytes bounds each event', () => {
  const rec = encodeEventRecord(EVENTS);
  const got = decodeEventRecord(rec, null);
  assert.equal(got.length, EVENTS.length);
  EVENTS.forEach((e, i) => sameEvent(got[i]!, e));
  assert.ok(rec.length <= EVENTS.reduce((n, e) => n + eventRecordBytes(e), 0));
  assert.deepEqual(decodeEventRecord(encodeEventRecord([]), null), []);
});

test('an event record of the earlier one-event layout is read with its key as the device', () => {
  const e = EVENTS[2]!;
  const v1 = encodeEvent({ seq: e.seq, value: e.value, sentAtUs: e.sentAtUs, receivedAtUs: e.receivedAtUs, type: e.type, payload: e.payload });
  const [got] = decodeEventRecord(v1, Buffer.from(e.deviceId));
  sameEvent(got!, e);
  assert.throws(() => decodeEventRecord(v1, null), isCorrupt);
});

test('result records: split gives each device, seq and the DeviceResult bytes (a view, no copy); decodeResult reads both layouts', () => {
  const results: DeviceResult[] = EVENTS.map((e, i) => ({ ...e, value: e.value * 2, processedAtUs: 1_795_000_000_000_123 + i }));
  const bodies = results.map(encodeResult);
  const rec = encodeResultRecord(bodies);
  assert.equal(rec.length, bodies.reduce((n, b) => n + resultRecordBytes(b), 0));
  const split = splitResultRecord(rec, null);
  assert.deepEqual(split.map((s) => [s.deviceId, s.seq]), results.map((r) => [r.deviceId, r.seq]));
  split.forEach((s, i) => {
    assert.equal(s.bytes.buffer, rec.buffer, 'a view into the record');
    assert.deepEqual(s.bytes, bodies[i]);
    const d = decodeResult(s.bytes);
    sameEvent(d, results[i]!);
    assert.equal(d.processedAtUs, results[i]!.processedAtUs);
    assert.deepEqual(resultTimesUs(s.bytes), { receivedAtUs: results[i]!.receivedAtUs, processedAtUs: results[i]!.processedAtUs });
  });
  const v1 = encodeResultV1({ seq: 7, value: 49, sentAtUs: 1, receivedAtUs: 2, processedAtUs: 3, type: 'sq', payload: Buffer.alloc(0) });
  assert.deepEqual(splitResultRecord(v1, Buffer.from('dev')).map((s) => [s.deviceId, s.seq, s.bytes]), [['dev', 7, v1]]);
  assert.equal(decodeResult(v1).seq, 7);
  assert.deepEqual(resultTimesUs(v1), { receivedAtUs: 2, processedAtUs: 3 });
});

test('truncated or foreign values throw WIRE_CORRUPT', () => {
  const rec = encodeEventRecord(EVENTS.slice(0, 2));
  for (const bad of [rec.subarray(0, rec.length - 1), rec.subarray(0, 5), Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), Buffer.from([0x0b])]) {
    assert.throws(() => decodeEventRecord(bad, null), isCorrupt);
  }
  const res = encodeResultRecord([encodeResult({ ...EVENTS[0]!, processedAtUs: 1 })]);
  assert.throws(() => splitResultRecord(res.subarray(0, res.length - 1), null), isCorrupt);
});

test('protobufjs reading proto/stratus/v1/kafka.proto decodes the records to the same values, and its encoding reads back', async () => {
  const root = await protobuf.load(join(PROJECT_ROOT, 'proto', 'stratus', 'v1', 'kafka.proto'));
  const EventRecord = root.lookupType('stratus.v1.kafka.EventRecord');
  const ResultRecord = root.lookupType('stratus.v1.kafka.ResultRecord');
  const asNumber = (v: unknown) => (typeof v === 'object' && v !== null ? Number(String(v)) : Number(v));
  const decoded = EventRecord.toObject(EventRecord.decode(encodeEventRecord(EVENTS)), { longs: String, defaults: true }) as { events: Record<string, unknown>[] };
  assert.equal(decoded.events.length, EVENTS.length);
  decoded.events.forEach((d, i) => {
    const e = EVENTS[i]!;
    assert.equal(d.deviceId, e.deviceId);
    assert.equal(asNumber(d.seq), e.seq);
    assert.equal(d.type, e.type);
    assert.ok(Object.is(d.value, e.value));
    assert.deepEqual(Buffer.from(d.payload as Uint8Array), Buffer.from(e.payload));
    assert.equal(asNumber(d.sentAtUs), e.sentAtUs);
    assert.equal(asNumber(d.receivedAtUs), e.receivedAtUs);
  });
  // A record another producer wrote with protobufjs (fields it leaves at their defaults omitted).
  const foreign = Buffer.from(EventRecord.encode(EventRecord.fromObject({ events: [{ deviceId: 'p', seq: 3, type: 'sq', value: 2 }, { deviceId: 'q', seq: 4, type: 'echo', sentAtUs: -5 }] })).finish());
  assert.deepEqual(decodeEventRecord(foreign, null).map((e) => [e.deviceId, e.seq, e.type, e.value, e.sentAtUs, e.payload.length]), [['p', 3, 'sq', 2, 0, 0], ['q', 4, 'echo', 0, -5, 0]]);
  const r: DeviceResult = { ...EVENTS[1]!, processedAtUs: 9 };
  const res = ResultRecord.toObject(ResultRecord.decode(encodeResultRecord([encodeResult(r)])), { longs: String }) as { results: Record<string, unknown>[] };
  assert.equal(res.results[0]!.deviceId, r.deviceId);
  assert.equal(asNumber(res.results[0]!.seq), r.seq);
  assert.equal(asNumber(res.results[0]!.processedAtUs), 9);
  assert.equal(asNumber(res.results[0]!.sentAtUs), -1);
});
