/**
 * Forwarder: results topic -> Redis -> the gateway instance holding the device.
 *
 * Reads the results topic as consumer group <prefix>forwarder, a batch at a time (each record holds
 * the results of many devices: proto/stratus/v1/kafka.proto; each result's bytes go to Redis as
 * they are, a view of the record), and hands the batch's results to the deliver script (deliver-script.ts) in slices of at most forwarder.scriptResultsMax
 * results and forwarder.scriptBytesMax bytes, in order: dedupe by (device, seq), buffer in the
 * device's bounded Redis Stream, one PUBLISH per gateway instance. Offsets are committed only after
 * every result of the batch is either buffered or in the dead-letter stream.
 *
 * Failures, told apart:
 *   - the call as a whole fails (Redis unreachable, timed out, or refusing it: OOM, LOADING, BUSY):
 *     the slice is sent again with backoff (100 ms doubling to forwarder.redisRetryMaxMs) until it
 *     goes through. Safe because the script records a seq as routed only after buffering it.
 *     Counted (stratus_forwarder_redis_retries_total) and logged once when lost and once when back.
 *   - one device's writes fail (a key of the wrong type...): the script goes on with the other
 *     devices and names the results it did not write. Those are tried again up to
 *     forwarder.deviceRetriesMax times (150, 300, 600 ms by default), then written to the
 *     dead-letter stream `<prefix>results:dead` with the device, seq, error and Kafka position, counted
 *     (stratus_forwarder_dead_letters_total) and logged (at most one line per 10 s). For 30 s after,
 *     that device's failures go to the dead-letter stream at once, so it cannot slow other batches.
 *
 * Guarantee: every result is in its device's buffer, or in the dead-letter stream, before its
 * offset is committed; a re-read batch is deduplicated by the script, so each (device, seq) is
 * buffered once.
 */
import type { Config } from '../config.js';
import { kafkaClients } from '../kafka/factory.js';
import type { ConsumedMessage } from '../kafka/types.js';
import { connectRedis, createRedis, disconnectRedis, isCluster, redisUnavailable } from '../redis/client.js';
import { ReplicaWait } from '../redis/replica-wait.js';
import { callScript, defineManyKeyScript, groupByNode, publish, refreshSlots } from '../redis/sharding.js';
import { refuseEvictingPolicy } from '../redis/eviction-policy.js';
import { topology } from '../topology.js';
import { resultTimesUs, splitResultRecord, type RecordResult } from '../wire/result-record.js';
import type { RunningStage } from '../processor/processor.js';
import { DELIVER_SCRIPT, decodeDeliverReply, type DeliverReply } from './deliver-script.js';
import { metrics } from '../http/metrics.js';
import { ForwarderLog } from './forwarder-log.js';

export interface ForwarderStats {
  batches: number;
  results: number;
  routed: number;
  duplicates: number;
  frames: number;
  skipped: number;
  /** Results a script call could not write for their device (before retries). */
  deviceFailures: number;
  /** Results written to the dead-letter stream. */
  deadLetters: number;
  /** Script calls tried again as a whole (Redis unreachable or refusing). */
  redisRetries: number;
}

/** One result of a batch, as the script takes it. */
interface Item {
  device: string;
  seq: number;
  value: Buffer;
  message: ConsumedMessage;
}

/** The forwarder's dead-letter stream, `<redis.keyPrefix>results:dead` (topology.ts). */
export function resultsDeadKey(config: Config): string {
  return topology(config).redis.resultsDead;
}

/** Redis error texts that are about Redis as a whole, not the device: the call is retried as a whole. */
const REDIS_WIDE = /^(OOM|READONLY|LOADING|BUSY|MASTERDOWN|NOREPLICAS|CLUSTERDOWN|TRYAGAIN|MISCONF)\b|non local key|hash to the same slot/;
const REDIS_RETRY_FIRST_MS = 100;
/** How long a dead-lettered device skips the retries' wait when it fails again. */
const QUARANTINE_MS = 30_000;
const QUARANTINE_MAX = 10_000;
/** How long stop() waits for the batch in hand before it stops without it (see stop). */
const STOP_WAIT_MS = 5000;

