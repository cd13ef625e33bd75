/** `stratus worker` as real child processes on real Redis: processing, kill -9 recovery, dead letters, bad flags; and a lost take's item recovered (a worker in this process, behind a proxy). */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { PROJECT_ROOT } from '../../../src/config.js';
import { findLogLine } from '../../../src/log.js';
import { connectRedis, createRedis } from '../../../src/redis/client.js';
import { itemDigest, ListQueue } from '../../../src/queue/list-queue.js';
import { topology } from '../../../src/topology.js';
import { SKIP_ON_REDIS_CLUSTER, testConfig } from '../../helpers/config.js';
import { deleteKeys, events, item, keysUnder, queueRedis, spawnWorker, waitFor, type WorkerProcess } from '../../helpers/event-client.js';
import { unusedPort } from '../../helpers/ports.js';
import { FaultProxy } from '../../helpers/fault-proxy.js';
import { QueueWorker } from '../../../src/queue/worker.js';
import { HANDLERS } from '../../../src/queue/handlers.js';

function stopAll(workers: WorkerProcess[]) {
  return () => {
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
  };
}

async function sigterm(w: WorkerProcess): Promise<{ code: number | null; summary: string }> {
  w.child.kill('SIGTERM');
  const code = await w.exited;
  // The worker's `stopped` line (JSON, src/log.ts) carries the counts.
  const s = findLogLine(w.stderr(), 'stopped', 'worker');
  return { code, summary: s === null ? `(no summary) ${w.stderr()}` : `done ${s.done}, duplicates ${s.duplicates}, failed ${s.failed}, dead-lettered ${s.deadLettered}, reclaimed ${s.reclaimed}` };
}

test('two worker processes record every item once; SIGTERM stops them with nothing left behind', { timeout: 60_000 }, async (t) => {
  const config = testConfig();
  const redis = await queueRedis(config);
  t.after(() => deleteKeys(redis, config));
  const r = topology(config).redis;
  const sent = events(200);
  assert.equal(await new ListQueue(redis, config, 'events').push(sent.map(item)), 200);
  const workers = [await spawnWorker(config, ['--concurrency', '3']), await spawnWorker(config, ['--queue', 'events', '--concurrency', '2'])];
  t.after(stopAll(workers));
  await waitFor('200 recorded', async () => (await redis.hlen(r.queueDone('events'))) === 200, 30_000);
  const stops = await Promise.all(workers.map(sigterm));
  assert.deepEqual(stops.map((s) => s.code), [0, 0]);
  const done = stops.map((s) => Number(/done (\d+)/.exec(s.summary)?.[1]));
  assert.equal(done[0]! + done[1]!, 200, stops.map((s) => s.summary).join(' | '));
  const recorded = await redis.hgetall(r.queueDone('events'));
  assert.deepEqual(recorded, Object.fromEntries(sent.map((e) => [e.event_id, item(e)])));
  assert.deepEqual(await keysUnder(redis, config), [r.queueDone('events')]);
});

test('kill -9 a worker holding an item: a live worker reclaims it after the lease and processes it', { timeout: 60_000 }, async (t) => {
  const config = testConfig({ 'queue-lease-ms': '1000' });
  const redis = await queueRedis(config);
  t.after(() => deleteKeys(redis, config));
  const r = topology(config).redis;
  const [e] = events(1, 'held');
  await new ListQueue(redis, config, 'jobs').push([item(e!)]);
  const workers: WorkerProcess[] = [];
  t.after(stopAll(workers));
  workers.push(await spawnWorker(config, ['--queue', 'jobs', '--handler-delay-ms', '60000']));
  const a = workers[0]!;
  await waitFor('A holds the item', async () => (await redis.lrange(r.queueProcessing('jobs', a.id), 0, -1))[0] === item(e!));
  a.child.kill('SIGKILL');
  assert.equal(await a.exited, null);
  // A is dead but still registered with its item: only a live worker's reaper brings it back.
  assert.equal(await redis.sismember(r.queueWorkers('jobs'), a.id), 1);
  workers.push(await spawnWorker(config, ['--queue', 'jobs']));
  const b = workers[1]!;
  await waitFor('B recorded the item', async () => (await redis.hget(r.queueDone('jobs'), e!.event_id)) === item(e!), 15_000);
  assert.equal(await redis.exists(r.queueProcessing('jobs', a.id)), 0);
  assert.deepEqual(await redis.smembers(r.queueWorkers('jobs')), [b.id]);
  const stop = await sigterm(b);
  assert.equal(stop.code, 0);
  assert.equal(stop.summary, 'done 1, duplicates 0, failed 0, dead-lettered 0, reclaimed 1');
  assert.match(b.stderr(), /reaped 1 dead worker\(s\): 1 item\(s\) back in the queue, 0 dead-lettered/);
  // The reaped try was counted and cleared on success; nothing else is left.
  assert.deepEqual(await keysUnder(redis, config), [r.queueDone('jobs')]);
});

