/**
 * The Redis round trip: N messages through PUBLISH/SUBSCRIBE and N items through a list used as a
 * FIFO queue, every one accounted for. `stack up` verification, the demo and the tests use it.
 *
 * Reads and writes: this run's own channel and list (topology probeChannel(runId) and
 * probeList(runId), under config.redis.keyPrefix); the list is deleted on every path.
 * Guarantees checked: a subscriber receives every message published while it is subscribed, in
 * publish order; the list gives items back in push order, each once. The report counts what was
 * not; a round trip that cannot finish within its time budget throws REDIS_UNAVAILABLE.
 *
 * The list as a queue: LPUSH adds at the head, RPOP takes from the tail.
 *
 *   LPUSH q 0 1 2          head [2, 1, 0] tail
 *   RPOP q 1000            -> 0, 1, 2            first in, first out
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Config } from '../config.js';
import { StratusError } from '../errors.js';
import { topology } from '../topology.js';
import { connectRedis, createRedis, disconnectRedis, redisUnavailable, type RedisClient } from './client.js';

export interface RedisRoundTripOptions {
  /** Messages to publish, and items to push and pop. */
  readonly messages: number;
  /** Budget for the whole round trip; 30000 when not given. */
  readonly timeoutMs?: number;
}

export interface RedisRoundTripReport {
  readonly published: number;
  /** Messages the subscriber received on the run's channel. */
  readonly received: number;
  /** Messages received other than in publish order (must be 0). */
  readonly outOfOrder: number;
  /** From the first PUBLISH to the last message received. */
  readonly pubsubMs: number;
  /** Items on the list after the pushes (LPUSH's answer). */
  readonly pushed: number;
  readonly popped: number;
  /** Items popped other than in push order (must be 0: the list is FIFO). */
  readonly notFifo: number;
  /** The variadic LPUSH (one command per LIST_PUSH_MAX items: one for up to 100,000). */
  readonly pushMs: number;
  /** RPOP, LIST_POP_MAX items a command, until the list is empty. */
  readonly popMs: number;
  /** pushMs + popMs. */
  readonly listMs: number;
}

/** PUBLISH commands per pipeline (one round trip each). */
const PUBLISH_CHUNK_MAX = 1000;
/**
 * Messages published but not yet received, beyond which publishing waits. Redis disconnects a
 * subscriber whose output buffer passes client-output-buffer-limit (pubsub: 32 MB, or 8 MB for
 * 60 s); waiting for the subscriber keeps the buffer small whatever N is.
 */
const SUBSCRIBER_LAG_MAX = 10_000;
/** Items in one variadic LPUSH; larger N is pushed in several, bounding one command's size. */
const LIST_PUSH_MAX = 100_000;
/** Items one RPOP takes (RPOP key count, Redis >= 6.2). */
const LIST_POP_MAX = 1000;

