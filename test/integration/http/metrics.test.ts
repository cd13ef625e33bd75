/**
 * The engine's /metrics as an operator reads it, through the real pipeline (gateway, processor,
 * forwarder on Kafka and Redis): every ingest path counted (Connect, Ingest, IngestBatch), every
 * labelled series present at zero before its first increment, latency buckets fine where the
 * p99 lives, the dependency and readiness gauges, consumer lag, and the whole text clean under
 * `promtool check metrics` (Debian's prometheus package; setup.sh --for test installs it).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { Client, credentials, type ServiceError } from '@grpc/grpc-js';
import { codecs, type BatchAck, type IngestSummary } from '../../../src/gateway/protocol.js';
import type { Gateway } from '../../../src/gateway/gateway.js';
import { RejectCode } from '../../../src/gateway/validate.js';
import { LATENCY_BUCKETS, STAGES, registry } from '../../../src/http/metrics.js';
import { topology } from '../../../src/topology.js';
import { testConfig } from '../../helpers/config.js';
import { TestDevice } from '../../helpers/device.js';
import { startPipeline, type TestPipeline } from '../../helpers/pipeline.js';

const config = testConfig({ 'kafka-partitions': '2' });
let pipeline: TestPipeline;
let gateway: Gateway;
before(async () => {
  pipeline = await startPipeline(config, ['gw-metrics']);
  gateway = pipeline.gateways[0]!;
});
after(() => pipeline.stop());

/** Every sample of the exposition text: `name{labels}` -> value. */
async function samples(): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await registry.metrics()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

const COUNTED = ['stratus_events_received_total', 'stratus_events_accepted_total', 'stratus_events_durable_total', 'stratus_events_rejected_total{code="UNKNOWN_TYPE"}', 'stratus_events_rejected_total{code="INVALID_SEQ"}'];

async function counts(): Promise<Record<string, number>> {
  const s = await samples();
  return Object.fromEntries(COUNTED.map((k) => [k, s.get(k) ?? NaN]));
}

function delta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.keys(a).map((k) => [k, b[k]! - a[k]!]));
}

test('every labelled series is there before its first increment, at zero', async () => {
  const s = await samples();
  for (const code of Object.values(RejectCode)) assert.ok(s.has(`stratus_events_rejected_total{code="${code}"}`), code);
  for (const stage of STAGES) {
    assert.ok(s.has(`stratus_stage_latency_seconds_count{stage="${stage}"}`), stage);
    assert.ok(s.has(`stratus_stage_latency_seconds_bucket{le="0.0005",stage="${stage}"}`), stage);
  }
  for (const st of ['UNAVAILABLE', 'RESOURCE_EXHAUSTED', 'ABORTED']) assert.ok(s.has(`stratus_streams_ended_total{status="${st}"}`), st);
  assert.ok(!s.has('stratus_streams_ended_total{status="OK"}'), 'a stream ended with OK is not an ending this side forces');
  for (const k of ['stratus_gateway_handoffs_total{outcome="timeout"}', 'stratus_queue_items_processed_total{outcome="failed"}', 'stratus_forwarder_redis_retries_total{reason="redis"}', 'stratus_kafka_produce_rtt_seconds{stat="p99"}']) {
    assert.ok(s.has(k), k);
  }
});

test('latency buckets start at 0.5 ms and step by at most 1.5x between 1 ms and 500 ms', () => {
  assert.equal(LATENCY_BUCKETS[0], 0.0005);
  const from = LATENCY_BUCKETS.indexOf(0.001);
  const to = LATENCY_BUCKETS.indexOf(0.5);
  assert.ok(from >= 0 && to > from);
  for (let i = from + 1; i <= to; i++) assert.ok(LATENCY_BUCKETS[i]! / LATENCY_BUCKETS[i - 1]! <= 1.5 + 1e-9, `${LATENCY_BUCKETS[i - 1]} -> ${LATENCY_BUCKETS[i]}`);
});

