/**
 * src/processor/compute-worker.ts compute(): the processor's work on a batch of events (decode,
 * run the `sq` processor, encode the result), as it runs per Kafka batch, inline or on a piscina
 * thread. Compared with the naive pipeline's way (bench/baselines/naive-pipeline: JSON in, JSON
 * out, one event at a time) and with protobufjs decoding the same fields. Per batch of 256 events.
 *
 *   node dist/bench/processor/compute-worker.js [--quick]
 */
import { codecs } from '../../src/gateway/protocol.js';
import { compute } from '../../src/processor/compute-worker.js';
import { encodeEvent } from '../../src/wire/event-codec.js';
import { encodeEventRecord } from '../../src/wire/event-record.js';
import { microBench } from '../micro-bench.js';

const N = 256;
const events = Array.from({ length: N }, (_, i) => ({ deviceId: `device-${i}`, seq: i + 1, value: i - 128, sentAtUs: 1_790_000_000_000_000, receivedAtUs: 1_790_000_000_000_500, type: 'sq', payload: Buffer.alloc(32, i) }));
const record = [{ value: encodeEventRecord(events), key: null }];
const v1 = events.map((e) => ({ value: encodeEvent(e), key: Buffer.from(e.deviceId) }));
const json = events.map((e) => Buffer.from(JSON.stringify({ deviceId: `device-${e.seq}`, seq: e.seq, value: e.value, sentAtUs: e.sentAtUs, type: e.type, payload: e.payload.toString('base64') })));
const proto = events.map((e) => codecs.Event.serialize({ deviceId: '', seq: e.seq, type: e.type, value: e.value, payload: e.payload, sentAtUs: e.sentAtUs }));
if (compute(record).results.length !== N || compute(v1).results.length !== N) throw new Error('compute() skipped an event of the batch');

await microBench('processor/compute-worker: a batch of 256 sq events', [
  { name: 'compute(), one EventRecord of 256', fn: () => compute(record) },
  { name: 'compute(), 256 records of the earlier one-event layout', fn: () => compute(v1) },
  {
    name: 'JSON per event (the naive pipeline)',
    fn: () => {
      for (const b of json) {
        const e = JSON.parse(b.toString()) as { deviceId: string; seq: number; value: number; sentAtUs: number; type: string; payload: string };
        Buffer.from(JSON.stringify({ ...e, value: e.value * e.value, processedAtUs: Date.now() * 1000 }));
      }
    },
  },
  {
    name: 'protobufjs Event decode + Downlink result encode',
    fn: () => {
      for (const b of proto) {
        const e = codecs.Event.decodeRaw(b);
        codecs.Downlink.serialize({ results: [{ seq: e.seq, type: e.type, value: (e.value ?? 0) * (e.value ?? 0), payload: e.payload ?? Buffer.alloc(0), sentAtUs: e.sentAtUs ?? 0, processedAtUs: Date.now() * 1000 }] });
      }
    },
  },
]);