export async function startForwarder(config: Config, instanceId: string): Promise<RunningStage<ForwarderStats>> {
  const t = topology(config);
  const deadKey = resultsDeadKey(config);
  const log = new ForwarderLog(config, instanceId);
  const stats: ForwarderStats = { batches: 0, results: 0, routed: 0, duplicates: 0, frames: 0, skipped: 0, deviceFailures: 0, deadLetters: 0, redisRetries: 0 };
  // Offline queue on: a command issued while Redis is away waits for the reconnect (bounded: one
  // script call and at most one dead-letter write are in flight at a time).
  const redis = createRedis(config, `${instanceId}-forwarder`, { offlineQueue: true });
  await connectRedis(redis).catch((err: unknown) => {
    // No client left reconnecting in the background after a failed start.
    disconnectRedis(redis);
    throw redisUnavailable(config, 'refused the forwarder connection', err);
  });
  const warning = await refuseEvictingPolicy(redis, config).catch((err: unknown) => {
    disconnectRedis(redis);
    throw err;
  });
  if (warning !== null) log.warn(warning);
  defineManyKeyScript(redis, 'stratusDeliver', DELIVER_SCRIPT);
  const cluster = isCluster(redis);
  const replicas = new ReplicaWait(redis, config);
  /** One script call over results of devices one master serves, and the WAIT after it. */
  const deliverGroup = async (items: readonly Item[]): Promise<DeliverReply> => {
    const args: (string | Buffer | number)[] = [t.redis.prefix, config.redis.deviceBufferMax, config.redis.deviceStateTtlMs];
    for (const it of items) args.push(it.device, String(it.seq), it.value);
    const routeKey = t.redis.deviceState(items[0]!.device);
    const stopTimer = metrics.redisScriptSeconds.startTimer();
    // Binary replies on a cluster: the frames come back to be published.
    const raw = await replicas.after(routeKey, () => callScript<unknown>(redis, cluster ? 'stratusDeliverBuffer' : 'stratusDeliver', routeKey, args));
    stopTimer();
    return decodeDeliverReply(raw);
  };
  const deliver = async (items: readonly Item[]): Promise<DeliverReply> => {
    if (!cluster) return deliverGroup(items);
    // One call per master, at once; failures' indexes are mapped back to this slice.
    const indexed = items.map((item, index) => ({ item, index }));
    const groups = groupByNode(redis, indexed, (x) => t.redis.deviceState(x.item.device));
    const settled = await Promise.allSettled(groups.map((g) => deliverGroup(g.map((x) => x.item))));
    const out: DeliverReply = { routed: 0, duplicates: 0, frames: 0, failures: [], toPublish: [] };
    const frames = new Map<string, Buffer[]>();
    let failed: unknown = null;
    settled.forEach((s, gi) => {
      if (s.status === 'rejected') {
        failed ??= s.reason;
        return;
      }
      const r = s.value;
      out.routed += r.routed;
      out.duplicates += r.duplicates;
      for (const f of r.failures) out.failures.push({ index: groups[gi]![f.index]!.index, error: f.error });
      for (const p of r.toPublish) {
        const list = frames.get(p.instance);
        // Frames of one instance from several masters become one message: a type byte, then entries.
        if (list === undefined) frames.set(p.instance, [p.frame]);
        else list.push(p.frame.subarray(1));
      }
    });
    // Published only after every master has the results in their buffers (buffer, then publish).
    // The masters that did answer publish what they buffered even when another failed: the retry
    // of the whole slice finds their results as duplicates and publishes nothing for them.
    await Promise.all([...frames].map(([instance, parts]) => publish(redis, t.redis.instanceChannel(instance), Buffer.concat(parts))));
    if (failed !== null) throw failed;
    out.frames = frames.size;
    return out;
  };
  const consumer = await (await kafkaClients(config)).batchConsumer(config, { groupId: t.groups.forwarder, topics: [t.topics.results], clientId: `${instanceId}-forwarder` });
  let running = true;
  /** Invariant: lostSince !== null iff the last whole call failed and none has succeeded since. */
  let lostSince: number | null = null;
  let retriesWhileLost = 0;

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  /** Devices dead-lettered lately, until when (ms); at most QUARANTINE_MAX, the oldest dropped first. */
  const quarantined = new Map<string, number>();
  const quarantine = (device: string, now: number) => {
    quarantined.delete(device);
    quarantined.set(device, now + QUARANTINE_MS);
    if (quarantined.size > QUARANTINE_MAX) quarantined.delete(quarantined.keys().next().value!);
  };

  /** Runs `call` until it goes through; null when the forwarder stopped meanwhile. */
  async function untilThrough<T>(call: () => Promise<T>, what: string): Promise<T | null> {
    let waitMs = REDIS_RETRY_FIRST_MS;
    for (;;) {
      let failure: unknown;
      try {
        const out = await call();
        if (lostSince !== null) {
          log.info(`Redis back: ${what} went through after ${Date.now() - lostSince} ms and ${retriesWhileLost} retries`);
          lostSince = null;
          retriesWhileLost = 0;
        }
        return out;
      } catch (err) {
        failure = err;
      }
      const reason = isRedisReply(failure) ? 'redis' : 'connection';
      metrics.forwarderRedisRetries.inc({ reason });
      stats.redisRetries++;
      if (lostSince === null) {
        lostSince = Date.now();
        log.warn(`Redis lost (${reason}: ${errorText(failure)}): ${what} is retried every ${REDIS_RETRY_FIRST_MS}..${config.forwarder.redisRetryMaxMs} ms until it goes through; offsets wait`);
      }
      retriesWhileLost++;
      if (!running) return null;
      await sleep(waitMs);
      if (!running) return null;
      waitMs = Math.min(waitMs * 2, config.forwarder.redisRetryMaxMs);
    }
  }

  /** One script call; a device failure naming a Redis-wide condition fails the call as a whole. */
  async function deliverOnce(items: readonly Item[]): Promise<DeliverReply> {
    const reply = await deliver(items);
    const wide = reply.failures.find((f) => REDIS_WIDE.test(f.error));
    if (wide !== undefined) {
      // A key of another node: the slot map is stale (a failover or a slot that moved).
      if (cluster && /non local key|same slot/.test(wide.error)) refreshSlots(redis);
      throw new RedisWideError(wide.error);
    }
    return reply;
  }

  /** Delivers one slice: true when every result is buffered or dead-lettered, false when stopped. */
  async function deliverSlice(slice: readonly Item[]): Promise<boolean> {
    let pending = slice;
    for (let attempt = 0; ; attempt++) {
      const reply = await untilThrough(() => deliverOnce(pending), `a script call of ${pending.length} results`);
      if (reply === null) return false;
      metrics.redisPipelineDepth.observe({ path: 'forwarder' }, pending.length);
      metrics.forwarderRouted.inc(reply.routed);
      metrics.forwarderDuplicates.inc(reply.duplicates);
      stats.routed += reply.routed;
      stats.duplicates += reply.duplicates;
      stats.frames += reply.frames;
      if (reply.failures.length === 0) return true;
      metrics.forwarderDeviceFailures.inc(reply.failures.length);
      stats.deviceFailures += reply.failures.length;
      const now = Date.now();
      const failed = reply.failures.map((f) => ({ item: pending[f.index]!, error: f.error }));
      // A device that just went to the dead-letter stream goes there at once again, without the
      // retries' wait: a device whose keys stay broken must not slow every batch down.
      const known = failed.filter((f) => (quarantined.get(f.item.device) ?? 0) > now);
      const fresh = failed.filter((f) => (quarantined.get(f.item.device) ?? 0) <= now);
      if (known.length > 0 && !(await deadLetter(known))) return false;
      if (fresh.length === 0) return true;
      if (attempt >= config.forwarder.deviceRetriesMax) {
        for (const f of fresh) quarantine(f.item.device, now);
        return deadLetter(fresh);
      }
      // Only the failed devices' results wait; the others are buffered and published already.
      await sleep(config.forwarder.deviceRetryBaseMs * 2 ** attempt);
      if (!running) return false;
      pending = fresh.map((f) => f.item);
    }
  }

  async function deadLetter(failed: { item: Item; error: string }[]): Promise<boolean> {
    // Waited for like the results' own write: once committed, these exist only here.
    const written = await untilThrough(() => replicas.after(deadKey, async () => {
      const p = redis.pipeline();
      for (const { item, error } of failed) {
        p.xadd(deadKey, 'MAXLEN', '~', String(config.forwarder.deadLettersMax), '*', 'device', item.device, 's', String(item.seq), 'r', item.value, 'error', error, 'topic', item.message.topic, 'partition', String(item.message.partition), 'offset', String(item.message.offset));
      }
      const out = await p.exec();
      const err = out?.find(([e]) => e !== null)?.[0];
      if (err) throw err;
      return true;
    }), `the dead-letter write of ${failed.length} results`);
    if (written === null) return false;
    metrics.forwarderDeadLetters.inc(failed.length);
    stats.deadLetters += failed.length;
    const devices = [...new Set(failed.map((f) => f.item.device))];
    log.rateLimited('dead-letter', `${failed.length} results of ${devices.length} device(s) (${devices.slice(0, 3).join(', ')}${devices.length > 3 ? ', ...' : ''}) could not be buffered after ${config.forwarder.deviceRetriesMax} retries (${failed[0]!.error}); written to ${deadKey}`);
    return true;
  }

  const loop = (async () => {
    while (running) {
      const messages = await consumer.consume();
      if (messages.length === 0) continue;
      const items: Item[] = [];
      for (const m of messages) {
        let results: RecordResult[];
        try {
          results = splitResultRecord(m.value, m.key);
        } catch {
          // Counted in stats.skipped: a record this version can't read has nowhere to go.
          stats.skipped++;
          continue;
        }
        for (const r of results) {
          if (r.deviceId === '') {
            stats.skipped++;
            continue;
          }
          items.push({ device: r.deviceId, seq: r.seq, value: r.bytes, message: m });
        }
      }
      for (const slice of slices(items, config.forwarder.scriptResultsMax, config.forwarder.scriptBytesMax)) {
        const done = await deliverSlice(slice);
        // Stopped mid-batch: nothing committed, the batch is read again (the script dedupes).
        if (!done) return;
        observeStages(slice);
      }
      consumer.commitBatch(messages);
      stats.results += items.length;
      stats.batches++;
    }
  })();

  return {
    stats,
    async stop() {
      running = false;
      // The loop ends at its next step: a script call answered or failed, a retry's wait. A call
      // Redis never answers (a link that drops packets: nothing fails, nothing comes back) would
      // hold it, and the process, forever: after STOP_WAIT_MS the forwarder stops anyway. Nothing
      // is lost: the batch in hand is not committed, so its next owner reads it again (the script
      // dedupes what this call may still write).
      let timer: NodeJS.Timeout | undefined;
      const ended = await Promise.race([loop.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), STOP_WAIT_MS)))]);
      clearTimeout(timer);
      if (!ended) log.warn(`stopping with a Redis call unanswered after ${STOP_WAIT_MS} ms; the batch in hand is not committed and is read again by the next owner`);
      await consumer.disconnect();
      disconnectRedis(redis);
    },
  };
}

