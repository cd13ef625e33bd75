/**
 * src/redis/client.ts against the real Redis: the factory's connection behaviour and pingRedis's
 * typed failures within their time budget.
 */
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { ErrorCode, StratusError } from '../../../src/errors.js';
import { connectRedis, createRedis, pingRedis } from '../../../src/redis/client.js';
import { testConfig } from '../../helpers/config.js';
import { unusedPort } from '../../helpers/ports.js';

test('createRedis: not connected until connectRedis(); named stratus-<name>', { timeout: 10_000 }, async (t) => {
  const config = testConfig();
  const client = createRedis(config, 'factory-test');
  t.after(() => client.disconnect());
  assert.equal(client.status, 'wait');
  await connectRedis(client);
  assert.equal(client.status, 'ready');
  assert.equal(await client.client('GETNAME'), 'stratus-factory-test');
});

test('createRedis without the offline queue: a command while not connected fails at once', { timeout: 10_000 }, async (t) => {
  const config = testConfig();
  const client = createRedis(config, 'no-queue');
  t.after(() => client.disconnect());
  await assert.rejects(client.get(`${config.redis.keyPrefix}x`), /enableOfflineQueue options is false/);
});

test('pingRedis resolves against the running Redis', { timeout: 10_000 }, async () => {
  await pingRedis(testConfig(), 2000);
});

test('pingRedis on a port nothing listens on: REDIS_UNAVAILABLE at once, naming the address and the fix', { timeout: 10_000 }, async () => {
  const port = await unusedPort();
  const config = testConfig({ 'redis-port': String(port) });
  const t0 = performance.now();
  await assert.rejects(pingRedis(config, 5000), (err: unknown) => {
    assert.ok(err instanceof StratusError);
    assert.equal(err.code, ErrorCode.REDIS_UNAVAILABLE);
    assert.equal(err.retryable, true);
    assert.ok(err.message.startsWith(`Redis at ${config.redis.host}:${port} did not answer PING within 5000 ms (`), err.message);
    assert.match(err.message, /ECONNREFUSED/);
    assert.match(err.message, /npx stratus stack up/);
    return true;
  });
  // A refused connection is not retried: well under the 5 s budget.
  assert.ok(performance.now() - t0 < 1000, `took ${performance.now() - t0} ms`);
});

test('pingRedis on a server that accepts but never answers: REDIS_UNAVAILABLE at the budget, connection closed', { timeout: 10_000 }, async (t) => {
  const sockets: Socket[] = [];
  let closed = 0;
  const server = createServer((s) => {
    sockets.push(s);
    // Reads (and ignores) what the client sends, so the client's FIN is seen.
    s.resume();
    s.on('close', () => closed++);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const { port } = server.address() as { port: number };
  const config = testConfig({ 'redis-host': '127.0.0.1', 'redis-port': String(port) });
  const t0 = performance.now();
  await assert.rejects(pingRedis(config, 500), (err: unknown) => {
    assert.ok(err instanceof StratusError);
    assert.equal(err.code, ErrorCode.REDIS_UNAVAILABLE);
    assert.match(err.message, /did not answer PING within 500 ms/);
    return true;
  });
  const ms = performance.now() - t0;
  assert.ok(ms >= 450 && ms < 1500, `took ${ms} ms`);
  // pingRedis let go of its connection.
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(sockets.length, 1);
  assert.equal(closed, 1);
});
