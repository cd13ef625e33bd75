/**
 * The Redis side of the list queue (event.EventService -> `stratus worker`): one Lua script per
 * step, so no step can be seen half done.
 *
 * Keys of queue NAME (topology.ts; one hash tag, so one slot):
 *
 *   q:{NAME}                    the queue. Producers LPUSH on the left, workers BLMOVE from the right:
 *                               FIFO.   [newest ... oldest] -> BLMOVE RIGHT LEFT -> processing
 *   q:{NAME}:processing:<id>    items worker <id> has taken and not finished, newest on the left
 *   q:{NAME}:workers            set of the worker ids that may hold items
 *   q:{NAME}:hb:<id>            heartbeat of worker <id>: SET PX queue.leaseMs, renewed at a third
 *   q:{NAME}:attempts           hash sha1(item) -> failed tries so far (failures and dead workers)
 *   q:{NAME}:dead               dead-letter list, newest on the left, capped at queue.lengthMax
 *
 * Guarantee: at least once. An item leaves the queue only by BLMOVE into a processing list, and
 * leaves a processing list only when its handler succeeded (LREM), or failed (back to the consuming
 * end of the queue, or to the dead-letter list after queue.attemptsMax tries), or its worker's
 * heartbeat lapsed (reaped: back to the queue, counted as a try), or its worker found it there held
 * by none of its loops after a lost connection (a take answered into the void: GIVE_BACK). A worker that is slow rather than
 * dead past its lease has its items reaped and run again elsewhere; handlers must be idempotent
 * (the `record` handler dedupes by event_id).
 *
 * Bounds: the queue holds at most queue.lengthMax items as far as producers are concerned (a push
 * stores what fits and reports the rest as refused). Items put back by failures and reaping may take
 * it past the limit by at most the number of items that were in processing lists, which were in
 * the queue before. The attempts hash holds an entry only for an item that failed and is not yet
 * finished or dead. The dead-letter list keeps the newest queue.lengthMax items.
 */
import { createHash } from 'node:crypto';
import type { Config } from '../config.js';
import type { RedisClient } from '../redis/client.js';
import { topology } from '../topology.js';

/** Longest queue name, in UTF-8 bytes. */
export const QUEUE_NAME_BYTES_MAX = 200;

/**
 * Why `name` can't name a queue, or null when it can. Names become part of Redis keys inside a
 * hash tag, so `{` and `}` are out; whitespace and control characters are out so names survive
 * logs, shells and metadata unquoted.
 */
export function queueNameProblem(name: string): string | null {
  const bytes = Buffer.byteLength(name, 'utf8');
  const allowed = `1..${QUEUE_NAME_BYTES_MAX} bytes without whitespace, control characters, { or }`;
  if (bytes === 0) return `must be ${allowed} (got an empty name)`;
  if (bytes > QUEUE_NAME_BYTES_MAX) return `must be ${allowed} (got ${bytes} bytes)`;
  // \p{Z}: Unicode separators (no-break space and the like) count as whitespace too.
  if (/[\s\p{Z}\p{Cc}{}]/u.test(name)) return `must be ${allowed} (got ${JSON.stringify(name)})`;
  return null;
}

/** Lua's unpack() is limited by the C stack (LUAI_MAXCSTACK 8000): longer pushes go in slices of this. */
const UNPACK_MAX = 4000;

/**
 * PUSH: KEYS = [queue]; ARGV = [lengthMax, item...]. Stores the first min(#items, room) items in
 * one variadic LPUSH (per UNPACK_MAX slice), room = lengthMax - LLEN. Returns {stored, length after}.
 * Storing what fits keeps what a call stored an exact prefix of what it sent, whatever the flush
 * boundaries were.
 */
const PUSH_SCRIPT = `
local len = redis.call('LLEN', KEYS[1])
local room = tonumber(ARGV[1]) - len
local n = #ARGV - 1
if room < n then n = room end
if n <= 0 then return {0, len} end
for i = 2, n + 1, ${UNPACK_MAX} do
  local j = i + ${UNPACK_MAX} - 1
  if j > n + 1 then j = n + 1 end
  len = redis.call('LPUSH', KEYS[1], unpack(ARGV, i, j))
end
return {n, len}
`;

/** DONE: KEYS = [processing, attempts]; ARGV = [item, digest]. Returns 1, or 0 when the item had been reaped meanwhile. */
const DONE_SCRIPT = `
local removed = redis.call('LREM', KEYS[1], 1, ARGV[1])
if removed == 1 then redis.call('HDEL', KEYS[2], ARGV[2]) end
return removed
`;