test('dead letters: after queue.attemptsMax failed tries (fail handler; a garbage item under record), exact attempts', { timeout: 60_000 }, async (t) => {
  const config = testConfig({ 'queue-attempts-max': '3' });
  const redis = await queueRedis(config);
  t.after(() => deleteKeys(redis, config));
  const r = topology(config).redis;
  const workers: WorkerProcess[] = [];
  t.after(stopAll(workers));

  const sent = events(2, 'doomed');
  await new ListQueue(redis, config, 'drill').push(sent.map(item));
  workers.push(await spawnWorker(config, ['--queue', 'drill', '--handler', 'fail']));
  await waitFor('2 dead-lettered', async () => (await redis.llen(r.queueDead('drill'))) === 2);
  const failStop = await sigterm(workers[0]!);
  assert.equal(failStop.code, 0);
  assert.equal(failStop.summary, 'done 0, duplicates 0, failed 6, dead-lettered 2, reclaimed 0');
  assert.deepEqual((await redis.lrange(r.queueDead('drill'), 0, -1)).sort(), sent.map(item).sort());
  assert.deepEqual(await keysUnder(redis, config), [r.queueDead('drill')]);

  const good = events(1, 'fine')[0]!;
  await new ListQueue(redis, config, 'mixed').push(['{"event_id": 7', item(good)]);
  workers.push(await spawnWorker(config, ['--queue', 'mixed', '--handler', 'record']));
  await waitFor('the garbage dead-lettered', async () => (await redis.llen(r.queueDead('mixed'))) === 1);
  await waitFor('the good one recorded', async () => (await redis.hlen(r.queueDone('mixed'))) === 1);
  const recordStop = await sigterm(workers[1]!);
  assert.equal(recordStop.summary, 'done 1, duplicates 0, failed 3, dead-lettered 1, reclaimed 0');
  assert.deepEqual(await redis.lrange(r.queueDead('mixed'), 0, -1), ['{"event_id": 7']);
  assert.deepEqual(await redis.hgetall(r.queueDone('mixed')), { [good.event_id]: item(good) });
  assert.equal(await redis.exists(r.queueAttempts('mixed')), 0);
});

test('an item whose workers keep dying is dead-lettered: each reap counts a try', { timeout: 20_000 }, async (t) => {
  const config = testConfig({ 'queue-attempts-max': '2' });
  const redis = await queueRedis(config);
  t.after(() => deleteKeys(redis, config));
  const r = topology(config).redis;
  const q = new ListQueue(redis, config, 'q');
  const poison = item(events(1, 'killer')[0]!);
  await q.push([poison]);
  const blocking = createRedis(config, 'test-blocking');
  await connectRedis(blocking);
  t.after(() => blocking.disconnect());
  // Two "workers" that take the item and die: registered, no heartbeat key (lease lapsed).
  for (const [ghost, expected] of [['ghost1', { workers: 1, requeued: 1, deadLettered: 0 }], ['ghost2', { workers: 1, requeued: 0, deadLettered: 1 }]] as const) {
    await redis.sadd(r.queueWorkers('q'), ghost);
    assert.equal(await ListQueue.take(blocking, config, 'q', ghost, 1), poison);
    assert.deepEqual(await q.reapDead('live'), expected);
  }
  assert.deepEqual(await redis.lrange(r.queueDead('q'), 0, -1), [poison]);
  assert.equal(await redis.hget(r.queueAttempts('q'), itemDigest(poison)), null);
  // A worker whose heartbeat is alive is left alone.
  await q.push([poison]);
  await q.heartbeat('alive');
  assert.equal(await ListQueue.take(blocking, config, 'q', 'alive', 1), poison);
  assert.deepEqual(await q.reapDead('live'), { workers: 0, requeued: 0, deadLettered: 0 });
  assert.equal(await redis.llen(r.queueProcessing('q', 'alive')), 1);
  // Stopping gracefully gives it back without counting a try.
  assert.equal(await q.release('alive'), 1);
  assert.deepEqual(await redis.lrange(r.queueProcessing('q', 'alive'), 0, -1), []);
  assert.deepEqual(await redis.lrange(r.queue('q'), 0, -1), [poison]);
  assert.equal(await redis.exists(r.queueAttempts('q')), 0);
  assert.deepEqual(await redis.smembers(r.queueWorkers('q')), []);
});

