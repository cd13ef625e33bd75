/**
 * `stratus worker`: a reliable consumer of one list queue (list-queue.ts has the protocol and the
 * guarantee: at least once).
 *
 * Reads: the queue (BLMOVE RIGHT LEFT into this worker's processing list). Writes: what the handler
 * writes; then LREM on success, or a retry / the dead-letter list on failure. Keeps its heartbeat
 * key leased (queue.leaseMs, renewed every third of it) and, every half lease, moves back the items
 * of workers whose lease lapsed (kill -9, a lost host).
 *
 * Concurrency N = N loops, each with its own connection (BLMOVE blocks the connection it runs on),
 * so at most N items are in progress here. stop() lets each loop finish the item it holds, then
 * gives back anything still in the processing list and deregisters: nothing is left behind.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Config } from '../config.js';
import { metrics } from '../http/metrics.js';
import { errorText, RateLimitedLog, roleLog } from '../log.js';
import { connectRedis, createRedis, disconnectRedis, redisUnavailable, type RedisClient } from '../redis/client.js';
import { topology } from '../topology.js';
import type { HandlerContext, QueueHandler } from './handlers.js';
import { ListQueue } from './list-queue.js';

export const CONCURRENCY_MAX = 256;

export interface WorkerOptions {
  /** A valid queue name (queueNameProblem() === null). */
  queue: string;
  concurrency: number;
  handler: QueueHandler;
  /** Simulated work per item before the handler runs (drills and tests). */
  handlerDelayMs?: number;
  /** Default: <hostname>-<pid>-<6 hex>. */
  workerId?: string;
}

export interface WorkerStats {
  /** Handler succeeded (`duplicate`: the record handler had the event already). */
  done: number;
  duplicates: number;
  /** Handler threw; each is one try. */
  failed: number;
  deadLettered: number;
  /** Items this worker moved back from dead workers. */
  reclaimed: number;
}

/** How long one BLMOVE waits: bounds how long stop() waits for an idle loop. */
const TAKE_TIMEOUT_S = 1;
/** Pause after a Redis error before trying again. */
const RETRY_MS = 500;
/** Between the two reads of a stray check (returnStrays): far longer than a take's answer takes to arrive. */
const STRAY_CONFIRM_MS = 1000;

const log = roleLog('worker');
/** Redis failures repeat once per retry while Redis is away: at most 5 lines a minute per operation. */
const redisLog = new RateLimitedLog(log, { linesMax: 5, intervalMs: 60_000 });
/** Handler failures: an item's content is a client's, so its failures come at a client's rate. */
const handlerLog = new RateLimitedLog(log);