/**
 * FAIL: KEYS = [processing, queue, attempts, dead]; ARGV = [item, digest, attemptsMax, deadMax].
 * Returns {outcome, attempts}: outcome 0 retried (RPUSH: the consuming end, so it is tried next),
 * 1 dead-lettered, -1 not in the processing list (reaped meanwhile; nothing done).
 */
const FAIL_SCRIPT = `
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return {-1, 0} end
local a = redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
if a >= tonumber(ARGV[3]) then
  redis.call('HDEL', KEYS[3], ARGV[2])
  redis.call('LPUSH', KEYS[4], ARGV[1])
  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[4]) - 1)
  return {1, a}
end
redis.call('RPUSH', KEYS[2], ARGV[1])
return {0, a}
`;

/**
 * REAP: KEYS = [workers, heartbeat, processing, queue, attempts, dead];
 * ARGV = [workerId, attemptsMax, deadMax, mode]. mode 'dead': only when the heartbeat key is gone
 * (checked here, atomically with the move), and each item counts a try, so an item that kills
 * every worker that takes it ends dead-lettered. mode 'self': a worker stopping gracefully gives
 * back what it still holds, without counting a try. Items go back to the consuming end, oldest
 * taken first in line. Then the list, the heartbeat and the id are removed.
 * Returns {requeued, deadLettered}, or {-1, 0} when the worker is alive.
 *
 *   processing: [newest ... oldest]   LRANGE 0 -1, RPUSH each in that order
 *   queue:      [... newest oldest]   -> the oldest is consumed first
 */
const REAP_SCRIPT = `
local count = ARGV[4] == 'dead'
if count and redis.call('EXISTS', KEYS[2]) == 1 then return {-1, 0} end
local items = redis.call('LRANGE', KEYS[3], 0, -1)
local max = tonumber(ARGV[2])
local requeued, dead = 0, 0
for _, item in ipairs(items) do
  local digest = redis.sha1hex(item)
  local a = 0
  if count then a = redis.call('HINCRBY', KEYS[5], digest, 1) end
  if count and a >= max then
    redis.call('HDEL', KEYS[5], digest)
    redis.call('LPUSH', KEYS[6], item)
    dead = dead + 1
  else
    redis.call('RPUSH', KEYS[4], item)
    requeued = requeued + 1
  end
end
if dead > 0 then redis.call('LTRIM', KEYS[6], 0, tonumber(ARGV[3]) - 1) end
redis.call('DEL', KEYS[3], KEYS[2])
redis.call('SREM', KEYS[1], ARGV[1])
return {requeued, dead}
`;

/**
 * GIVE_BACK: KEYS = [processing, queue]; ARGV = [item]. One copy of item leaves the processing list
 * (the oldest) for the consuming end of the queue, taken next. Returns 1, or 0 when it was not
 * there. For an item a worker holds without knowing it (see QueueWorker.returnStrays).
 */
const GIVE_BACK_SCRIPT = `
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
`;

interface QueueScripts {
  stratusQueuePush(queue: string, lengthMax: number, ...items: string[]): Promise<[number, number]>;
  stratusQueueDone(processing: string, attempts: string, item: string, digest: string): Promise<number>;
  stratusQueueFail(processing: string, queue: string, attempts: string, dead: string, item: string, digest: string, attemptsMax: number, deadMax: number): Promise<[number, number]>;
  stratusQueueReap(workers: string, heartbeat: string, processing: string, queue: string, attempts: string, dead: string, workerId: string, attemptsMax: number, deadMax: number, mode: 'dead' | 'self'): Promise<[number, number]>;
  stratusQueueGiveBack(processing: string, queue: string, item: string): Promise<number>;
}

/** Registers the scripts on a client (EVALSHA, falling back to EVAL once per connection). */
function scripts(redis: RedisClient): QueueScripts {
  const r = redis as RedisClient & Partial<QueueScripts>;
  if (r.stratusQueuePush === undefined) {
    redis.defineCommand('stratusQueuePush', { numberOfKeys: 1, lua: PUSH_SCRIPT });
    redis.defineCommand('stratusQueueDone', { numberOfKeys: 2, lua: DONE_SCRIPT });
    redis.defineCommand('stratusQueueFail', { numberOfKeys: 4, lua: FAIL_SCRIPT });
    redis.defineCommand('stratusQueueReap', { numberOfKeys: 6, lua: REAP_SCRIPT });
    redis.defineCommand('stratusQueueGiveBack', { numberOfKeys: 2, lua: GIVE_BACK_SCRIPT });
  }
  return redis as unknown as QueueScripts;
}

