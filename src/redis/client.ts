/**
 * Redis clients. src/redis/ is the only importer of ioredis: every connection is built here with
 * its options spelled out (ioredis 5; defaults read in node_modules/ioredis/built/redis/RedisOptions.js).
 *
 * ioredis connects lazily here: `createRedis` never touches the network, and `await connectRedis(client)`
 * resolves when the connection is ready (AUTH done, INFO says the dataset is loaded) or rejects with
 * the reason. A client left connected keeps the process alive: callers end it with `disconnectRedis(client)`.
 */
import { Cluster, Redis, type RedisOptions as IoRedisOptions } from 'ioredis';
import type { Config } from '../config.js';
import { ErrorCode, StratusError } from '../errors.js';
import { registerHealth } from '../http/health.js';
import { OutageLog, roleLog } from '../log.js';

/** One Redis server (redis.mode single) or a Redis Cluster (redis.mode cluster): the same commands. */
export type RedisClient = Redis | Cluster;

export function isCluster(client: RedisClient): client is Cluster {
  return client instanceof Cluster;
}

export interface RedisOptions {
  /** Milliseconds to wait for the TCP connection; 2000 when not given. */
  connectTimeoutMs?: number;
  /**
   * true: commands issued while disconnected wait in ioredis's offline queue, which has no limit,
   * and are sent on reconnect (the pipeline's long-lived clients, whose callers bound what they
   * issue). false (when not given): such a command fails at once, and the caller decides.
   */
  offlineQueue?: boolean;
  /** Reconnect after a lost connection (long-lived clients; when not given); false for probes. */
  reconnect?: boolean;
  /**
   * A client that subscribes to gateway channels (subscribe() below): on a cluster it keeps one
   * sharded-subscriber connection per master (SSUBSCRIBE goes to the node that serves the channel).
   */
  subscriber?: boolean;
}

/** Redis lost / back, once per change for every long-lived client of the process together. */
const redisOutage = new OutageLog(roleLog('redis'), 'Redis');

/**
 * A Redis client for config.redis, not yet connected. `name` shows in CLIENT LIST as
 * `stratus-<name>`. Each connection error is logged at debug (role `redis`: one per reconnect
 * attempt while Redis is away) and reaches callers as rejected commands; ioredis would print an
 * 'error' event that has no listener. A long-lived client's lost connection is logged once for the
 * process ("Redis lost" when the first client starts reconnecting, "Redis back" with downMs when
 * the last one is ready again), never once per attempt.
 */
export function createRedis(config: Config, name: string, options: RedisOptions = {}): RedisClient {
  // Options of each connection (in cluster mode: of each node's connection).
  const common: IoRedisOptions = {
    // Empty means no password: no AUTH is sent.
    ...(config.redis.password === '' ? {} : { password: config.redis.password }),
    connectionName: `stratus-${name}`,
    connectTimeout: options.connectTimeoutMs ?? 2000,
    // A command waiting on a lost connection (queued offline, or sent and unanswered) is rejected at
    // the second failed reconnect attempt, not the twentieth (ioredis's default: about 10 s of
    // retrying with the strategy below).
    maxRetriesPerRequest: 1,
    // Commands sent but unanswered when the connection dropped are sent again on reconnect: at
    // least once. Stratus's writes tolerate that (sequence numbers deduplicate; probes count
    // duplicates; the metrics write carries a token). ioredis's default, named because it decides a
    // delivery guarantee.
    autoResendUnfulfilledCommands: true,
    // A subscriber gets its channels back after a reconnect (the gateway's delivery channel).
    autoResubscribe: true,
    // Ready only once INFO says the dataset is loaded: a restarting Redis answers LOADING before that.
    enableReadyCheck: true,
    // Key names come whole from topology.ts (under config.redis.keyPrefix); ioredis's own prefix
    // would not apply to channel names or Lua-built keys.
    keyPrefix: '',
    // disconnect() ends the socket at once; one the server never closes is destroyed after 2 s.
    disconnectTimeout: 2000,
  };
  const retry = options.reconnect === false ? () => null : (times: number) => Math.min(50 * times, 1000);
  const client: RedisClient =
    config.redis.mode === 'cluster'
      ? new Cluster([{ host: config.redis.host, port: config.redis.port }], {
          redisOptions: common,
          // See the single-server options below.
          lazyConnect: true,
          enableOfflineQueue: options.offlineQueue ?? false,
          enableReadyCheck: true,
          enableAutoPipelining: false,
          keyPrefix: '',
          // Reads go to masters: a replica may not have a write yet (the scripts read what they wrote).
          scaleReads: 'master',
          // The whole cluster unreachable: retried like a single server's connection.
          clusterRetryStrategy: retry,
          // A failover: a command answered MOVED, CLUSTERDOWN or TRYAGAIN, or sent to a node whose
          // connection closed, is sent again after the slot map is read anew.
          retryDelayOnFailover: 100,
          retryDelayOnClusterDown: 100,
          retryDelayOnTryAgain: 100,
          maxRedirections: 16,
          slotsRefreshTimeout: 2000,
          // Gateway channels are shard channels (SSUBSCRIBE), served by the node of their slot.
          shardedSubscribers: options.subscriber === true,
        })
      : new Redis({
          host: config.redis.host,
          port: config.redis.port,
          ...common,
          db: 0,
          // No connection until connect() (or a first command): construction never fails or emits, and
          // connect() returns the connection error as a rejected promise.
          lazyConnect: true,
          // See RedisOptions.offlineQueue. With it off, a command issued before connect() resolves fails
          // with "Stream isn't writeable and enableOfflineQueue options is false".
          enableOfflineQueue: options.offlineQueue ?? false,
          // Pipelining is explicit where it pays (pipeline(), variadic commands).
          enableAutoPipelining: false,
          // Reconnect after 50 ms, 100 ms, ... up to 1 s between attempts; null: never, the client ends.
          retryStrategy: retry,
        });
  let lastError = '';
  client.on('error', (err: Error) => {
    lastError = err.message;
    roleLog('redis').debug({ client: `stratus-${name}`, err: err.message }, 'connection error');
  });
  if (options.reconnect !== false) {
    // 'reconnecting' comes only after a connection that was not closed on purpose ('close' also
    // comes after disconnect()); 'end' once the client is closed for good.
    client.on('reconnecting', () => redisOutage.lost(client, { client: `stratus-${name}`, at: `${config.redis.host}:${config.redis.port}`, ...(lastError === '' ? {} : { err: lastError }) }));
    client.on('ready', () => {
      lastError = '';
      redisOutage.back(client, { client: `stratus-${name}` });
    });
    client.once('end', () => redisOutage.forget(client));
    // A long-lived client counts for /readyz until it is closed ('end': disconnect() or quit(); a
    // client that reconnects emits it only then). Probes (reconnect: false) live for one check and
    // are not the process's readiness.
    const unregister = registerHealth({
      name: `Redis client stratus-${name} at ${config.redis.host}:${config.redis.port}`,
      dependency: 'redis',
      problem: () => (client.status === 'ready' ? null : client.status === 'wait' ? 'not connected yet' : `${client.status} (not ready)`),
    });
    client.once('end', unregister);
  }
  return client;
}