export class QueueWorker {
  readonly stats: WorkerStats = { done: 0, duplicates: 0, failed: 0, deadLettered: 0, reclaimed: 0 };
  /** Invariant: false once stop() began; loops take no new item after that. */
  private running = true;
  private readonly loops: Promise<void>[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly blocking: RedisClient[] = [];
  private stopped: Promise<void> | null = null;
  /** Items the loops hold now (taken, not settled), with their counts: at most `concurrency`. */
  private readonly inHand = new Map<string, number>();
  /** Items the loops took while a stray check runs (at most what they take in STRAY_CONFIRM_MS). */
  private takenSince: string[] = [];
  /** A take failed or its connection was lost since the last completed stray check: the processing list may hold a stray. */
  private strayCheckDue = false;
  private strayCheck: Promise<void> | null = null;

  private constructor(
    readonly config: Config,
    readonly id: string,
    readonly queue: ListQueue,
    private readonly redis: RedisClient,
    private readonly handler: QueueHandler,
    private readonly delayMs: number,
  ) {}

  static async start(config: Config, o: WorkerOptions): Promise<QueueWorker> {
    assert(Number.isInteger(o.concurrency) && o.concurrency >= 1 && o.concurrency <= CONCURRENCY_MAX);
    const id = o.workerId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    const clients: RedisClient[] = [];
    const connect = async (name: string) => {
      // Offline queue on: a command issued during a reconnect waits for it instead of failing; the
      // loops bound what is issued (one command each at a time).
      const c = createRedis(config, name, { offlineQueue: true });
      clients.push(c);
      await connectRedis(c);
      return c;
    };
    try {
      const redis = await connect(`worker-${id}`);
      const w = new QueueWorker(config, id, new ListQueue(redis, config, o.queue), redis, o.handler, o.handlerDelayMs ?? 0);
      for (let i = 0; i < o.concurrency; i++) {
        const b = await connect(`worker-${id}-${i}`);
        // A connection lost with a take on it: Redis may have moved an item whose answer never
        // came (ioredis sends the take again, or fails it). Checked before the next take.
        b.on('reconnecting', () => (w.strayCheckDue = true));
        w.blocking.push(b);
      }
      // Registered (heartbeat + id in the set) before the first BLMOVE, so a reaper never sees our
      // processing list without our id.
      await w.queue.heartbeat(id);
      // A missed heartbeat is retried at the next tick (three per lease); if Redis stays away past
      // the lease, the items are reaped and run again elsewhere (at least once).
      w.timers.push(setInterval(() => void w.queue.heartbeat(id).catch((err: unknown) => redisLog.warn('heartbeat', { worker: id, err: errorText(err) }, 'heartbeat failed; trying again next tick')), Math.floor(config.queue.leaseMs / 3)));
      w.timers.push(setInterval(() => void w.reap(), Math.floor(config.queue.leaseMs / 2)));
      await w.reap();
      const ctx: HandlerContext = { redis, doneKey: topology(config).redis.queueDone(o.queue), doneTtlMs: config.redis.deviceStateTtlMs };
      for (const b of w.blocking) w.loops.push(w.loop(b, ctx));
      return w;
    } catch (err) {
      for (const c of clients) disconnectRedis(c);
      throw redisUnavailable(config, 'refused the worker\'s connection', err);
    }
  }

  private async reap(): Promise<void> {
    try {
      const r = await this.queue.reapDead(this.id);
      this.stats.reclaimed += r.requeued + r.deadLettered;
      this.stats.deadLettered += r.deadLettered;
      metrics.queueItemsReclaimed.inc(r.requeued + r.deadLettered);
      metrics.queueItemsDeadLettered.inc(r.deadLettered);
      if (r.workers > 0) log.warn({ worker: this.id, workers: r.workers, requeued: r.requeued, deadLettered: r.deadLettered }, `reaped ${r.workers} dead worker(s): ${r.requeued} item(s) back in the queue, ${r.deadLettered} dead-lettered`);
    } catch (err) {
      // Redis unreachable: the next round tries again (nothing is reaped meanwhile, nothing lost).
      redisLog.warn('reap', { worker: this.id, err: errorText(err) }, 'reaping dead workers failed; trying again next round');
    }
  }

  private async loop(blocking: RedisClient, ctx: HandlerContext): Promise<void> {
    while (this.running) {
      if (this.strayCheckDue) await (this.strayCheck ??= this.returnStrays().finally(() => (this.strayCheck = null)));
      let item: string | null;
      try {
        item = await ListQueue.take(blocking, this.config, this.queue.name, this.id, TAKE_TIMEOUT_S);
      } catch (err) {
        // Redis unreachable. A take is one atomic move, but its answer can be lost after Redis made
        // it (the connection reset in between): the item is then in our processing list and no
        // loop holds it. returnStrays() gives such items back once Redis answers again.
        redisLog.warn('take', { worker: this.id, err: errorText(err) }, 'taking an item failed; trying again');
        this.strayCheckDue = true;
        await sleep(RETRY_MS);
        continue;
      }
      if (item === null) continue;
      // An item taken is always settled, even while stopping: it must not stay in our list.
      this.inHand.set(item, (this.inHand.get(item) ?? 0) + 1);
      if (this.strayCheck !== null) this.takenSince.push(item);
      try {
        await this.handle(item, ctx);
      } finally {
        const n = this.inHand.get(item)! - 1;
        if (n === 0) this.inHand.delete(item);
        else this.inHand.set(item, n);
      }
    }
  }

  /**
   * Gives back the items of our processing list that no loop holds: takes whose answer was lost.
   * Two reads STRAY_CONFIRM_MS apart, so a take whose answer is still on its way (its item already
   * in the list, not yet in a loop's hands) is not taken for a stray: an item counts only if it is
   * in both reads, and neither in hand now nor taken in between. Such an item goes back to the
   * front of the queue (at least once: if a loop did hold it after all, it runs twice).
   */
  private async returnStrays(): Promise<void> {
    // Cleared first: a connection lost during this check asks for another.
    this.strayCheckDue = false;
    try {
      this.takenSince = [];
      const first = counts(await this.queue.processing(this.id));
      await sleep(STRAY_CONFIRM_MS);
      const second = counts(await this.queue.processing(this.id));
      const taken = counts(this.takenSince);
      this.takenSince = [];
      let returned = 0;
      for (const [item, n] of second) {
        const strays = Math.min(n, first.get(item) ?? 0) - (this.inHand.get(item) ?? 0) - (taken.get(item) ?? 0);
        for (let i = 0; i < strays; i++) if (await this.queue.giveBack(this.id, item)) returned++;
      }
      if (returned > 0) {
        metrics.queueItemsReclaimed.inc(returned);
        this.stats.reclaimed += returned;
        log.warn({ worker: this.id, returned }, `${returned} item(s) taken while the connection failed were in our processing list unhandled; given back to the queue`);
      }
    } catch (err) {
      // Redis still away: checked again before the next take.
      this.strayCheckDue = true;
      redisLog.warn('strays', { worker: this.id, err: errorText(err) }, 'checking the processing list for lost takes failed; trying again');
      await sleep(RETRY_MS);
    }
  }

  private async handle(item: string, ctx: HandlerContext): Promise<void> {
    let outcome: 'done' | 'duplicate' | 'failed';
    try {
      if (this.delayMs > 0) await sleep(this.delayMs);
      outcome = await this.handler.run(item, ctx);
    } catch (err) {
      // Counted below (stratus_queue_items_processed_total{outcome="failed"}) and retried or
      // dead-lettered by queue.fail; an item's content is a client's, so the line is rate-limited.
      handlerLog.warn('handler', { worker: this.id, err: errorText(err) }, 'handler threw; the item counts as failed');
      outcome = 'failed';
    }
    for (;;) {
      try {
        if (outcome === 'failed') {
          const r = await this.queue.fail(this.id, item);
          this.stats.failed++;
          if (r.outcome === 'dead-lettered') {
            this.stats.deadLettered++;
            metrics.queueItemsDeadLettered.inc();
          }
        } else {
          // false: our lease lapsed and the item was reaped; it runs again elsewhere (at least once).
          await this.queue.done(this.id, item);
          if (outcome === 'done') this.stats.done++;
          else this.stats.duplicates++;
        }
        metrics.queueItemsProcessed.inc({ outcome });
        return;
      } catch (err) {
        // Redis unreachable: the item is safe in our processing list; settle it once Redis is back
        // (or, if we are stopped meanwhile, release() gives it back).
        redisLog.warn('settle', { worker: this.id, err: errorText(err) }, 'settling an item failed; it stays in the processing list and is tried again');
        if (!this.running) return;
        await sleep(RETRY_MS);
      }
    }
  }

  /** Finishes the items in progress, gives back anything left, deregisters. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.running = false;
      await Promise.all(this.loops);
      for (const t of this.timers) clearInterval(t);
      // Not released (Redis away): the items stay in this worker's processing list, and another
      // worker's reaper puts them back once this worker's heartbeat lapses. Nothing is lost.
      await this.queue.release(this.id).catch((err: unknown) => log.warn({ worker: this.id, err: errorText(err) }, 'releasing the processing list failed; a live worker reaps it once the heartbeat lapses'));
      for (const b of this.blocking) disconnectRedis(b);
      disconnectRedis(this.redis);
    })();
    return this.stopped;
  }
}

function counts(items: readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const it of items) m.set(it, (m.get(it) ?? 0) + 1);
  return m;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
