/** The exporter in this process against real Redis, served by a real HttpSurface. */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test, type TestContext } from 'node:test';
import type { Config } from '../../../src/config.js';
import { HttpSurface } from '../../../src/http/server.js';
import { metrics } from '../../../src/http/metrics.js';
import { Exporter } from '../../../src/streams/exporter.js';
import { checkMetric, type Metric, type MetricMessage } from '../../../src/streams/metric-entry.js';
import { writeMetrics } from '../../../src/streams/metrics-service.js';
import { topology } from '../../../src/topology.js';
import { testConfig } from '../../helpers/config.js';
import { deleteStreamKeys, pendingCount, streamsRedis, until } from '../../helpers/metrics-client.js';

const metric = (x: MetricMessage): Metric => checkMetric({ timestamp: '0', labels: {}, ...x }, '') as Metric;

async function setup(t: TestContext, config: Config) {
  const redis = await streamsRedis(config);
  let exporter: Exporter | null = null;
  let surface: HttpSurface | null = null;
  // One hook, in this order: a running exporter would recreate the stream (MKSTREAM) after the delete.
  t.after(async () => {
    await surface?.close();
    await exporter?.stop();
    await deleteStreamKeys(redis, config);
  });
  return {
    redis,
    async start() {
      exporter = await Exporter.start(config, 'test-exporter');
      surface = await HttpSurface.start(config, { check: async () => null }, { port: 0, routes: [exporter.route()] });
      return { exporter, url: `http://127.0.0.1:${surface.port}/metrics/ingested`, port: surface.port };
    },
  };
}