/** Same digest as the scripts' redis.sha1hex. */
export function itemDigest(item: string): string {
  return createHash('sha1').update(item, 'utf8').digest('hex');
}

export type FailOutcome = 'retried' | 'dead-lettered' | 'reaped';

/** One queue, seen from one Redis client (commands, not blocking ones). */
export class ListQueue {
  readonly key: string;
  private readonly t: ReturnType<typeof topology>['redis'];
  private readonly s: QueueScripts;

  constructor(
    private readonly redis: RedisClient,
    private readonly config: Config,
    readonly name: string,
  ) {
    this.t = topology(config).redis;
    this.key = this.t.queue(name);
    this.s = scripts(redis);
  }

  /** Stores the first items that fit under queue.lengthMax; returns how many that was. */
  async push(items: readonly string[]): Promise<number> {
    if (items.length === 0) return 0;
    const [stored] = await this.s.stratusQueuePush(this.key, this.config.queue.lengthMax, ...items);
    return stored;
  }

  /** BLMOVE from the consuming end into the worker's processing list; null after timeoutS without an item. */
  static async take(blocking: RedisClient, config: Config, name: string, workerId: string, timeoutS: number): Promise<string | null> {
    const t = topology(config).redis;
    return blocking.blmove(t.queue(name), t.queueProcessing(name, workerId), 'RIGHT', 'LEFT', timeoutS);
  }

  /** The handler succeeded: false when the item had already been reaped (it will run again elsewhere). */
  async done(workerId: string, item: string): Promise<boolean> {
    return (await this.s.stratusQueueDone(this.t.queueProcessing(this.name, workerId), this.t.queueAttempts(this.name), item, itemDigest(item))) === 1;
  }

  /** The handler failed: retry, or dead-letter at queue.attemptsMax tries. */
  async fail(workerId: string, item: string): Promise<{ outcome: FailOutcome; attempts: number }> {
    const [o, attempts] = await this.s.stratusQueueFail(
      this.t.queueProcessing(this.name, workerId), this.key, this.t.queueAttempts(this.name), this.t.queueDead(this.name),
      item, itemDigest(item), this.config.queue.attemptsMax, this.config.queue.lengthMax,
    );
    return { outcome: o === 1 ? 'dead-lettered' : o === 0 ? 'retried' : 'reaped', attempts };
  }

  /** Registers the worker and (re)sets its lease; called every leaseMs/3. SADD again heals a worker that was reaped while slow. */
  async heartbeat(workerId: string): Promise<void> {
    const replies = await this.redis.multi()
      .set(this.t.queueHeartbeat(this.name, workerId), String(process.pid), 'PX', this.config.queue.leaseMs)
      .sadd(this.t.queueWorkers(this.name), workerId)
      .exec();
    for (const [err] of replies ?? []) if (err) throw err;
  }

  /** Moves the items of every worker whose lease lapsed back to the queue. Returns the totals. */
  async reapDead(selfId: string): Promise<{ workers: number; requeued: number; deadLettered: number }> {
    const ids = await this.redis.smembers(this.t.queueWorkers(this.name));
    const total = { workers: 0, requeued: 0, deadLettered: 0 };
    for (const id of ids) {
      if (id === selfId) continue;
      const [requeued, dead] = await this.reap(id, 'dead');
      if (requeued < 0) continue;
      total.workers++;
      total.requeued += requeued;
      total.deadLettered += dead;
    }
    return total;
  }

  /** What worker workerId's processing list holds, newest first. */
  async processing(workerId: string): Promise<string[]> {
    return this.redis.lrange(this.t.queueProcessing(this.name, workerId), 0, -1);
  }

  /** One copy of item back from the worker's processing list to the front of the queue; false when it was not there. */
  async giveBack(workerId: string, item: string): Promise<boolean> {
    return (await this.s.stratusQueueGiveBack(this.t.queueProcessing(this.name, workerId), this.key, item)) === 1;
  }

  /** A stopping worker gives back what it holds and deregisters. Returns the items given back. */
  async release(workerId: string): Promise<number> {
    const [requeued] = await this.reap(workerId, 'self');
    return requeued;
  }

  private reap(workerId: string, mode: 'dead' | 'self'): Promise<[number, number]> {
    const t = this.t;
    const n = this.name;
    return this.s.stratusQueueReap(
      t.queueWorkers(n), t.queueHeartbeat(n, workerId), t.queueProcessing(n, workerId), this.key, t.queueAttempts(n), t.queueDead(n),
      workerId, this.config.queue.attemptsMax, this.config.queue.lengthMax, mode,
    );
  }
}
