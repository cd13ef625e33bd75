import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ErrorCode, StratusError } from '../../../src/errors.js';
import { createRedis, pingRedis, redisRoundTrip } from '../../../src/redis/client.js';
import { testConfig } from '../../helpers/config.js';

test('PUBLISH/SUBSCRIBE and list push/pop through real Redis: all delivered, in order, FIFO', { timeout: 30_000 }, async () => {
  const config = testConfig();
  const r = await redisRoundTrip(config, { messages: 5000 });
  assert.deepEqual(
    { published: r.published, received: r.received, outOfOrder: r.outOfOrder, pushed: r.pushed, popped: r.popped, notFifo: r.notFifo },
    { published: 5000, received: 5000, outOfOrder: 0, pushed: 5000, popped: 5000, notFifo: 0 },
  );
  // The probe cleans up after itself.
  const client = createRedis(config, 'test');
  await client.connect();
  const left = await client.keys(`${config.redis.keyPrefix}*`);
  client.disconnect();
  assert.deepEqual(left, []);
});

test('pingRedis on a port nothing listens on fails fast with REDIS_UNAVAILABLE', { timeout: 10_000 }, async () => {
  const config = testConfig({ 'redis-port': '1' });
  await assert.rejects(pingRedis(config, 1000), (err: unknown) => {
    assert.ok(err instanceof StratusError);
    assert.equal(err.code, ErrorCode.REDIS_UNAVAILABLE);
    assert.match(err.message, /Redis at 127\.0\.0\.1:1 did not answer PING/);
    return true;
  });
});