/** PUBLISH/SUBSCRIBE and a FIFO list, each with `messages` items, through the real server; see the file comment. */
export async function redisRoundTrip(config: Config, opts: RedisRoundTripOptions): Promise<RedisRoundTripReport> {
  const n = opts.messages;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  assert.ok(Number.isInteger(n) && n >= 1, `redisRoundTrip messages must be an integer >= 1 (got ${n})`);
  assert.ok(Number.isFinite(timeoutMs) && timeoutMs > 0, `redisRoundTrip timeoutMs must be > 0 (got ${timeoutMs})`);
  const runId = randomUUID();
  const t = topology(config);
  const channel = t.redis.probeChannel(runId);
  const list = t.redis.probeList(runId);

  // Every wait below races this one timer, so the round trip ends within its budget whatever the
  // server does (ioredis commands have no timeout of their own).
  let timer: NodeJS.Timeout | undefined;
  let step = 'connect';
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`time budget of ${timeoutMs} ms ran out during ${step}`)), timeoutMs);
  });
  // Both are raced below, where their errors are thrown; these only keep the side that lost the
  // race from becoming an unhandled rejection.
  expired.catch(() => {});
  const within = <T>(what: string, p: Promise<T>): Promise<T> => {
    step = what;
    p.catch(() => {});
    return Promise.race([p, expired]);
  };

  const clientOptions = { connectTimeoutMs: Math.min(timeoutMs, 5000), reconnect: false, offlineQueue: false };
  const sub = createRedis(config, 'probe-sub', clientOptions);
  const pub = createRedis(config, 'probe-pub', clientOptions);
  try {
    await within('connect', Promise.all([connectRedis(sub), connectRedis(pub)]));

    // PUBLISH -> SUBSCRIBE. Message i carries String(i); the subscriber expects them in that order.
    let received = 0;
    let outOfOrder = 0;
    let lastAt = 0;
    let waiter: { readonly target: number; readonly resolve: () => void } | null = null;
    sub.on('message', (ch: string, message: string) => {
      if (ch !== channel) return;
      if (Number(message) !== received) outOfOrder++;
      received++;
      lastAt = performance.now();
      if (waiter !== null && received >= waiter.target) {
        waiter.resolve();
        waiter = null;
      }
    });
    const receivedAtLeast = (target: number): Promise<void> =>
      received >= target ? Promise.resolve() : new Promise<void>((resolve) => (waiter = { target, resolve }));
    // Resolves once the server has registered the subscription: nothing published after it is missed.
    await within('SUBSCRIBE', sub.subscribe(channel));
    const t0 = performance.now();
    for (let i = 0; i < n; i += PUBLISH_CHUNK_MAX) {
      await within('waiting for the subscriber', receivedAtLeast(i - SUBSCRIBER_LAG_MAX));
      const p = pub.pipeline();
      for (let j = i; j < Math.min(n, i + PUBLISH_CHUNK_MAX); j++) p.publish(channel, String(j));
      const results = await within('PUBLISH', p.exec());
      const failed = results?.find(([err]) => err !== null);
      if (failed) throw failed[0];
    }
    await within('waiting for the subscriber', receivedAtLeast(n));
    const pubsubMs = lastAt - t0;
    await within('UNSUBSCRIBE', sub.unsubscribe(channel));

    // The list. Pushed in one variadic LPUSH per LIST_PUSH_MAX items, never one command per item.
    const t1 = performance.now();
    let pushed = 0;
    for (let i = 0; i < n; i += LIST_PUSH_MAX) {
      const items: string[] = [];
      for (let j = i; j < Math.min(n, i + LIST_PUSH_MAX); j++) items.push(String(j));
      pushed = await within('LPUSH', pub.lpush(list, ...items));
    }
    const t2 = performance.now();
    let popped = 0;
    let notFifo = 0;
    for (;;) {
      const batch = await within('RPOP', pub.rpop(list, LIST_POP_MAX));
      if (batch === null || batch.length === 0) break;
      for (const v of batch) if (Number(v) !== popped++) notFifo++;
    }
    const t3 = performance.now();
    return { published: n, received, outOfOrder, pubsubMs, pushed, popped, notFifo, pushMs: t2 - t1, popMs: t3 - t2, listMs: t3 - t1 };
  } catch (err) {
    if (err instanceof StratusError) throw err;
    throw redisUnavailable(config, 'failed a publish/subscribe and list round trip', err);
  } finally {
    clearTimeout(timer);
    await cleanUp(pub, list);
    disconnectRedis(sub);
    disconnectRedis(pub);
  }
}

/** Deletes the run's list if the connection still works; bounded, as the server may be gone. */
async function cleanUp(pub: RedisClient, list: string): Promise<void> {
  if (pub.status !== 'ready') return;
  let timer: NodeJS.Timeout | undefined;
  // Best effort: the probe's list has a unique name and nothing reads it if it stays.
  await Promise.race([pub.del(list), new Promise((resolve) => (timer = setTimeout(resolve, 2000)))]).catch(() => {});
  clearTimeout(timer);
}
