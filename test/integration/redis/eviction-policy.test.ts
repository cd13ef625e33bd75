/**
 * refuseEvictingPolicy against a throwaway real redis-server of its own (the shared one must stay
 * noeviction): evicting policies are refused with one line naming the setting and the fix,
 * noeviction passes, a refused CONFIG is a warning; the forwarder refuses to start on an evicting Redis.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test, type TestContext } from 'node:test';
import { testConfig } from '../../helpers/config.js';
import { unusedPort } from '../../helpers/ports.js';
import { connectRedis, createRedis, disconnectRedis, type RedisClient } from '../../../src/redis/client.js';
import { refuseEvictingPolicy } from '../../../src/redis/eviction-policy.js';
import { startForwarder } from '../../../src/forwarder/forwarder.js';
import { ErrorCode, StratusError } from '../../../src/errors.js';
import type { Config } from '../../../src/config.js';

async function throwawayRedis(t: TestContext, policy: string): Promise<{ config: Config; redis: RedisClient }> {
  const port = await unusedPort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', policy], { stdio: 'ignore' });
  t.after(() => {
    child.kill('SIGKILL');
  });
  const config = testConfig({ 'redis-port': String(port) });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const redis = createRedis(config, 'test-eviction', { reconnect: false });
    try {
      await connectRedis(redis);
      t.after(() => disconnectRedis(redis));
      return { config, redis };
    } catch (err) {
      disconnectRedis(redis);
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

const unsafe = (policy: string, port: number) => (err: unknown) => {
  assert.ok(err instanceof StratusError);
  assert.equal(err.code, ErrorCode.REDIS_POLICY_UNSAFE);
  assert.equal(err.retryable, false);
  assert.equal(
    err.message,
    `Redis at 127.0.0.1:${port} has maxmemory-policy ${policy}: Stratus keeps device state in Redis, not a cache; set maxmemory-policy noeviction (redis-cli CONFIG SET maxmemory-policy noeviction, and in redis.conf)`,
  );
  assert.ok(!err.message.includes('\n'));
  return true;
};

test('allkeys-lru and volatile-* are refused with the setting and the fix; noeviction passes', async (t) => {
  const { config, redis } = await throwawayRedis(t, 'allkeys-lru');
  await assert.rejects(refuseEvictingPolicy(redis, config), unsafe('allkeys-lru', config.redis.port));
  for (const policy of ['volatile-lru', 'volatile-ttl', 'allkeys-random']) {
    await redis.config('SET', 'maxmemory-policy', policy);
    await assert.rejects(refuseEvictingPolicy(redis, config), unsafe(policy, config.redis.port));
  }
  await redis.config('SET', 'maxmemory-policy', 'noeviction');
  assert.equal(await refuseEvictingPolicy(redis, config), null);
});

test('CONFIG refused (as managed Redis services do): a warning line, not a failure', async (t) => {
  const { config, redis } = await throwawayRedis(t, 'allkeys-lru');
  await redis.call('ACL', 'SETUSER', 'default', '-config');
  const warning = await refuseEvictingPolicy(redis, config);
  assert.ok(warning !== null);
  assert.match(warning, /refused CONFIG GET maxmemory-policy \(NOPERM.*\): make sure it is noeviction/);
});

test('the forwarder does not start on an evicting Redis', async (t) => {
  const { config } = await throwawayRedis(t, 'volatile-lru');
  await assert.rejects(startForwarder(config, 'test-eviction'), unsafe('volatile-lru', config.redis.port));
});
