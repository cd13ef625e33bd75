/**
 * Redis clients. src/redis/ is the only importer of ioredis; every client is built here with
 * its options spelled out.
 */
import { Redis } from 'ioredis';
import type { Config } from '../config.js';
import { ErrorCode, StratusError } from '../errors.js';
import { topology } from '../topology.js';

export type RedisClient = Redis;

export interface RedisOptions {
  /** Milliseconds to wait for the TCP connection; default 2000. */
  connectTimeoutMs?: number;
  /**
   * false: a command issued while disconnected fails at once instead of waiting in ioredis's
   * unbounded offline queue (every queue has a limit; the caller decides how to retry).
   */
  offlineQueue?: boolean;
  /** Reconnect after a lost connection (long-lived clients); false for probes. */
  reconnect?: boolean;
}

export function createRedis(config: Config, name: string, options: RedisOptions = {}): RedisClient {
  return new Redis({
    host: config.redis.host,
    port: config.redis.port,
    ...(config.redis.password === '' ? {} : { password: config.redis.password }),
    connectionName: `stratus-${name}`,
    // Connect when the first command is sent, so construction never throws or emits.
    lazyConnect: true,
    connectTimeout: options.connectTimeoutMs ?? 2000,
    enableOfflineQueue: options.offlineQueue ?? false,
    // A command is retried at most once across a reconnect; ioredis's default is 20.
    maxRetriesPerRequest: 1,
    retryStrategy: options.reconnect === false ? () => null : (times: number) => Math.min(50 * times, 1000),
  });
}

function unavailable(config: Config, what: string, cause: unknown): StratusError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new StratusError(
    ErrorCode.REDIS_UNAVAILABLE,
    `Redis at ${config.redis.host}:${config.redis.port} ${what} (${detail}); is it running? \`stratus stack status\` tells`,
    { retryable: true, cause },
  );
}

/** Resolves when Redis answers PING within timeoutMs; throws REDIS_UNAVAILABLE otherwise. */
export async function pingRedis(config: Config, timeoutMs: number): Promise<void> {
  const client = createRedis(config, 'ping', { connectTimeoutMs: timeoutMs, reconnect: false, offlineQueue: true });
  client.on('error', () => {}); // reported through the rejected promise below
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.connect().then(() => client.ping()),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no PONG within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    throw unavailable(config, 'did not answer PING', err);
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}

export interface RedisRoundTripReport {
  published: number;
  received: number;
  /** From the first PUBLISH to the last message received. */
  pubsubMs: number;
  /** Messages received out of publish order (must be 0). */
  outOfOrder: number;
  pushed: number;
  popped: number;
  /** One variadic LPUSH, then RPOP in batches until the list is empty. */
  listMs: number;
  /** Items popped out of push order (must be 0: the list is FIFO). */
  notFifo: number;
}

/** PUBLISH/SUBSCRIBE and a FIFO list push/pop, each with `messages` items, through the real server. */
export async function redisRoundTrip(config: Config, opts: { messages: number; timeoutMs?: number }): Promise<RedisRoundTripReport> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const t = topology(config);
  const suffix = `${process.pid}:${Date.now()}`;
  const channel = `${t.redis.probeChannel}:${suffix}`;
  const list = `${t.redis.probeList}:${suffix}`;
  const sub = createRedis(config, 'probe-sub');
  const pub = createRedis(config, 'probe-pub');
  try {
    await Promise.all([sub.connect(), pub.connect()]);
    let received = 0;
    let outOfOrder = 0;
    const all = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`received ${received} of ${opts.messages} messages in ${timeoutMs} ms`)), timeoutMs);
      sub.on('message', (_ch: string, msg: string) => {
        if (Number(msg) !== received) outOfOrder++;
        if (++received === opts.messages) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    await sub.subscribe(channel);
    const t0 = performance.now();
    const p = pub.pipeline();
    for (let i = 0; i < opts.messages; i++) p.publish(channel, String(i));
    await p.exec();
    await all;
    const pubsubMs = performance.now() - t0;

    // LPUSH a b c stores c b a; RPOP then returns a, b, c: first in, first out.
    const items = Array.from({ length: opts.messages }, (_, i) => String(i));
    const t1 = performance.now();
    await pub.lpush(list, ...items);
    let popped = 0;
    let notFifo = 0;
    for (;;) {
      const batch = await pub.rpop(list, 1000);
      if (batch === null || batch.length === 0) break;
      for (const v of batch) if (Number(v) !== popped++) notFifo++;
    }
    const listMs = performance.now() - t1;
    return { published: opts.messages, received, pubsubMs, outOfOrder, pushed: opts.messages, popped, listMs, notFifo };
  } catch (err) {
    throw unavailable(config, 'failed a publish/list round trip', err);
  } finally {
    sub.disconnect();
    await pub.del(list).catch(() => {});
    pub.disconnect();
  }
}
