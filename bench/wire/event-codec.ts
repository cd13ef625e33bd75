/**
 * src/wire/event-codec.ts: the events topic's value, encoded once per accepted event at the
 * gateway and decoded once per event at the processor. Compared with what it could have been:
 * protobuf (the gateway's own stratus.v1.Event through protobufjs) and JSON.
 *
 *   node dist/bench/wire/event-codec.js [--quick]
 */
import { codecs } from '../../src/gateway/protocol.js';
import { decodeEvent, encodeEvent, type WireEvent } from '../../src/wire/event-codec.js';
import { microBench } from '../micro-bench.js';

const event: WireEvent = { seq: 123_456, value: 42.5, sentAtUs: 1_790_000_000_000_000, receivedAtUs: 1_790_000_000_001_234, type: 'sq', payload: Buffer.alloc(32, 7) };
const asProto = { deviceId: '', seq: event.seq, type: event.type, value: event.value, payload: event.payload, sentAtUs: event.sentAtUs };
const asJson = { ...event, payload: Buffer.from(event.payload).toString('base64') };

const binary = encodeEvent(event);
const proto = codecs.Event.serialize(asProto as never);
const json = Buffer.from(JSON.stringify(asJson));

await microBench('wire/event-codec: encode', [
  { name: 'encodeEvent (fixed binary layout)', fn: () => encodeEvent(event) },
  { name: 'protobufjs stratus.v1.Event', fn: () => codecs.Event.serialize(asProto as never) },
  { name: 'JSON.stringify + base64 payload', fn: () => Buffer.from(JSON.stringify({ ...event, payload: Buffer.from(event.payload).toString('base64') })) },
]);
await microBench('wire/event-codec: decode', [
  { name: 'decodeEvent (fixed binary layout)', fn: () => decodeEvent(binary) },
  { name: 'protobufjs stratus.v1.Event (decodeRaw)', fn: () => codecs.Event.decodeRaw(proto) },
  { name: 'JSON.parse + base64 payload', fn: () => { const o = JSON.parse(json.toString()); o.payload = Buffer.from(o.payload, 'base64'); return o; } },
]);