test('Connect, Ingest and IngestBatch all count into stratus_events_*', { timeout: 60_000 }, async () => {
  const address = `127.0.0.1:${gateway.port}`;
  const client = new Client(address, credentials.createInsecure());
  after(() => client.close());

  // IngestBatch: 3 good, 1 unknown type.
  let before = await counts();
  const ack = await new Promise<BatchAck>((resolve, reject) =>
    client.makeUnaryRequest('/stratus.v1.DeviceGateway/IngestBatch', codecs.EventBatch.serialize, codecs.BatchAck.deserialize, {
      events: [
        ...[1, 2, 3].map((seq) => ({ deviceId: 'm-batch', seq, type: 'sq', value: seq, payload: Buffer.alloc(0), sentAtUs: 1 })),
        { deviceId: 'm-batch-2', seq: 1, type: 'nope', value: 1, payload: Buffer.alloc(0), sentAtUs: 1 },
      ],
    }, (err: ServiceError | null, res?: BatchAck) => (err ? reject(err) : resolve(res!))),
  );
  assert.equal(ack.accepted, 3);
  assert.deepEqual(delta(before, await counts()), {
    stratus_events_received_total: 4,
    stratus_events_accepted_total: 3,
    stratus_events_durable_total: 3,
    'stratus_events_rejected_total{code="UNKNOWN_TYPE"}': 1,
    'stratus_events_rejected_total{code="INVALID_SEQ"}': 0,
  });

  // Ingest (client stream): 10 good, 1 with seq 0.
  before = await counts();
  const summary = await new Promise<IngestSummary>((resolve, reject) => {
    const call = client.makeClientStreamRequest('/stratus.v1.DeviceGateway/Ingest', codecs.Event.serialize, codecs.IngestSummary.deserialize, (err: ServiceError | null, res?: IngestSummary) => (err ? reject(err) : resolve(res!)));
    for (let seq = 1; seq <= 10; seq++) call.write({ deviceId: 'm-ingest', seq, type: 'echo', value: seq, payload: Buffer.alloc(0), sentAtUs: 0 });
    call.write({ deviceId: 'm-ingest-2', seq: 0, type: 'echo', value: 0, payload: Buffer.alloc(0), sentAtUs: 0 });
    call.end();
  });
  assert.deepEqual(summary, { accepted: 10, rejected: 1 });
  assert.deepEqual(delta(before, await counts()), {
    stratus_events_received_total: 11,
    stratus_events_accepted_total: 10,
    stratus_events_durable_total: 10,
    'stratus_events_rejected_total{code="UNKNOWN_TYPE"}': 0,
    'stratus_events_rejected_total{code="INVALID_SEQ"}': 1,
  });

  // Connect: 5 events, acked, and their results delivered.
  before = await counts();
  const delivered0 = (await samples()).get('stratus_results_delivered_total')!;
  const d = new TestDevice('m-connect').connect(address);
  after(() => d.close());
  d.send([1, 2, 3, 4, 5].map((seq) => ({ seq, type: 'sq', value: seq, payload: Buffer.alloc(0) })));
  await d.until(() => d.results.length === 5, 30_000, 'five results');
  assert.deepEqual(delta(before, await counts()), {
    stratus_events_received_total: 5,
    stratus_events_accepted_total: 5,
    stratus_events_durable_total: 5,
    'stratus_events_rejected_total{code="UNKNOWN_TYPE"}': 0,
    'stratus_events_rejected_total{code="INVALID_SEQ"}': 0,
  });
  let s = await samples();
  assert.ok(s.get('stratus_results_delivered_total')! - delivered0 >= 5);
  // The processor turns all 18 accepted events into results (the two partitions in its own time);
  // the stage histograms saw them.
  const deadline = Date.now() + 20_000;
  while (s.get('stratus_processor_events_total')! < 18 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    s = await samples();
  }
  assert.ok(s.get('stratus_processor_events_total')! >= 18, `processor events ${s.get('stratus_processor_events_total')}`);
  for (const stage of STAGES) assert.ok(s.get(`stratus_stage_latency_seconds_count{stage="${stage}"}`)! >= 5, stage);
});

test('dependency, readiness and consumer-lag gauges', { timeout: 30_000 }, async () => {
  const t = topology(config);
  // Consumer statistics come every second.
  let s = await samples();
  const deadline = Date.now() + 10_000;
  while (!s.has(`stratus_kafka_consumer_lag_messages{group="${t.groups.processor}",topic="${t.topics.events}"}`) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    s = await samples();
  }
  assert.ok(s.get(`stratus_kafka_consumer_lag_messages{group="${t.groups.processor}",topic="${t.topics.events}"}`)! >= 0);
  assert.equal(s.get('stratus_dependency_up{dependency="kafka"}'), 1);
  assert.equal(s.get('stratus_dependency_up{dependency="redis"}'), 1);
  assert.equal(s.get('stratus_ready'), 1);
});

test('promtool check metrics finds nothing to say about the whole exposition', { timeout: 20_000 }, async () => {
  const text = await registry.metrics();
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(r.error, undefined, `promtool: ${r.error?.message} (setup.sh --for test installs Debian's prometheus package, which ships it)`);
  assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'promtool check metrics output');
  assert.equal(r.status, 0);
});
