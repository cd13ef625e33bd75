/**
 * Admission (src/gateway/admission.ts) against the real Redis: one script call per event-loop turn,
 * verdicts in order per device, WAIT turning into a retry or BUSY, UNAVAILABLE when Redis does not
 * answer, OVERLOADED past admitQueueMax, settled() and the lease's release with k recorded.
 */
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { testConfig } from '../../helpers/config.js';
import { connectRedis, createRedis, disconnectRedis, type RedisClient } from '../../../src/redis/client.js';
import { Admission, type AdmitOutcome } from '../../../src/gateway/admission.js';
import { RejectCode } from '../../../src/gateway/validate.js';
import { topology, type Topology } from '../../../src/topology.js';
import type { Config } from '../../../src/config.js';

interface Harness {
  config: Config;
  t: Topology;
  redis: RedisClient;
  admission: Admission;
  /** stratusAdmit calls so far. */
  calls(): number;
  /** Submits (device, seq); the promise resolves with its outcome. */
  submit(device: string, seq: number): Promise<AdmitOutcome>;
}

async function harness(t: TestContext, overrides: Record<string, string> = {}, instanceId = 'gw-me'): Promise<Harness> {
  const config = testConfig(overrides);
  const topo = topology(config);
  const redis = createRedis(config, 'test-admission');
  await connectRedis(redis);
  const admission = new Admission(config, instanceId, redis);
  t.after(async () => {
    admission.stop();
    disconnectRedis(redis);
    // Its own connection: a test may have closed the Admission's.
    const admin = createRedis(config, 'test-admission-cleanup');
    await connectRedis(admin);
    const keys = await admin.keys(`${topo.redis.prefix}*`);
    if (keys.length > 0) await admin.del(...keys);
    disconnectRedis(admin);
  });
  let calls = 0;
  const r = redis as unknown as { stratusAdmit(...a: unknown[]): Promise<unknown> };
  const orig = r.stratusAdmit.bind(redis);
  r.stratusAdmit = (...a: unknown[]) => {
    calls++;
    return orig(...a);
  };
  return {
    config,
    t: topo,
    redis,
    admission,
    calls: () => calls,
    submit: (device, seq) => new Promise((resolve) => admission.submit({ deviceId: device, seq, done: resolve, orphaned: () => {} })),
  };
}

/** Waits until `cond` holds, checking every 10 ms; fails after `timeoutMs`. */
async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const taken = (seq: number): AdmitOutcome => ({ taken: true, seq });
const code = (o: AdmitOutcome): string => (o.taken ? `taken ${o.seq}` : o.reject.code);

test('every submit of one turn goes in one script call; outcomes in order per device', async (t) => {
  const h = await harness(t);
  const order: string[] = [];
  const all: Promise<AdmitOutcome>[] = [];
  for (let s = 1; s <= 50; s++) {
    for (const d of ['a', 'b', 'c']) {
      all.push(h.submit(d, s).then((o) => (order.push(`${d}:${code(o)}`), o)));
    }
  }
  const outcomes = await Promise.all(all);
  assert.equal(h.calls(), 1);
  assert.deepEqual(outcomes, Array.from({ length: 150 }, (_, i) => taken(Math.floor(i / 3) + 1)));
  for (const d of ['a', 'b', 'c']) {
    assert.deepEqual(order.filter((x) => x.startsWith(`${d}:`)), Array.from({ length: 50 }, (_, i) => `${d}:taken ${i + 1}`));
    assert.equal(await h.redis.hget(h.t.redis.deviceState(d), 'a'), '50');
    assert.equal(await h.redis.get(h.t.redis.admission(d)), 'gw-me');
  }
  assert.equal(h.admission.pending, 0);
});

