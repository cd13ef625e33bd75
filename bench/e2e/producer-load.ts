/**
 * The gateway's Kafka producer (src/kafka/native/producer.ts, with the gateway's settings from Config)
 * producing N records as fast as it is allowed: records are queued until the producer's queue
 * refuses (kafka.producerQueueMax, as the gateway sheds), then it waits for delivery reports.
 * Every record is awaited to its delivery report. Prints JSON: records/s, events/s, MB/s and the
 * produce-to-delivery-report latency percentiles. The topic is created and deleted here.
 *
 * --events-per-record K > 0: each record is an EventRecord (proto/stratus/v1/kafka.proto) of K
 * `sq` events with 32-byte payloads of devices of one partition, encoded per record as the gateway
 * does, to that partition (round robin). K = 0: records of --record-bytes, keyed by device id.
 *
 *   node dist/bench/e2e/producer-load.js --records 1000000 --events-per-record 0 --record-bytes 72 --keys 1000
 *   node dist/bench/e2e/producer-load.js --records 20000 --events-per-record 50
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import * as hdr from 'hdr-histogram-js';
import { loadConfig } from '../../src/config.js';
import { deleteTopics, ensureTopics } from '../../src/kafka/admin.js';
import { KafkaProducer } from '../../src/kafka/native/producer.js';
import { partitionOf } from '../../src/kafka/partitioner.js';
import { encodeEventRecord, type AcceptedEvent } from '../../src/wire/event-record.js';

const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '1000000' },
    'record-bytes': { type: 'string', default: '72' },
    keys: { type: 'string', default: '1000' },
    partitions: { type: 'string', default: '12' },
    'events-per-record': { type: 'string', default: '0' },
  },
});
const perRecord = Number(values['events-per-record']);
const n = Number(values.records);
const size = Number(values['record-bytes']);
const config = loadConfig();
const topic = `${config.kafka.topicPrefix}bench-producer-${randomUUID().slice(0, 8)}`;
await ensureTopics(config, [{ topic, partitions: Number(values.partitions) }]);
const keys = Array.from({ length: Number(values.keys) }, (_, i) => `device-${i}`);
const value = Buffer.alloc(size, 0x61);
const partitions = Number(values.partitions);
// Per partition, the events of one record: devices of that partition, as the gateway groups them.
const byPartition: AcceptedEvent[][] = Array.from({ length: partitions }, () => []);
if (perRecord > 0) {
  for (let d = 0; byPartition.some((evs) => evs.length < perRecord); d++) {
    const deviceId = `device-${d}`;
    const evs = byPartition[partitionOf(deviceId, partitions)]!;
    if (evs.length < perRecord) evs.push({ deviceId, seq: 1_000 + d, type: 'sq', value: d, payload: Buffer.alloc(32, 7), sentAtUs: 1_790_000_000_000_000, receivedAtUs: 1_790_000_000_000_500 });
  }
}
let bytesSent = 0;
const latency = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
const sentAt = new Float64Array(n);
let delivered = 0;
let failed = 0;
let wake: (() => void) | null = null;
const producer = await KafkaProducer.connect(config, 'bench-producer', (err, opaque) => {
  const i = opaque as number;
  if (err !== null) failed++;
  latency.recordValue(Math.max(1, Math.round((performance.now() - sentAt[i]!) * 1000)));
  delivered++;
  if (wake !== null) {
    const w = wake;
    wake = null;
    w();
  }
});
const waitForReports = () => new Promise<void>((resolve) => (wake = resolve));

const t0 = performance.now();
for (let i = 0; i < n; ) {
  sentAt[i] = performance.now();
  let ok: boolean;
  if (perRecord > 0) {
    const rec = encodeEventRecord(byPartition[i % partitions]!);
    ok = producer.produce(topic, i % partitions, null, rec, i);
    if (ok) bytesSent += rec.length;
  } else {
    ok = producer.produce(topic, null, keys[i % keys.length]!, value, i);
    if (ok) bytesSent += value.length;
  }
  if (ok) i++;
  else await waitForReports(); // the queue is full: push back until reports free room
}
while (delivered < n) await waitForReports();
const seconds = (performance.now() - t0) / 1000;
await producer.disconnect();
await deleteTopics(config, [topic]).catch(() => {});
const ms = (p: number) => Math.round(latency.getValueAtPercentile(p)) / 1000;
process.stdout.write(
  JSON.stringify({
    records: n,
    failed,
    recordsPerS: Math.round(n / seconds),
    eventsPerRecord: Math.max(1, perRecord),
    eventsPerS: Math.round((n * Math.max(1, perRecord)) / seconds),
    mbPerS: Math.round((bytesSent / seconds / 1024 / 1024) * 100) / 100,
    latencyMs: { avg: Math.round(latency.mean) / 1000, p50: ms(50), p95: ms(95), p99: ms(99), p999: ms(99.9), max: Math.round(latency.maxValue) / 1000 },
    settings: { acks: 'all', idempotence: true, lingerMs: config.kafka.lingerMs, batchSizeBytes: config.kafka.batchSizeMax, queueMax: config.kafka.producerQueueMax, compression: 'none', partitions: Number(values.partitions), keys: keys.length },
  }) + '\n',
);
