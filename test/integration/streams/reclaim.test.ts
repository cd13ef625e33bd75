/**
 * An exporter killed with entries pending (a real `stratus run --roles exporter` process, kill -9):
 * another exporter takes them over after streams.claimIdleMs, serves them, acks them after its
 * scrape, and removes the dead consumer.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { test } from 'node:test';
import { PROJECT_ROOT } from '../../../src/config.js';
import { HttpSurface } from '../../../src/http/server.js';
import { metrics } from '../../../src/http/metrics.js';
import { deleteTopics } from '../../../src/kafka/admin.js';
import { Exporter } from '../../../src/streams/exporter.js';
import { checkMetric, type Metric } from '../../../src/streams/metric-entry.js';
import { writeMetrics } from '../../../src/streams/metrics-service.js';
import { topology } from '../../../src/topology.js';
import { testConfig } from '../../helpers/config.js';
import { deleteStreamKeys, pendingCount, streamsRedis, until } from '../../helpers/metrics-client.js';
import { unusedPort } from '../../helpers/ports.js';

test('a consumer killed with pending entries: reclaimed by another exporter, served, acked; the dead consumer removed', { timeout: 90_000 }, async (t) => {
  const config = testConfig({ 'streams-claim-idle-ms': '500' });
  const top = topology(config);
  const redis = await streamsRedis(config);
  let survivor: Exporter | null = null;
  let surface: HttpSurface | null = null;
  t.after(async () => {
    await surface?.close();
    await survivor?.stop();
    await deleteStreamKeys(redis, config);
    await deleteTopics(config, [top.topics.events, top.topics.results]).catch(() => {});
  });
  const n = 20;
  await writeMetrics(redis, config, Array.from({ length: n }, (_, i) => checkMetric({ name: 'r_total', type: 'counter', value: 1, timestamp: '0', labels: { k: String(i % 2) } }, '') as Metric));

  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'stratus.js'), 'run', '--roles', 'exporter', '--instance-id', 'doomed'], {
    env: { ...process.env, STRATUS_REDIS_KEY_PREFIX: config.redis.keyPrefix, STRATUS_KAFKA_TOPIC_PREFIX: config.kafka.topicPrefix, STRATUS_HTTP_PORT: String(await unusedPort()), STRATUS_STREAMS_CLAIM_IDLE_MS: '60000' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  t.after(() => void child.kill('SIGKILL'));
  const consumers = async () => ((await redis.call('XINFO', 'CONSUMERS', top.redis.metricsStream, top.groups.exporter)) as (string | number)[][]).map((c) => ({ name: String(c[1]), pending: Number(c[3]) }));
  await until(() => `the child exporter to read ${n} entries (its stderr: ${stderr})`, async () => (await pendingCount(redis, config).catch(() => 0)) === n, 30_000);
  const [doomed] = await consumers();
  assert.match(doomed!.name, /^doomed-\d+-[0-9a-f]{6}$/);
  assert.equal(doomed!.pending, n);
  child.kill('SIGKILL');
  await once(child, 'exit');

  const reclaimedBefore = (await metrics.streamsReclaimed.get()).values[0]?.value ?? 0;
  survivor = await Exporter.start(config, 'survivor');
  surface = await HttpSurface.start(config, { check: async () => null }, { port: 0, routes: [survivor.route()] });
  await until('the survivor to reclaim every entry', () => survivor!.unackedCount === n, 20_000);
  assert.equal((await metrics.streamsReclaimed.get()).values[0]!.value, reclaimedBefore + n);
  assert.deepEqual((await consumers()).filter((c) => c.pending > 0), [{ name: survivor.consumer, pending: n }]);
  const text = await (await fetch(`http://127.0.0.1:${surface.port}/metrics/ingested`)).text();
  assert.match(text, /^r_total\{k="0"\} 10\nr_total\{k="1"\} 10\n$/m);
  await until('XPENDING 0 after the scrape', async () => (await pendingCount(redis, config)) === 0);
  await until('the dead consumer removed', async () => (await consumers()).every((c) => c.name === survivor!.consumer), 10_000);
});