test('admitBatchMax splits a turn into several calls, in order', async (t) => {
  const h = await harness(t, { 'gateway-admit-batch-max': '4' });
  const outcomes = await Promise.all(Array.from({ length: 10 }, (_, i) => h.submit('d', i + 1)));
  assert.deepEqual(outcomes, Array.from({ length: 10 }, (_, i) => taken(i + 1)));
  assert.equal(h.calls(), 3);
});

test('DUPLICATE, OUT_OF_ORDER and numbering (seq 0) carry the device\'s last seq', async (t) => {
  const h = await harness(t);
  assert.deepEqual(await Promise.all([h.submit('d', 1), h.submit('d', 2), h.submit('d', 5)]), [taken(1), taken(2), taken(5)]);
  for (const s of [1, 2, 5]) assert.equal(h.admission.settled('d', s, true), true);
  await until('the lease released', async () => (await h.redis.exists(h.t.redis.admission('d'))) === 0);
  const [dup, ooo, next, numbered] = await Promise.all([h.submit('d', 2), h.submit('d', 3), h.submit('d', 6), h.submit('d', 0)]);
  assert.equal(dup.taken, false);
  assert.equal(ooo.taken, false);
  if (dup.taken || ooo.taken) return;
  assert.deepEqual({ seq: dup.reject.seq, code: dup.reject.code, lastSeq: dup.reject.lastSeq }, { seq: 2, code: RejectCode.DUPLICATE, lastSeq: 7 });
  assert.deepEqual({ seq: ooo.reject.seq, code: ooo.reject.code, lastSeq: ooo.reject.lastSeq }, { seq: 3, code: RejectCode.OUT_OF_ORDER, lastSeq: 7 });
  assert.deepEqual([next, numbered], [taken(6), taken(7)]);
});

test('the lease is released when the last in-flight event settles, with k the durable prefix', async (t) => {
  const h = await harness(t);
  await Promise.all([1, 2, 3].map((s) => h.submit('d', s)));
  assert.equal(h.admission.settled('d', 1, true), true);
  assert.equal(h.admission.settled('d', 2, true), true);
  // k of 2 rides on the next call; no call of its own.
  const callsBefore = h.calls();
  assert.deepEqual(await h.submit('e', 1), taken(1));
  assert.equal(h.calls(), callsBefore + 1);
  assert.equal(await h.redis.hget(h.t.redis.deviceState('d'), 'k'), '2');
  assert.equal(await h.redis.get(h.t.redis.admission('d')), 'gw-me', 'still held: 3 is in flight');
  assert.equal(h.admission.settled('d', 3, true), true);
  await until('d released', async () => (await h.redis.exists(h.t.redis.admission('d'))) === 0);
  assert.equal(await h.redis.hget(h.t.redis.deviceState('d'), 'k'), '3');
  assert.equal(await h.redis.get(h.t.redis.admission('e')), 'gw-me', 'e is still held');
});

test('a failed report freezes k: later durable reports do not move it past the failure', async (t) => {
  const h = await harness(t);
  await Promise.all([1, 2, 3].map((s) => h.submit('d', s)));
  assert.equal(h.admission.settled('d', 1, true), true);
  assert.equal(h.admission.settled('d', 2, false), false);
  assert.equal(h.admission.settled('d', 3, true), true);
  await until('d released', async () => (await h.redis.exists(h.t.redis.admission('d'))) === 0);
  assert.equal(await h.redis.hget(h.t.redis.deviceState('d'), 'k'), '1');
  // 2 and 3 are in (k, a]: a resend takes them again.
  assert.deepEqual(await Promise.all([h.submit('d', 2), h.submit('d', 3)]), [taken(2), taken(3)]);
});