async function scrapes(outcome: string): Promise<number> {
  return (await metrics.streamsScrapes.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
}

test('/metrics/ingested: exact text (HELP, TYPE, escaped label values); entries acked only after the scrape', { timeout: 20_000 }, async (t) => {
  const config = testConfig();
  const { redis, start } = await setup(t, config);
  await writeMetrics(redis, config, [
    metric({ name: 'jobs_total', type: 'counter', value: 2, labels: { queue: 'a"b\\c\nd' } }),
    metric({ name: 'jobs_total', type: 'counter', value: 0.5, labels: { queue: 'a"b\\c\nd' } }),
    metric({ name: 'temp_celsius', type: 'gauge', value: 21, timestamp: '9007199254740993' }),
    metric({ name: 'temp_celsius', type: 'gauge', value: 19, timestamp: '9007199254740992' }),
    metric({ name: 'payload_bytes', type: 'summary', value: 100, labels: { dev: 'x' } }),
  ]);
  const { exporter, url } = await start();
  await until('5 entries read', () => exporter.unackedCount === 5);
  assert.equal(await pendingCount(redis, config), 5);
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  assert.equal(
    await res.text(),
    [
      '# HELP jobs_total Ingested through data_nexus.MetricsService: the sum of the values received.',
      '# TYPE jobs_total counter',
      'jobs_total{queue="a\\"b\\\\c\\nd"} 2.5',
      '# HELP payload_bytes Ingested through data_nexus.MetricsService: the sum and count of the observations received.',
      '# TYPE payload_bytes summary',
      'payload_bytes_sum{dev="x"} 100',
      'payload_bytes_count{dev="x"} 1',
      '# HELP temp_celsius Ingested through data_nexus.MetricsService: the value with the latest timestamp.',
      '# TYPE temp_celsius gauge',
      'temp_celsius 21',
      '',
    ].join('\n'),
  );
  // The exporter lowers its own count when XACK's reply is read, which can come a turn after
  // Redis already shows XPENDING 0: wait for both.
  await until('XPENDING 0 and nothing unacked after the scrape', async () => (await pendingCount(redis, config)) === 0 && exporter.unackedCount === 0);
});

test('a scrape whose connection ends before the response is written acks nothing; the next good one acks all', { timeout: 60_000 }, async (t) => {
  // About 12 MB of text, far beyond what the kernel buffers of a client that reads nothing hold
  // (tcp_wmem max 4 MB + the receiver's window), so the response is still being written when the
  // client resets the connection.
  const n = 12_000;
  const config = testConfig({ 'streams-series-max': String(n) });
  const { redis, start } = await setup(t, config);
  const long = 'v'.repeat(1000);
  for (let i = 0; i < n; i += 1000) {
    await writeMetrics(redis, config, Array.from({ length: 1000 }, (_, j) => metric({ name: 'big', type: 'counter', value: 1, labels: { i: String(i + j), pad: long } })));
  }
  const { exporter, port, url } = await start();
  await until(`${n} entries read`, () => exporter.unackedCount === n, 20_000);
  assert.equal(await pendingCount(redis, config), n);
  const failedBefore = await scrapes('failed');
  const writtenBefore = await scrapes('written');
  const socket = connect(port, '127.0.0.1');
  socket.pause();
  socket.on('error', () => {});
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write('GET /metrics/ingested HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  // The server renders and starts writing; the client reads nothing, then resets the connection.
  await new Promise((r) => setTimeout(r, 1000));
  socket.resetAndDestroy();
  await until('the server to see the scrape fail', async () => (await scrapes('failed')) === failedBefore + 1);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await scrapes('written'), writtenBefore);
  assert.equal(await pendingCount(redis, config), n);
  assert.equal(exporter.unackedCount, n);
  const text = await (await fetch(url)).text();
  assert.equal(text.split('\n').filter((l) => l.startsWith('big{')).length, n);
  await until('XPENDING 0 after the good scrape', async () => (await pendingCount(redis, config)) === 0);
  assert.equal(await scrapes('written'), writtenBefore + 1);
});

test('an entry that cannot be decoded, or conflicts, is dead-lettered alone; the rest is exported', { timeout: 20_000 }, async (t) => {
  const config = testConfig();
  const { redis, start } = await setup(t, config);
  const { metricsStream, metricsDead } = topology(config).redis;
  const [a] = await writeMetrics(redis, config, [metric({ name: 'ok_total', type: 'counter', value: 1 })]);
  const garbage = (await redis.xadd(metricsStream, '*', 'garbage', '\u0000\u00ff'))!;
  const nan = (await redis.xadd(metricsStream, '*', 'name', 'x', 'type', 'gauge', 'value', 'NaN', 'ts', '0', 'labels', '{}'))!;
  const [b, conflict, c] = await writeMetrics(redis, config, [
    metric({ name: 'ok_total', type: 'counter', value: 2 }),
    metric({ name: 'ok_total', type: 'gauge', value: 7 }),
    metric({ name: 'g', type: 'gauge', value: 3 }),
  ]);
  const deadBefore = (await metrics.streamsDeadLettered.get()).values[0]?.value ?? 0;
  const { exporter, url } = await start();
  await until('3 entries read', () => exporter.unackedCount === 3);
  await until('3 entries dead-lettered', async () => (await redis.xlen(metricsDead)) === 3);
  const dead = (await redis.xrange(metricsDead, '-', '+')) as [string, string[]][];
  assert.deepEqual(dead.map(([, f]) => f), [
    ['id', garbage, 'reason', 'entry has no field "name"', 'fields', JSON.stringify(['garbage', '\u0000\u00ff'])],
    ['id', nan, 'reason', 'entry.value must be a finite number (got NaN)', 'fields', JSON.stringify(['name', 'x', 'type', 'gauge', 'value', 'NaN', 'ts', '0', 'labels', '{}'])],
    ['id', conflict!, 'reason', 'type conflict: ok_total is a counter here, the entry says gauge', 'fields', JSON.stringify(['name', 'ok_total', 'type', 'gauge', 'value', '7', 'ts', '0', 'labels', '{}'])],
  ]);
  assert.equal((await metrics.streamsDeadLettered.get()).values[0]!.value, deadBefore + 3);
  // Dead-lettered entries are acked at once; the good ones wait for a scrape.
  const pending = (await redis.call('XPENDING', metricsStream, topology(config).groups.exporter, '-', '+', 10)) as [string, ...unknown[]][];
  assert.deepEqual(pending.map(([id]) => id), [a, b, c]);
  assert.equal(
    await (await fetch(url)).text(),
    '# HELP g Ingested through data_nexus.MetricsService: the value with the latest timestamp.\n# TYPE g gauge\ng 3\n' +
      '# HELP ok_total Ingested through data_nexus.MetricsService: the sum of the values received.\n# TYPE ok_total counter\nok_total 3\n',
  );
  await until('XPENDING 0', async () => (await pendingCount(redis, config)) === 0);
});