/**
 * `client.connect()`, rejecting with the connection's own error (ECONNREFUSED, ETIMEDOUT, WRONGPASS)
 * where ioredis would reject with just "Connection is closed." (it reports the cause as an 'error'
 * event). Call it before the first command: a command on a client in state `wait` starts the
 * connection itself, and a later connect() then fails with "Redis is already connecting/connected".
 */
export async function connectRedis(client: RedisClient): Promise<void> {
  let first: Error | null = null;
  const onError = (err: Error) => {
    first ??= err;
  };
  client.on('error', onError);
  try {
    await client.connect();
  } catch (err) {
    throw first ?? err;
  } finally {
    client.off('error', onError);
  }
}

/**
 * `client.disconnect()`, except on a client whose connection already ended (refused, or closed
 * without reconnecting): there ioredis would still arm its disconnectTimeout timer on the dead
 * socket, which never closes again, and hold the process open for those 2 s.
 */
export function disconnectRedis(client: RedisClient): void {
  if (client.status !== 'end') client.disconnect();
}

/** `host:port` of config.redis, as messages show it. */
export function redisAddress(config: Config): string {
  return `${config.redis.host}:${config.redis.port}`;
}

/** REDIS_UNAVAILABLE naming the server, what failed and the fix. `what` completes "Redis at <address> ...". */
export function redisUnavailable(config: Config, what: string, cause: unknown): StratusError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  const auth = /WRONGPASS|NOAUTH|invalid password|AUTH/i.test(detail);
  const fix = auth
    ? 'set redis.password (STRATUS_REDIS_PASSWORD) to the password the server requires'
    : 'start the local one with `npx stratus stack up` (`npx stratus stack status` tells whether it runs), or set redis.host and redis.port (STRATUS_REDIS_HOST, STRATUS_REDIS_PORT) to where it runs';
  // A wrong password stays wrong until the configuration changes.
  return new StratusError(ErrorCode.REDIS_UNAVAILABLE, `Redis at ${redisAddress(config)} ${what} (${detail}); ${fix}`, { retryable: !auth, cause });
}

/**
 * Resolves when Redis answers PING within timeoutMs (connecting included); otherwise throws
 * REDIS_UNAVAILABLE naming the address and the fix. One attempt, no reconnects: a refused
 * connection fails at once, a server that accepts but does not answer fails at timeoutMs.
 */
export async function pingRedis(config: Config, timeoutMs: number): Promise<void> {
  const client = createRedis(config, 'ping', { connectTimeoutMs: timeoutMs, reconnect: false, offlineQueue: false });
  let timer: NodeJS.Timeout | undefined;
  try {
    const answered = (async () => {
      await connectRedis(client);
      const pong = await client.ping();
      if (pong !== 'PONG') throw new Error(`PING answered ${JSON.stringify(pong)}`);
    })();
    // The losing side of the race must not become an unhandled rejection; its error is the race's
    // (when it lost, the timeout's error is thrown below, naming the same failure).
    answered.catch(() => {});
    await Promise.race([
      answered,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no PONG within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    throw redisUnavailable(config, `did not answer PING within ${timeoutMs} ms`, err);
  } finally {
    clearTimeout(timer);
    disconnectRedis(client);
  }
}

