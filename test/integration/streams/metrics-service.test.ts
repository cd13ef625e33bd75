/** data_nexus.MetricsService on a real grpc Server and through the Gateway port, real Redis. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Server, ServerCredentials, status, type ServiceError } from '@grpc/grpc-js';
import { Gateway } from '../../../src/gateway/gateway.js';
import { startMetricsService, writeMetrics } from '../../../src/streams/metrics-service.js';
import { checkMetric, type Metric } from '../../../src/streams/metric-entry.js';
import { topology } from '../../../src/topology.js';
import { SKIP_ON_REDIS_CLUSTER, testConfig } from '../../helpers/config.js';
import { FaultProxy } from '../../helpers/fault-proxy.js';
import { connectRedis, createRedis, disconnectRedis } from '../../../src/redis/client.js';
import { deleteStreamKeys, metricsClient, streamsRedis, until, type MetricIn, type MetricsClient } from '../../helpers/metrics-client.js';
import type { Config } from '../../../src/config.js';
import type { TestContext } from 'node:test';

async function serve(t: TestContext, config: Config): Promise<MetricsClient> {
  const service = await startMetricsService(config, 'test-metrics');
  const server = new Server();
  service.addTo(server);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const client = metricsClient(`127.0.0.1:${port}`);
  t.after(async () => {
    client.close();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    await service.stop();
  });
  return client;
}

test('IngestMetrics returns the real entry ids, in order; XRANGE holds exactly those, int64 timestamps exact', { timeout: 20_000 }, async (t) => {
  const config = testConfig();
  const redis = await streamsRedis(config);
  t.after(() => deleteStreamKeys(redis, config));
  const client = await serve(t, config);
  const stream = topology(config).redis.metricsStream;
  const sent: MetricIn[] = [
    { name: 'cpu_seconds_total', value: 1.25, type: 'counter', timestamp: '9007199254740993', labels: { host: 'a"b', zone: 'x\ny' } },
    { name: 'temp', value: -3.5, type: 'gauge', timestamp: '9223372036854775807', labels: {} },
    { name: 'latency', value: 0.042, type: 'histogram', timestamp: '-9223372036854775808', labels: { path: '/' } },
  ];
  const { eventIds } = await client.ingestMetrics(sent);
  assert.equal(eventIds.length, 3);
  for (const id of eventIds) assert.match(id, /^\d+-\d+$/);
  const entries = (await redis.xrange(stream, '-', '+')) as [string, string[]][];
  assert.deepEqual(entries.map(([id]) => id), eventIds);
  assert.deepEqual(entries.map(([, f]) => f), [
    ['name', 'cpu_seconds_total', 'type', 'counter', 'value', '1.25', 'ts', '9007199254740993', 'labels', '{"host":"a\\"b","zone":"x\\ny"}'],
    ['name', 'temp', 'type', 'gauge', 'value', '-3.5', 'ts', '9223372036854775807', 'labels', '{}'],
    ['name', 'latency', 'type', 'histogram', 'value', '0.042', 'ts', '-9223372036854775808', 'labels', '{"path":"/"}'],
  ]);
  const one = await client.ingestMetric({ name: 'up', value: 1, type: 'gauge', timestamp: '1700000000000', labels: { job: 'j' } });
  const after = (await redis.xrange(stream, '-', '+')) as [string, string[]][];
  assert.equal(after.length, 4);
  assert.deepEqual(after[3], [one.eventId, ['name', 'up', 'type', 'gauge', 'value', '1', 'ts', '1700000000000', 'labels', '{"job":"j"}']]);
});

test('bad input: INVALID_ARGUMENT naming the field, and nothing written', { timeout: 20_000 }, async (t) => {
  const config = testConfig({ 'streams-batch-metrics-max': '5' });
  const redis = await streamsRedis(config);
  t.after(() => deleteStreamKeys(redis, config));
  const client = await serve(t, config);
  const stream = topology(config).redis.metricsStream;
  const ok = { name: 'm', value: 1, type: 'gauge' };
  await client.ingestMetrics([ok]);
  const refused = async (call: Promise<unknown>, details: string) => {
    const err = (await call.then(() => assert.fail('accepted'), (e: ServiceError) => e)) as ServiceError;
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.equal(err.details, details);
    assert.equal(await redis.xlen(stream), 1);
  };
  await refused(client.ingestMetrics([]), 'metrics is empty; send 1..5 metrics per IngestMetrics call');
  await refused(client.ingestMetrics(Array(6).fill(ok)), 'metrics has 6 entries; at most 5 per IngestMetrics call (streams.batchMetricsMax)');
  // The bad one is last: the good ones before it are not written either.
  await refused(client.ingestMetrics([ok, ok, ok, { ...ok, name: 'bad-name' }]), 'metrics[3].name must match [a-zA-Z_:][a-zA-Z0-9_:]* with 1..200 characters (got "bad-name")');
  await refused(client.ingestMetrics([ok, { ...ok, value: NaN }]), 'metrics[1].value must be a finite number (got NaN)');
  await refused(client.ingestMetrics([ok, ok, { ...ok, value: Infinity }]), 'metrics[2].value must be a finite number (got Infinity)');
  await refused(client.ingestMetrics([{ ...ok, value: -Infinity }]), 'metrics[0].value must be a finite number (got -Infinity)');
  await refused(client.ingestMetrics([ok, { ...ok, type: 'meter' }]), 'metrics[1].type must be one of counter, gauge, histogram, summary (got "meter")');
  await refused(client.ingestMetrics([{ ...ok, labels: { 'bad-label': 'v' } }]), 'metrics[0].labels["bad-label"]: a label name must match [a-zA-Z_][a-zA-Z0-9_]* with at most 100 characters and not start with __');
  await refused(client.ingestMetric({ ...ok, type: '' }), 'type must be one of counter, gauge, histogram, summary (got "")');
  await refused(client.ingestMetric({ ...ok, name: '' }), 'name must match [a-zA-Z_:][a-zA-Z0-9_:]* with 1..200 characters (got "")');
  await refused(client.ingestMetric({ ...ok, value: NaN }), 'value must be a finite number (got NaN)');
});

test('through the Gateway port: served beside the device services', { timeout: 30_000 }, async (t) => {
  const config = testConfig();
  const redis = await streamsRedis(config);
  t.after(() => deleteStreamKeys(redis, config));
  const gateway = await Gateway.start(config, 'gw-metrics', 0);
  t.after(() => gateway.stop());
  const client = metricsClient(`127.0.0.1:${gateway.port}`);
  t.after(() => client.close());
  const { eventIds } = await client.ingestMetrics([{ name: 'a', value: 1, type: 'counter', timestamp: '9007199254740995' }, { name: 'b', value: 2, type: 'summary' }]);
  const entries = (await redis.xrange(topology(config).redis.metricsStream, '-', '+')) as [string, string[]][];
  assert.deepEqual(entries.map(([id]) => id), eventIds);
  assert.equal(entries[0]![1][7], '9007199254740995');
  const err = (await client.ingestMetric({ name: 'a', value: NaN, type: 'counter' }).catch((e: ServiceError) => e)) as ServiceError;
  assert.equal(err.code, status.INVALID_ARGUMENT);
  assert.equal(err.details, 'value must be a finite number (got NaN)');
});

test('a batch is written in slices of 1,000; when a slice fails, the slices before it are deleted again and the call fails', { timeout: 20_000 }, async (t) => {
  const config = testConfig();
  const redis = await streamsRedis(config);
  t.after(() => deleteStreamKeys(redis, config));
  const stream = topology(config).redis.metricsStream;
  const batch = Array.from({ length: 2500 }, (_, i) => checkMetric({ name: 'slice_total', type: 'counter', value: 1, timestamp: String(i), labels: { i: String(i) } }, '') as Metric);
  // All through: 2,500 entries, in order, three script calls.
  const ids = await writeMetrics(redis, config, batch);
  assert.equal(ids.length, 2500);
  assert.equal(await redis.xlen(stream), 2500);
  const entries = await redis.xrange(stream, '-', '+');
  assert.deepEqual(entries.map(([id]) => id), ids);
  await redis.del(stream);
  // The third slice refused (as Redis refuses a script when out of memory): nothing stays.
  const scripted = redis as unknown as { stratusXaddMetrics: (...a: string[]) => Promise<string[]> };
  const real = scripted.stratusXaddMetrics.bind(redis);
  let calls = 0;
  scripted.stratusXaddMetrics = async (...a: string[]) => {
    if (++calls === 3) throw new Error('OOM command not allowed when used memory > \'maxmemory\'');
    return real(...a);
  };
  await assert.rejects(writeMetrics(redis, config, batch), /OOM/);
  assert.equal(calls, 3);
  assert.equal(await redis.xlen(stream), 0);
  scripted.stratusXaddMetrics = real;
});

test('a script call that ran but whose reply was lost is sent again by the client and written once, with the same ids', { timeout: 30_000, skip: SKIP_ON_REDIS_CLUSTER }, async (t) => {
  const base = testConfig();
  const direct = await streamsRedis(base);
  t.after(() => deleteStreamKeys(direct, base));
  const proxy = await FaultProxy.start(base.redis.port);
  t.after(() => proxy.close());
  const config = testConfig({ 'redis-port': String(proxy.port), 'redis-key-prefix': base.redis.keyPrefix });
  const viaProxy = createRedis(config, 'test-streams-proxy');
  await connectRedis(viaProxy);
  t.after(() => disconnectRedis(viaProxy));
  const stream = topology(config).redis.metricsStream;
  const batch = (n: number, tag: string) => Array.from({ length: n }, (_, i) => checkMetric({ name: 'resend_total', type: 'counter', value: 1, timestamp: String(i), labels: { tag, i: String(i) } }, '') as Metric);
  // 1,500 metrics: two script calls, the second of them resent.
  await writeMetrics(viaProxy, config, batch(1, 'warm'));
  const before = await direct.xlen(stream);
  const first = batch(1500, 'a');
  const scripted = viaProxy as unknown as { stratusXaddMetrics: (...a: string[]) => Promise<string[]> };
  const real = scripted.stratusXaddMetrics.bind(viaProxy);
  let calls = 0;
  scripted.stratusXaddMetrics = (...a: string[]) => {
    // The second slice's reply is held: it runs in Redis, and its answer never comes back.
    if (++calls === 2) proxy.holdReplies();
    return real(...a);
  };
  const written = writeMetrics(viaProxy, config, first);
  await until('the second slice ran in Redis', async () => (await direct.xlen(stream)) === before + 1500);
  // Its connection is reset: the client reconnects and sends the unanswered call again.
  proxy.reset();
  proxy.heal();
  const ids = await written;
  assert.equal(calls, 2, 'two script calls of the client (its resend is not a new call)');
  assert.equal(ids.length, 1500);
  assert.equal(await direct.xlen(stream), before + 1500, 'the resent call added nothing');
  const entries = await direct.xrange(stream, '-', '+');
  assert.deepEqual(entries.slice(-1500).map(([id]) => id), ids);
  // Each call's token is kept for a while, then expires by itself.
  const tokens = await direct.keys(`${topology(config).redis.metricsWrite('')}*`);
  assert.ok(tokens.length >= 2);
  for (const k of tokens) assert.ok((await direct.pttl(k)) > 0, `${k} expires`);
});