test('bad flags: --queue "a b" and --concurrency 0 exit 2 (a usage error) naming the flag', { timeout: 20_000 }, async () => {
  const run = (args: string[]) => new Promise<{ code: number | null; err: string }>((resolve) => {
    const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'stratus.js'), 'worker', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => resolve({ code, err }));
  });
  assert.deepEqual(await run(['--queue', 'a b']), { code: 2, err: 'stratus worker: --queue must be 1..200 bytes without whitespace, control characters, { or } (got "a b")\n' });
  assert.deepEqual(await run(['--queue', '']), { code: 2, err: 'stratus worker: --queue must be 1..200 bytes without whitespace, control characters, { or } (got an empty name)\n' });
  assert.deepEqual(await run(['--concurrency', '0']), { code: 2, err: 'stratus worker: --concurrency must be a whole number from 1 to 256 (got "0")\n' });
  assert.deepEqual(await run(['--handler', 'nope']), { code: 2, err: 'stratus worker: --handler must be one of record, fail (got "nope")\n' });
});

test('--metrics: the worker serves /metrics with its queue counters (promtool-clean), /livez and /readyz', { timeout: 60_000 }, async (t) => {
  const config = testConfig();
  const redis = await queueRedis(config);
  t.after(() => deleteKeys(redis, config));
  const r = topology(config).redis;
  assert.equal(await new ListQueue(redis, config, 'm').push(events(30).map(item)), 30);
  const port = await unusedPort();
  const w = await spawnWorker(config, ['--queue', 'm', '--metrics', '--http-port', String(port)]);
  t.after(stopAll([w]));
  // The start line names the address the surface is bound to.
  assert.equal(findLogLine(w.stderr(), 'started', 'worker')?.http, `127.0.0.1:${port}`);
  await waitFor('30 recorded', async () => (await redis.hlen(r.queueDone('m'))) === 30, 30_000);
  const base = `http://127.0.0.1:${port}`;
  assert.equal((await fetch(`${base}/livez`)).status, 200);
  assert.equal((await fetch(`${base}/readyz`)).status, 200);
  const text = await (await fetch(`${base}/metrics`)).text();
  assert.match(text, /^stratus_queue_items_processed_total\{outcome="done"\} 30$/m);
  assert.match(text, /^stratus_queue_items_processed_total\{outcome="failed"\} 0$/m);
  assert.match(text, /^stratus_dependency_up\{dependency="redis"\} 1$/m);
  assert.match(text, /^stratus_ready 1$/m);
  const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(`${lint.stdout}${lint.stderr}`.trim(), '', 'promtool check metrics');
  w.child.kill('SIGTERM');
  assert.equal(await w.exited, 0);
});

test('a take whose answer was lost (the connection reset after Redis moved the item) is given back and handled, not left in the processing list; items in hand are not', { timeout: 60_000, skip: SKIP_ON_REDIS_CLUSTER }, async (t) => {
  const base = testConfig();
  const proxy = await FaultProxy.start(base.redis.port);
  t.after(() => proxy.close());
  const config = testConfig({ 'redis-port': String(proxy.port), 'redis-key-prefix': base.redis.keyPrefix });
  const redis = await queueRedis(base);
  t.after(() => deleteKeys(redis, base));
  const r = topology(base).redis;
  // 2 loops, each item held 1.5 s: while one loop's take fails, the other holds an item.
  const worker = await QueueWorker.start(config, { queue: 'strays', concurrency: 2, handler: HANDLERS.get('record')!, handlerDelayMs: 1500, workerId: 'w-strays' });
  t.after(() => worker.stop());
  const [held, stray] = events(2, 'strays').map(item);
  await new ListQueue(redis, base, 'strays').push([held!]);
  await waitFor('one item in hand', async () => (await redis.llen(r.queueProcessing('strays', 'w-strays'))) === 1, 10_000);
  // What a lost take leaves: an item in our processing list that no loop holds.
  await redis.lpush(r.queueProcessing('strays', 'w-strays'), stray!);
  proxy.reset();
  await waitFor('both recorded', async () => (await redis.hlen(r.queueDone('strays'))) === 2, 20_000);
  await waitFor('the processing list empty', async () => (await redis.llen(r.queueProcessing('strays', 'w-strays'))) === 0, 10_000);
  assert.equal(worker.stats.reclaimed, 1, 'the stray given back, the item in hand not');
  assert.equal(worker.stats.done, 2);
  assert.equal(worker.stats.duplicates, 0);
});
