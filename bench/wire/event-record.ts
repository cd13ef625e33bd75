/**
 * src/wire/event-record.ts: the events topic's value (stratus.v1.kafka.EventRecord), encoded by the
 * gateway once per partition per turn and decoded by the processor. Per event, for records of 1
 * and of 50 events, against the earlier one-event layout (event-codec.ts), protobufjs reading the
 * same .proto and JSON.
 *
 *   node dist/bench/wire/event-record.js [--quick]
 */
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { PROJECT_ROOT } from '../../src/config.js';
import { decodeEvent, encodeEvent } from '../../src/wire/event-codec.js';
import { decodeEventRecord, encodeEventRecord, type AcceptedEvent } from '../../src/wire/event-record.js';
import { microBench } from '../micro-bench.js';

const N = 50;
const events: AcceptedEvent[] = Array.from({ length: N }, (_, i) => ({ deviceId: `device-${100_000 + i}`, seq: 123_456 + i, value: 42.5, sentAtUs: 1_790_000_000_000_000, receivedAtUs: 1_790_000_000_001_234, type: 'sq', payload: Buffer.alloc(32, 7) }));
const root = await protobuf.load(join(PROJECT_ROOT, 'proto', 'stratus', 'v1', 'kafka.proto'));
const EventRecord = root.lookupType('stratus.v1.kafka.EventRecord');
const one = encodeEventRecord(events.slice(0, 1));
const many = encodeEventRecord(events);
const v1 = events.map((e) => encodeEvent(e));
const json = Buffer.from(JSON.stringify(events.map((e) => ({ ...e, payload: Buffer.from(e.payload).toString('base64') }))));

await microBench(`wire/event-record: encode ${N} events`, [
  { name: `encodeEventRecord, one record of ${N}`, fn: () => encodeEventRecord(events) },
  { name: `encodeEventRecord, ${N} records of 1`, fn: () => events.map((e) => encodeEventRecord([e])) },
  { name: `encodeEvent (earlier layout), ${N} records`, fn: () => events.map((e) => encodeEvent(e)) },
  { name: `protobufjs EventRecord.encode, one record of ${N}`, fn: () => EventRecord.encode({ events }).finish() },
  { name: 'JSON.stringify + base64 payloads', fn: () => Buffer.from(JSON.stringify(events.map((e) => ({ ...e, payload: Buffer.from(e.payload).toString('base64') })))) },
]);
await microBench(`wire/event-record: decode ${N} events`, [
  { name: `decodeEventRecord, one record of ${N}`, fn: () => decodeEventRecord(many, null) },
  { name: `decodeEventRecord, ${N} records of 1`, fn: () => { for (let i = 0; i < N; i++) decodeEventRecord(one, null); } },
  { name: `decodeEvent (earlier layout), ${N} records`, fn: () => v1.map((b) => decodeEvent(b)) },
  { name: `protobufjs EventRecord.decode, one record of ${N}`, fn: () => EventRecord.decode(many) },
  { name: 'JSON.parse + base64 payloads', fn: () => (JSON.parse(json.toString()) as { payload: string }[]).map((o) => Buffer.from(o.payload, 'base64')) },
]);
