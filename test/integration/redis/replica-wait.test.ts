/**
 * ReplicaWait (the forwarder's WAIT before it commits offsets) against a throwaway master and, later,
 * a real replica of it: no replica connected, no WAIT is sent; a replica connected, the write is
 * waited for and confirmed; a replica that stops answering (SIGSTOP) fails the write within
 * redis.waitTimeoutMs with NOREPLICAS, and it goes through again once the replica is back;
 * redis.waitReplicas 0 never waits.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../../../src/config.js';
import { connectRedis, createRedis, disconnectRedis, type RedisClient } from '../../../src/redis/client.js';
import { ReplicaWait, ReplicaWaitShortError } from '../../../src/redis/replica-wait.js';
import { SKIP_ON_REDIS_CLUSTER, testConfig } from '../../helpers/config.js';
import { unusedPort } from '../../helpers/ports.js';

function redisServer(t: TestContext, port: number, extra: string[] = []): ChildProcess {
  // Its own dir: a replica stores the snapshot of its first sync there (dump.rdb).
  const dir = mkdtempSync(join(tmpdir(), 'stratus-replica-wait-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...extra], { stdio: 'ignore' });
  t.after(() => {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  return child;
}

async function connected(t: TestContext, config: Config): Promise<RedisClient> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const redis = createRedis(config, 'test-replica-wait', { reconnect: false });
    try {
      await connectRedis(redis);
      t.after(() => disconnectRedis(redis));
      return redis;
    } catch (err) {
      disconnectRedis(redis);
      if (Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}

/** The write through `wait`, retried on a short WAIT (ReplicaWaitShortError only) until it is confirmed or withinMs passed. */
async function confirmedWithin(wait: ReplicaWait, write: () => Promise<unknown>, withinMs: number): Promise<void> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    try {
      await wait.after('k', write);
      return;
    } catch (err) {
      assert.ok(err instanceof ReplicaWaitShortError && Date.now() < deadline, String(err));
      await sleep(100);
    }
  }
}

async function waitCalls(redis: RedisClient): Promise<number> {
  const m = /cmdstat_wait:calls=(\d+)/.exec(await redis.info('commandstats'));
  return m === null ? 0 : Number(m[1]);
}

test('WAIT only where a replica is connected; a replica that does not confirm in time fails the write, and it goes through once the replica is back', { timeout: 60_000, skip: SKIP_ON_REDIS_CLUSTER }, async (t) => {
  const port = await unusedPort();
  redisServer(t, port);
  const config = testConfig({ 'redis-port': String(port), 'redis-wait-replicas': '1', 'redis-wait-timeout-ms': '300' });
  const redis = await connected(t, config);
  const wait = new ReplicaWait(redis, config);

  // No replica: the write runs, no WAIT is sent.
  assert.equal(await wait.after('k', () => redis.set('k', '1')), 'OK');
  assert.equal(await waitCalls(redis), 0);
  assert.equal(wait.replicasOf('k'), 0);

  // A replica: WAIT follows the write and confirms it.
  const replicaPort = await unusedPort();
  const replica = redisServer(t, replicaPort, ['--replicaof', '127.0.0.1', String(port)]);
  const deadline = Date.now() + 20_000;
  while (!/slave0:.*state=online/.test(await redis.info('replication'))) {
    assert.ok(Date.now() < deadline, 'the replica did not connect');
    await sleep(100);
  }
  await wait.refresh();
  assert.equal(wait.replicasOf('k'), 1);
  // Confirmed, perhaps after a retry or two (the forwarder retries the same way): a replica just
  // online on a loaded machine can miss the first 300 ms window.
  await confirmedWithin(wait, () => redis.set('k', '2'), 10_000);
  assert.ok((await waitCalls(redis)) >= 1, 'WAIT was sent');

  // The replica stops answering: the write is done on the master, but not confirmed in time.
  replica.kill('SIGSTOP');
  const t0 = Date.now();
  await assert.rejects(wait.after('k', () => redis.set('k', '3')), (err: unknown) => {
    assert.ok(err instanceof ReplicaWaitShortError, String(err));
    assert.match(err.message, /^NOREPLICAS 0 of 1 replicas .* within 300 ms/);
    return true;
  });
  const tookMs = Date.now() - t0;
  assert.ok(tookMs >= 250 && tookMs < 5000, `the short WAIT took ${tookMs} ms`);

  // Back: the retry (here: the same write again) is confirmed.
  replica.kill('SIGCONT');
  await confirmedWithin(wait, () => redis.set('k', '3'), 10_000);

  // waitReplicas 0: never a WAIT.
  const off = new ReplicaWait(redis, testConfig({ 'redis-port': String(port), 'redis-wait-replicas': '0' }));
  const before = await waitCalls(redis);
  await off.after('k', () => redis.set('k', '4'));
  assert.equal(await waitCalls(redis), before);
});
