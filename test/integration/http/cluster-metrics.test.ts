/**
 * /metrics of `stratus run --threads 2`: the primary serves its own metrics merged with both
 * gateway shards' (worker processes, or with --shard threads worker threads on a runtime with
 * reusePort: Node 24 from .stratus/cache/runtimes), and the per-stage latency histograms count
 * every event and result. The threads run also checks that connections spread over both threads
 * and that SIGTERM drains every thread's streams.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { PROJECT_ROOT } from '../../../src/config.js';
import { parseLogLine } from '../../../src/log.js';
import { deleteTopics } from '../../../src/kafka/admin.js';
import { topology } from '../../../src/topology.js';
import { testConfig } from '../../helpers/config.js';
import { TestDevice } from '../../helpers/device.js';
import { node24Tree } from '../../helpers/node24.js';
import { unusedPort } from '../../helpers/ports.js';

const config = testConfig();
const t = topology(config);
after(() => deleteTopics(config, [t.topics.events, t.topics.results]).catch(() => {}));

function sample(text: string, name: string): number {
  const m = new RegExp(`^${name.replace(/[{}"+.]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
  assert.ok(m !== null, `${name} in /metrics`);
  return Number(m[1]);
}

test('run --threads 2: /metrics merges both gateway workers with the primary; stage histograms count every event', { timeout: 120_000 }, async () => {
  const port = await unusedPort();
  const httpPort = await unusedPort();
  const { child, log } = await startRun([process.execPath, join(PROJECT_ROOT, 'bin', 'stratus.js')], ['--threads', '2', '--roles', 'gateway,processor,forwarder', '--grpc-port', String(port), '--http-port', String(httpPort)]);
  const devices = Array.from({ length: 10 }, (_, i) => new TestDevice(`cm-${i}`).connect(`127.0.0.1:${port}`));
  for (const d of devices) d.send(Array.from({ length: 20 }, (_, i) => ({ seq: i + 1, type: 'sq', value: i })));
  for (const d of devices) await d.until(() => d.results.length === 20, 60_000, '20 results');
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  assert.equal(sample(text, 'stratus_cluster_workers_scraped'), 2);
  assert.equal(sample(text, 'stratus_devices_connected'), 10, 'the sum over both workers');
  assert.equal(sample(text, 'stratus_events_durable_total'), 200);
  assert.equal(sample(text, 'stratus_results_delivered_total'), 200);
  for (const stage of ['ack', 'process', 'route', 'deliver']) assert.equal(sample(text, `stratus_stage_latency_seconds_count{stage="${stage}"}`), 200, stage);
  assert.equal(sample(text, 'stratus_stage_latency_seconds_bucket{le="+Inf",stage="ack"}'), 200);
  for (const d of devices) d.close();
  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  assert.equal(code, 0, log());
});

/**
 * `stratus run ...args` by `argv` (node and bin/stratus.js), resolved once the primary's `started`
 * line came (JSON, src/log.ts: once its gateway shards and its own roles are up); `log()` is its
 * stderr so far.
 */
async function startRun(argv: readonly string[], args: string[], env: Record<string, string> = {}): Promise<{ child: ChildProcess; log: () => string }> {
  const child = spawn(argv[0]!, [...argv.slice(1), 'run', ...args], {
    env: { ...process.env, STRATUS_KAFKA_TOPIC_PREFIX: config.kafka.topicPrefix, STRATUS_REDIS_KEY_PREFIX: config.redis.keyPrefix, STRATUS_KAFKA_PARTITIONS: '2', STRATUS_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      if (err.split('\n').some((l) => { const j = parseLogLine(l); return j?.msg === 'started' && Array.isArray(j.roles) && j.roles.includes('processor'); })) resolve();
    });
    child.on('exit', () => reject(new Error(`stratus run exited early: ${err}`)));
  });
  return { child, log: () => err };
}

/**
 * `--shard threads` where reusePort works: Node 24 with each Kafka client (librdkafka: one producer
 * on the main thread that the threads reach over a MessagePort, since the addon cannot load in a
 * worker thread; @platformatic/kafka: each thread its own) and Bun (its client is @platformatic/kafka).
 */
const THREAD_RUNS = [
  { runtime: 'Node 24', client: 'native', gatewayProducers: 1 },
  { runtime: 'Node 24', client: 'platformatic', gatewayProducers: 2 },
  { runtime: 'Bun', client: 'platformatic', gatewayProducers: 2 },
] as const;