test('a resend of a seq still in flight here waits, then is DUPLICATE once its report is recorded', async (t) => {
  const h = await harness(t, { 'gateway-admit-wait-ms': '5000' });
  await Promise.all([1, 2, 3].map((s) => h.submit('d', s)));
  let resend: AdmitOutcome | null = null;
  const p = h.submit('d', 2).then((o) => (resend = o));
  // A later seq of the device must not overtake the waiting one.
  let later: AdmitOutcome | null = null;
  const q = h.submit('d', 4).then((o) => (later = o));
  // Both wait here (not in a call still unanswered, where pending does not count them).
  await until('the resend asked at least twice, both waiting here', () => h.calls() >= 3 && h.admission.pending === 2);
  assert.equal(resend, null);
  assert.equal(later, null);
  for (const s of [1, 2, 3]) h.admission.settled('d', s, true);
  await Promise.all([p, q]);
  assert.equal(code(resend!), RejectCode.DUPLICATE);
  assert.deepEqual(later, taken(4));
});

test('BUSY after gateway.admitWaitMs while another instance holds the lease; other devices flow', async (t) => {
  const h = await harness(t, { 'gateway-admit-wait-ms': '300' });
  await h.redis.set(h.t.redis.admission('d'), 'gw-other', 'PX', 10_000);
  const start = Date.now();
  const busy = Promise.all([h.submit('d', 1), h.submit('d', 2)]).then((o) => ({ o, ms: Date.now() - start }));
  assert.deepEqual(await h.submit('e', 1), taken(1));
  const { o, ms } = await busy;
  assert.deepEqual(o.map(code), [RejectCode.BUSY, RejectCode.BUSY]);
  assert.ok(ms >= 300 && ms < 2000, `BUSY after ${ms} ms`);
  assert.equal(o[0]!.taken ? -1 : o[0]!.reject.lastSeq, 0);
  assert.equal(await h.redis.get(h.t.redis.admission('d')), 'gw-other');
  assert.equal(await h.redis.exists(h.t.redis.deviceState('d')), 0);
  assert.equal(h.admission.pending, 0);
});

test('events waiting on another instance\'s lease are taken, in order, once it is released', async (t) => {
  const h = await harness(t, { 'gateway-admit-wait-ms': '5000' });
  await h.redis.set(h.t.redis.admission('d'), 'gw-other', 'PX', 10_000);
  const all = Promise.all([h.submit('d', 1), h.submit('d', 2)]);
  await until('a retry', () => h.calls() >= 2);
  // Submitted while the device waits: joins behind the waiting ones.
  const third = h.submit('d', 3);
  await h.redis.del(h.t.redis.admission('d'));
  assert.deepEqual([...(await all), await third], [taken(1), taken(2), taken(3)]);
  assert.equal(await h.redis.get(h.t.redis.admission('d')), 'gw-me');
});

test('UNAVAILABLE when Redis does not answer within gateway.admitTimeoutMs', async (t) => {
  // A TCP server that accepts and never answers: ioredis waits (offline queue) for a ready check.
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const config = testConfig({ 'redis-port': String(port), 'gateway-admit-timeout-ms': '300' });
  const redis = createRedis(config, 'test-admission-silent', { offlineQueue: true });
  const admission = new Admission(config, 'gw-me', redis);
  t.after(() => {
    admission.stop();
    // The failed call queued a lease release for d, retried with every call until one succeeds,
    // (see the hot-loop test below): let the next one succeed so any loop ends.
    (redis as unknown as { stratusAdmit(): Promise<number[]> }).stratusAdmit = async () => [];
    disconnectRedis(redis);
    for (const s of sockets) s.destroy();
    server.close();
  });
  const start = Date.now();
  const outcomes = await Promise.all([1, 2].map((seq) => new Promise<AdmitOutcome>((resolve) => admission.submit({ deviceId: 'd', seq, done: resolve, orphaned: () => {} }))));
  const ms = Date.now() - start;
  assert.deepEqual(outcomes.map(code), [RejectCode.UNAVAILABLE, RejectCode.UNAVAILABLE]);
  assert.deepEqual(outcomes.map((o) => (o.taken ? -1 : o.reject.seq)), [1, 2]);
  assert.ok(ms >= 300 && ms < 3000, `UNAVAILABLE after ${ms} ms`);
  assert.equal(admission.pending, 0);
  assert.ok(sockets.size >= 1, 'the client did connect to the silent server');
});

