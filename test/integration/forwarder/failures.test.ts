/**
 * The real forwarder (real results topic, real Redis) when Redis fails:
 *   - one device's key has the wrong type: that device's results are retried a bounded number of
 *     times, then dead-lettered; the other devices' results flow, and the batch is committed.
 *   - the connection to Redis is cut for a while: nothing is lost or doubled; the forwarder says
 *     "lost" once and "back" once, not once per retry.
 *   - Redis answers nothing (a blackholed link) when the forwarder is stopped: stop() returns
 *     within its bound, and the next forwarder buffers the uncommitted batch, each result once.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { testConfig } from '../../helpers/config.js';
import { FaultProxy } from '../../helpers/fault-proxy.js';
import { deleteTopics, ensureTopics } from '../../../src/kafka/admin.js';
import { KafkaProducer } from '../../../src/kafka/native/producer.js';
import { connectRedis, createRedis, disconnectRedis, type RedisClient } from '../../../src/redis/client.js';
import { resultsDeadKey, startForwarder } from '../../../src/forwarder/forwarder.js';
import { topology, type Topology } from '../../../src/topology.js';
import { decodeResult, encodeResult, encodeResultRecord } from '../../../src/wire/result-record.js';
import type { Config } from '../../../src/config.js';

async function until(what: string, cond: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

interface Rig {
  topo: Topology;
  redis: RedisClient;
  produce(device: string, from: number, to: number): Promise<void>;
  seqs(device: string): Promise<number[]>;
}

async function rig(t: TestContext, config: Config): Promise<Rig> {
  const topo = topology(config);
  await ensureTopics(config, [{ topic: topo.topics.results, partitions: 2 }]);
  t.after(() => deleteTopics(config, [topo.topics.results]).catch(() => {}));
  // The test's own client goes straight to Redis (config.redis.port may name a proxy).
  const redis = createRedis(testConfig({ 'redis-key-prefix': config.redis.keyPrefix }), 'test-forwarder-failures');
  await connectRedis(redis);
  t.after(async () => {
    const keys = await redis.keys(`${topo.redis.prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    disconnectRedis(redis);
  });
  const producer = await KafkaProducer.connect(config, 'test-forwarder-failures-producer', (err) => assert.ifError(err));
  t.after(() => producer.disconnect());
  return {
    topo,
    redis,
    async produce(device, from, to) {
      for (let seq = from; seq <= to; seq++) {
        const value = encodeResultRecord([encodeResult({ deviceId: device, seq, value: seq, sentAtUs: 1, receivedAtUs: Date.now() * 1000, processedAtUs: Date.now() * 1000, type: 'sq', payload: new Uint8Array(0) })]);
        assert.ok(producer.produce(topo.topics.results, null, device, value, null));
      }
      await producer.flush(10_000);
    },
    async seqs(device) {
      const rows = (await redis.xrangeBuffer(topo.redis.deviceBuffer(device), '-', '+')) as [Buffer, Buffer[]][];
      return rows.map(([, f]) => decodeResult(f[f.findIndex((x, i) => i % 2 === 0 && x.toString() === 'r') + 1]!).seq);
    },
  };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Lines the forwarder writes to stderr while `t` runs. */
function captureStderr(t: TestContext): string[] {
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    lines.push(String(chunk));
    return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  t.after(() => {
    process.stderr.write = write;
  });
  return lines;
}

test('a device whose buffer key has the wrong type is dead-lettered after bounded retries; the others flow and the batch is committed', { timeout: 60_000 }, async (t) => {
  const config = testConfig({ 'kafka-partitions': '2' });
  const r = await rig(t, config);
  const lines = captureStderr(t);
  await r.redis.set(r.topo.redis.deviceBuffer('bad'), 'not a stream');
  const forwarder = await startForwarder(config, 'test-dead-letter');
  let stopped = false;
  t.after(() => (stopped ? undefined : forwarder.stop()));

  await r.produce('bad', 1, 30);
  await r.produce('good', 1, 30);
  await until('good buffered', async () => (await r.redis.xlen(r.topo.redis.deviceBuffer('good'))) === 30, 10_000);
  await until('bad dead-lettered', async () => (await r.redis.xlen(resultsDeadKey(config))) === 30, 10_000);

  const dead = await r.redis.xrange(resultsDeadKey(config), '-', '+');
  const fields = dead.map(([, f]) => Object.fromEntries(Array.from({ length: f.length / 2 }, (_, i) => [f[2 * i]!, f[2 * i + 1]!])));
  assert.deepEqual(fields.map((f) => f.device), Array(30).fill('bad'));
  assert.deepEqual(fields.map((f) => Number(f.s)), range(1, 30));
  for (const f of fields) {
    assert.match(f.error!, /^WRONGTYPE/);
    assert.equal(f.topic, r.topo.topics.results);
  }
  assert.deepEqual(await r.seqs('good'), range(1, 30));
  assert.equal(await r.redis.type(r.topo.redis.deviceBuffer('bad')), 'string', 'the bad key is left as it was');
  assert.equal(await r.redis.exists(r.topo.redis.deviceState('bad')), 0, 'nothing recorded as routed for bad');
  assert.equal(forwarder.stats.deadLetters, 30);
  // 30 results failed on the first try and on each of the 3 retries.
  assert.equal(forwarder.stats.deviceFailures, 30 * 4);
  assert.equal(lines.filter((l) => l.includes('written to') && l.includes('results:dead')).length >= 1, true);

  // Later results of good are not held up by bad's (bounded wait), and nothing is read again after
  // a restart: the dead-lettered batch was committed.
  await r.produce('good', 31, 31);
  await until('good 31', async () => (await r.redis.xlen(r.topo.redis.deviceBuffer('good'))) === 31, 5_000);
  // bad fails again: straight to the dead-letter stream, one try each, no retries' wait that would
  // hold up every batch its results are in.
  const failuresBefore = forwarder.stats.deviceFailures;
  await r.produce('bad', 31, 40);
  await until('bad 31..40 dead-lettered', async () => (await r.redis.xlen(resultsDeadKey(config))) === 40, 10_000);
  assert.equal(forwarder.stats.deviceFailures - failuresBefore, 10, 'one try each while the device is quarantined');
  await forwarder.stop();
  stopped = true;
  const again = await startForwarder(config, 'test-dead-letter-2');
  t.after(() => again.stop());
  await r.produce('good', 32, 32);
  await until('good 32', async () => (await r.redis.xlen(r.topo.redis.deviceBuffer('good'))) === 32, 15_000);
  assert.equal(again.stats.duplicates, 0, 'nothing committed was read again');
  assert.equal(again.stats.deadLetters, 0);
  assert.equal(await r.redis.xlen(resultsDeadKey(config)), 40);
});