/** A batch cut into script calls, in order: each at most resultsMax results and bytesMax bytes (a larger single result goes alone). */
export function* slices<T extends { device: string; value: Buffer }>(items: readonly T[], resultsMax: number, bytesMax: number): Generator<T[]> {
  let slice: T[] = [];
  let bytes = 0;
  for (const it of items) {
    const size = it.value.length + Buffer.byteLength(it.device) + 20;
    if (slice.length > 0 && (slice.length >= resultsMax || bytes + size > bytesMax)) {
      yield slice;
      slice = [];
      bytes = 0;
    }
    slice.push(it);
    bytes += size;
  }
  if (slice.length > 0) yield slice;
}

/** A device failure whose text says Redis as a whole refuses writes (OOM...). */
class RedisWideError extends Error {
  override readonly name = 'ReplyError';
}

/** A reply from Redis (it answered, and refused), as opposed to a connection that failed or timed out. */
function isRedisReply(err: unknown): boolean {
  return err instanceof Error && err.name === 'ReplyError';
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Per-stage latency of a routed slice: process (received -> processed) and route (processed -> now). */
function observeStages(items: readonly Item[]): void {
  const nowUs = Date.now() * 1000;
  for (const it of items) {
    const { receivedAtUs, processedAtUs } = resultTimesUs(it.value);
    metrics.stageSeconds.observe({ stage: 'process' }, (processedAtUs - receivedAtUs) / 1e6);
    metrics.stageSeconds.observe({ stage: 'route' }, (nowUs - processedAtUs) / 1e6);
  }
}