test('OVERLOADED past gateway.admitQueueMax, at once; the queued ones are taken', async (t) => {
  const h = await harness(t, { 'gateway-admit-queue-max': '3' });
  const sync: string[] = [];
  const all = [1, 2, 3, 4, 5].map(
    (s) =>
      new Promise<AdmitOutcome>((resolve) =>
        h.admission.submit({
          deviceId: 'd',
          seq: s,
          done: (o) => {
            sync.push(`${s}:${code(o)}`);
            resolve(o);
          },
          orphaned: () => {},
        }),
      ),
  );
  // Refused synchronously, before any call.
  assert.deepEqual(sync, [`4:${RejectCode.OVERLOADED}`, `5:${RejectCode.OVERLOADED}`]);
  const outcomes = await Promise.all(all);
  assert.deepEqual(outcomes.slice(0, 3), [taken(1), taken(2), taken(3)]);
  assert.match(outcomes[3]!.taken ? '' : outcomes[3]!.reject.message, /gateway\.admitQueueMax/);
  assert.equal(h.calls(), 1);
  assert.equal(await h.redis.hget(h.t.redis.deviceState('d'), 'a'), '3');
});

test('settled() is false once the lease is lost and its time passed; true while renewals keep it', async (t) => {
  const h = await harness(t, { 'gateway-admit-lease-ms': '1000' });
  const takenAt = Date.now();
  await Promise.all([h.submit('kept', 1), h.submit('lost', 1), h.submit('lost', 2)]);
  // Another instance has the lease of `lost` (ours ran out, it took the device): renewals fail.
  await h.redis.set(h.t.redis.admission('lost'), 'gw-other', 'PX', 10_000);
  // Past the lease (1000 ms): `kept` was renewed (every 333 ms), `lost` was not.
  await until('the lease time passed', () => Date.now() > takenAt + 1100, 3000);
  assert.equal(await h.redis.get(h.t.redis.admission('kept')), 'gw-me', 'renewed in Redis');
  assert.equal(h.admission.settled('kept', 1, true), true);
  assert.equal(h.admission.settled('lost', 1, true), false);
  assert.equal(h.admission.settled('lost', 2, true), false);
  await until('kept released', async () => (await h.redis.exists(h.t.redis.admission('kept'))) === 0);
  // Our release of `lost` leaves the other instance's lease and records no k.
  assert.equal(await h.redis.get(h.t.redis.admission('lost')), 'gw-other');
  assert.equal(await h.redis.hget(h.t.redis.deviceState('lost'), 'k'), '0');
  assert.equal(await h.redis.hget(h.t.redis.deviceState('kept'), 'k'), '1');
});

test('a report for a device with nothing in flight is a programmer error (assert)', async (t) => {
  const h = await harness(t);
  assert.throws(() => h.admission.settled('nothing', 1, true), /nothing of it in flight/);
});

test('no release reaches Redis while a call that takes the device is unanswered: the lease its new event needs stays', async (t) => {
  // d:1 is taken (call 1). d:2 goes out in call 2; while call 2 is in flight, Kafka reports d:1
  // durable: d has nothing in flight, so settled() queues {k: 1, release}. Call 2 then takes d:2
  // (the lease is set again), and call 3 carries the stale release: the lease is deleted while
  // d:2 waits for Kafka here. Another instance can then take d:3 and produce it before d:2 lands
  // (the forwarder's dedupe drops d:2's result), and settled(d, 2) still acks (local lease clock).
  const h = await harness(t);
  assert.deepEqual(await h.submit('d', 1), taken(1));
  const r = h.redis as unknown as { stratusAdmit(...a: unknown[]): Promise<unknown> };
  const counted = r.stratusAdmit;
  r.stratusAdmit = (...a: unknown[]) => {
    const p = counted(...a);
    if (h.calls() === 2) h.admission.settled('d', 1, true);
    return p;
  };
  assert.deepEqual(await h.submit('d', 2), taken(2));
  // Another call goes out (for another device): it carries whatever is queued for d.
  assert.deepEqual(await h.submit('e', 1), taken(1));
  assert.equal(await h.redis.get(h.t.redis.admission('d')), 'gw-me', 'd:2 is in flight here: the lease must stay');
  // d:2 settles: now the release goes, with the durable prefix k = 2.
  h.admission.settled('d', 2, true);
  await until('the release', async () => (await h.redis.exists(h.t.redis.admission('d'))) === 0);
  assert.equal(await h.redis.hget(h.t.redis.deviceState('d'), 'k'), '2');
});

