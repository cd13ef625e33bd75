/**
 * src/redis/round-trip.ts against the real Redis: every message published is received in order,
 * every item pushed is popped in push order, and nothing is left behind.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Config } from '../../../src/config.js';
import { ErrorCode, StratusError } from '../../../src/errors.js';
import { createRedis } from '../../../src/redis/client.js';
import { redisRoundTrip } from '../../../src/redis/round-trip.js';
import { testConfig } from '../../helpers/config.js';
import { unusedPort } from '../../helpers/ports.js';

/** Keys and active channels under the config's prefix. */
async function leftovers(config: Config): Promise<{ keys: string[]; channels: string[] }> {
  const client = createRedis(config, 'test');
  try {
    await client.connect();
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await client.scan(cursor, 'MATCH', `${config.redis.keyPrefix}*`, 'COUNT', 1000);
      keys.push(...batch);
      cursor = next;
    } while (cursor !== '0');
    const channels = (await client.pubsub('CHANNELS', `${config.redis.keyPrefix}*`)) as string[];
    return { keys, channels };
  } finally {
    client.disconnect();
  }
}

test('25,000 messages: all received in publish order; 25,000 items popped in push order; nothing left', { timeout: 30_000 }, async (t) => {
  const config = testConfig();
  t.after(async () => {
    // Should the assertions below fail, the keys still go.
    const { keys } = await leftovers(config);
    if (keys.length === 0) return;
    const client = createRedis(config, 'test-cleanup');
    await client.connect();
    await client.del(...keys);
    client.disconnect();
  });
  // More than the subscriber lag window (10,000) and many pipelines, so publishing waits for the subscriber.
  const r = await redisRoundTrip(config, { messages: 25_000, timeoutMs: 20_000 });
  assert.deepEqual(
    { published: r.published, received: r.received, outOfOrder: r.outOfOrder, pushed: r.pushed, popped: r.popped, notFifo: r.notFifo },
    { published: 25_000, received: 25_000, outOfOrder: 0, pushed: 25_000, popped: 25_000, notFifo: 0 },
  );
  assert.ok(r.pubsubMs > 0 && r.pushMs > 0 && r.popMs > 0, JSON.stringify(r));
  assert.ok(Math.abs(r.listMs - r.pushMs - r.popMs) < 1, JSON.stringify(r));
  assert.deepEqual(await leftovers(config), { keys: [], channels: [] });
});

test('two round trips at once on one prefix keep to their own channel and list', { timeout: 30_000 }, async () => {
  const config = testConfig();
  const [a, b] = await Promise.all([redisRoundTrip(config, { messages: 3000 }), redisRoundTrip(config, { messages: 2000 })]);
  assert.deepEqual([a.received, a.outOfOrder, a.popped, a.notFifo], [3000, 0, 3000, 0]);
  assert.deepEqual([b.received, b.outOfOrder, b.popped, b.notFifo], [2000, 0, 2000, 0]);
  assert.deepEqual(await leftovers(config), { keys: [], channels: [] });
});

test('a round trip with Redis unreachable fails at once with REDIS_UNAVAILABLE', { timeout: 10_000 }, async () => {
  const config = testConfig({ 'redis-port': String(await unusedPort()) });
  const t0 = performance.now();
  await assert.rejects(redisRoundTrip(config, { messages: 10, timeoutMs: 5000 }), (err: unknown) => {
    assert.ok(err instanceof StratusError);
    assert.equal(err.code, ErrorCode.REDIS_UNAVAILABLE);
    assert.match(err.message, /failed a publish\/subscribe and list round trip/);
    return true;
  });
  assert.ok(performance.now() - t0 < 2000, `took ${performance.now() - t0} ms`);
});