for (const run of THREAD_RUNS) {
  test(`run --threads 2 --shard threads (${run.runtime}, kafka.client=${run.client}): connections spread over both threads, every event acked and answered, SIGTERM drains both`, { timeout: 120_000 }, async (t) => {
    let argv: readonly string[];
    if (run.runtime === 'Bun') {
      const bun = join(PROJECT_ROOT, '.stratus', 'cache', 'runtimes', 'bun', 'bin', 'bun');
      assert.ok(existsSync(bun), `${bun} is missing: bash scripts/setup.sh --for test fetches it`);
      argv = [bun, join(PROJECT_ROOT, 'bin', 'stratus.js')];
    } else {
      const tree = node24Tree();
      if (tree === null) return t.skip('no Node 24 with its Kafka addon in .stratus/cache/runtimes (bash scripts/setup-runtimes.sh)');
      t.after(() => tree.remove());
      argv = tree.argv;
    }
    const port = await unusedPort();
    const httpPort = await unusedPort();
    const { child, log } = await startRun(argv, ['--threads', '2', '--shard', 'threads', '--roles', 'gateway,processor,forwarder', '--grpc-port', String(port), '--http-port', String(httpPort)], { STRATUS_KAFKA_CLIENT: run.client });
    const exited = once(child, 'exit');
    // A connection each: the kernel spreads connections, not streams, over the threads' listeners.
    // 40 connections all landing on one of two listeners would be a 1 in 2^39 chance.
    const devices = Array.from({ length: 40 }, (_, i) => new TestDevice(`ct-${run.runtime.replace(/ /g, '')}-${run.client}-${i}`).connect(`127.0.0.1:${port}`, { ownConnection: true }));
    for (const d of devices) d.send(Array.from({ length: 20 }, (_, i) => ({ seq: i + 1, type: 'sq', value: i })));
    for (const d of devices) await d.until(() => d.results.length === 20 && d.ackedSeq === 20, 60_000, '20 results and acks').catch((err: unknown) => { throw new Error(`${String(err)}; the engine's log:\n${log().slice(-6000)}`); });
    for (const d of devices) assert.deepEqual(d.results.map((r) => r.seq), Array.from({ length: 20 }, (_, i) => i + 1), d.deviceId);
    const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    assert.equal(sample(text, 'stratus_cluster_workers_scraped'), 2);
    assert.equal(sample(text, 'stratus_devices_connected'), 40, 'the sum over both threads');
    const t1 = sample(text, 'stratus_gateway_shard_devices_connected{shard="t1"}');
    const t2 = sample(text, 'stratus_gateway_shard_devices_connected{shard="t2"}');
    assert.equal(t1 + t2, 40);
    assert.ok(t1 > 0 && t2 > 0, `both threads hold streams (t1 ${t1}, t2 ${t2})`);
    assert.equal(sample(text, 'stratus_events_durable_total'), 800);
    assert.equal(sample(text, 'stratus_results_delivered_total'), 800);
    assert.equal(sample(text, 'stratus_stage_latency_seconds_count{stage="ack"}'), 800);
    // Devices still connected: SIGTERM ends every thread's streams, each thread logs its drain.
    child.kill('SIGTERM');
    const [code] = await exited;
    assert.equal(code, 0, log());
    for (const d of devices) await d.until(() => d.ended, 10_000, 'stream ended by the drain');
    const drained = log().split('\n').map((l) => parseLogLine(l)).filter((j) => j?.msg === 'drained' && typeof j.instance === 'string');
    assert.deepEqual(drained.map((j) => String(j!.instance).replace(/.*-(t\d)$/, '$1')).sort(), ['t1', 't2']);
    assert.equal(drained.reduce((n, j) => n + Number(j!.streamsEnded), 0), 40, 'every stream ended by a thread\'s drain');
    for (const d of devices) d.close();
    // The gateway threads' producers: one on the main thread (native), or one per thread; the processor has its own besides.
    const producers = log().split('\n').map((l) => parseLogLine(l)).filter((j) => j?.msg === 'producer flushed and disconnected' && String(j.client).endsWith('-gateway'));
    assert.equal(producers.length, run.gatewayProducers, log());
  });
}