test('Redis connection cut for 2 s: every result buffered exactly once, "lost" and "back" logged once each', { timeout: 60_000 }, async (t) => {
  const base = testConfig();
  const proxy = await FaultProxy.start(base.redis.port);
  t.after(() => proxy.close());
  const config = testConfig({ 'kafka-partitions': '2', 'redis-port': String(proxy.port), 'redis-key-prefix': base.redis.keyPrefix, 'kafka-topic-prefix': base.kafka.topicPrefix });
  const r = await rig(t, config);
  const lines = captureStderr(t);
  const forwarder = await startForwarder(config, 'test-redis-cut');
  t.after(() => forwarder.stop());
  const devices = ['d1', 'd2', 'd3'];

  for (const d of devices) await r.produce(d, 1, 50);
  await until('first 50 buffered', async () => (await Promise.all(devices.map((d) => r.redis.xlen(r.topo.redis.deviceBuffer(d))))).every((n) => n === 50), 15_000);
  proxy.down();
  for (const d of devices) await r.produce(d, 51, 100);
  // At least 2 s cut, and until the forwarder has retried twice (it must first read 51..100: on a
  // loaded machine that took longer than 2 s, and a fixed 2 s wait saw 0 retries).
  await new Promise((res) => setTimeout(res, 2000));
  await until('2 retries while cut', async () => forwarder.stats.redisRetries >= 2, 15_000);
  assert.deepEqual(await Promise.all(devices.map((d) => r.redis.xlen(r.topo.redis.deviceBuffer(d)))), [50, 50, 50], 'nothing gets through a cut connection');
  proxy.heal();
  await until('all 100 buffered', async () => (await Promise.all(devices.map((d) => r.redis.xlen(r.topo.redis.deviceBuffer(d))))).every((n) => n === 100), 20_000);
  for (const d of devices) assert.deepEqual(await r.seqs(d), range(1, 100), `${d}: exactly once, in order`);
  // The log is JSON lines (src/log.ts): this forwarder's own.
  const mine = lines.filter((l) => l.startsWith('{') && JSON.parse(l).role === 'forwarder' && JSON.parse(l).instance === 'test-redis-cut');
  assert.equal(mine.filter((l) => JSON.parse(l).msg.startsWith('Redis lost')).length, 1, mine.join(''));
  assert.equal(mine.filter((l) => JSON.parse(l).msg.startsWith('Redis back')).length, 1, mine.join(''));
  assert.equal(forwarder.stats.deadLetters, 0);
});

test('stopped while Redis answers nothing (a blackholed link): stop() returns within its bound, and the next forwarder buffers every result exactly once', { timeout: 60_000 }, async (t) => {
  const base = testConfig();
  const proxy = await FaultProxy.start(base.redis.port);
  t.after(() => proxy.close());
  const config = testConfig({ 'kafka-partitions': '2', 'redis-port': String(proxy.port), 'redis-key-prefix': base.redis.keyPrefix, 'kafka-topic-prefix': base.kafka.topicPrefix });
  const r = await rig(t, config);
  captureStderr(t);
  const forwarder = await startForwarder(config, 'test-blackhole-stop');
  let stopped = false;
  t.after(() => (stopped ? undefined : forwarder.stop()));
  await r.produce('d1', 1, 20);
  await until('first 20 buffered', async () => (await r.redis.xlen(r.topo.redis.deviceBuffer('d1'))) === 20, 15_000);
  proxy.blackhole();
  await r.produce('d1', 21, 40);
  // The forwarder has read them and its script call hangs: nothing fails, nothing answers.
  await until('the call in flight', async () => forwarder.stats.batches >= 1 && (await r.redis.xlen(r.topo.redis.deviceBuffer('d1'))) === 20, 10_000);
  await new Promise((res) => setTimeout(res, 500));
  const from = Date.now();
  await forwarder.stop();
  stopped = true;
  const tookMs = Date.now() - from;
  assert.ok(tookMs < 8000, `stop() took ${tookMs} ms`);
  // The next owner, straight to Redis: 21..40 read again (not committed), each buffered once.
  const direct = testConfig({ 'kafka-partitions': '2', 'redis-key-prefix': base.redis.keyPrefix, 'kafka-topic-prefix': base.kafka.topicPrefix });
  const again = await startForwarder(direct, 'test-blackhole-stop-2');
  t.after(() => again.stop());
  await until('all 40 buffered', async () => (await r.redis.xlen(r.topo.redis.deviceBuffer('d1'))) === 40, 20_000);
  assert.deepEqual(await r.seqs('d1'), range(1, 40));
});