test('a failed call keeps the k it carried for a device that also had events in it', async (t) => {
  // d:1..5 taken and reported durable: {k: 5, release} waits for the next call. d:6 arrives in the
  // same turn, so that call carries the update and a group for d. Redis fails the call (here: the
  // connection is closed before it is sent, so it never runs). The catch block first queues
  // {k: 0, release} for d (nothing held), then re-queues the lost updates only for devices not
  // already queued: {k: 5} is dropped. The lease is released with k still 0, so a resend of a
  // durable seq (a device whose counter restarted) is taken again instead of DUPLICATE; its result
  // is dropped by the forwarder's dedupe (h): acked, never delivered.
  const h = await harness(t);
  assert.deepEqual(await Promise.all([1, 2, 3, 4, 5].map((s) => h.submit('d', s))), [1, 2, 3, 4, 5].map(taken));
  const r = h.redis as unknown as { stratusAdmit(...a: unknown[]): Promise<unknown> };
  const counted = r.stratusAdmit;
  let failed = false;
  r.stratusAdmit = (...a: unknown[]) => {
    if (!failed) {
      // Call 2, never sent to Redis.
      failed = true;
      return Promise.reject(new Error('Connection is closed.'));
    }
    return counted(...a);
  };
  for (const s of [1, 2, 3, 4, 5]) h.admission.settled('d', s, true);
  assert.equal(code(await h.submit('d', 6)), RejectCode.UNAVAILABLE);
  await until('the release call answered', async () => h.calls() >= 2 && (await h.redis.exists(h.t.redis.admission('d'))) === 0);
  assert.equal(await h.redis.hget(h.t.redis.deviceState('d'), 'k'), '5', 'k of the durable prefix recorded');
  assert.equal(code(await h.submit('d', 3)), RejectCode.DUPLICATE);
});

test('a call that fails at once is not retried in a hot loop, nor at all after stop()', async (t) => {
  // A lease release that cannot be sent is put back and the call scheduled again with setImmediate,
  // with no backoff and no check of stop(). With a client that fails at once (here: disconnected,
  // as after gateway.close()'s link.close()) that is one script call per event-loop turn, 100% CPU,
  // and a process that never exits (the gateway stops Admission before its producer flushes, so
  // reports, and their releases, still come after stop()).
  const h = await harness(t);
  assert.deepEqual(await h.submit('d', 1), taken(1));
  h.admission.stop();
  disconnectRedis(h.redis);
  const r = h.redis as unknown as { stratusAdmit(...a: unknown[]): Promise<unknown> };
  let failedCalls = 0;
  const counted = r.stratusAdmit;
  r.stratusAdmit = (...a: unknown[]) => {
    failedCalls++;
    return counted(...a);
  };
  t.after(() => {
    // End the loop whatever the outcome: the next call succeeds.
    r.stratusAdmit = async () => [];
  });
  h.admission.settled('d', 1, true);
  for (let turn = 0; turn < 100; turn++) await new Promise((resolve) => setImmediate(resolve));
  assert.ok(failedCalls <= 2, `${failedCalls} script calls in 100 event-loop turns after stop()`);
});
