/**
 * Kafka administration: is the broker answering, and do the topics exist with their partition
 * counts. Used by `stack up`, `run`, the demo and the tests.
 *
 * Topics are only ever created here, explicitly, with the partition count the caller asks for:
 * the broker's auto.create.topics.enable is off on the local stack, and neither client library is
 * configured to ask for automatic creation. A topic's partition count is never changed: keys
 * would hash to other partitions and lose their order.
 *
 * Written against EngineAdmin (types.ts), with kafka.client's library: each call carries its own
 * timeout, and an admin client left open keeps the process alive, so each is closed in a `finally`.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config.js';
import { ErrorCode, StratusError } from '../errors.js';
import { kafkaUnavailable } from './errors.js';
import { kafkaClients } from './factory.js';
import { KafkaClientError, type EngineAdmin, type TopicDescription } from './types.js';

/** One admin client (of kafka.client's library) for the duration of fn, closed afterwards whatever fn did. */
async function withAdmin<T>(config: Config, clientId: string, fn: (admin: EngineAdmin) => Promise<T>): Promise<T> {
  const admin = await (await kafkaClients(config)).admin(config, clientId);
  try {
    return await fn(admin);
  } finally {
    await admin.close();
  }
}

const failed = (err: unknown, failure: KafkaClientError['failure']): boolean => err instanceof KafkaClientError && err.failure === failure;

/** Milliseconds left before deadline (a performance.now() value), at least `floor`, at most `ceiling`. */
function budget(deadline: number, floor: number, ceiling: number): number {
  return Math.min(ceiling, Math.max(floor, Math.ceil(deadline - performance.now())));
}

/**
 * Resolves as soon as a broker answers a metadata request; throws KAFKA_UNAVAILABLE (retryable)
 * naming the brokers and the fix once timeoutMs has passed without an answer. Nothing is written to
 * stderr while waiting (librdkafka's connection errors go to the quiet logger of client.ts).
 */
export async function waitForKafka(config: Config, timeoutMs: number): Promise<void> {
  assert.ok(Number.isFinite(timeoutMs) && timeoutMs > 0, `waitForKafka timeoutMs must be > 0 (got ${timeoutMs})`);
  const deadline = performance.now() + timeoutMs;
  let last: unknown = new Error('no attempt was made');
  await withAdmin(config, 'stratus-wait', async (admin) => {
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) return;
      const started = performance.now();
      try {
        // A metadata request. With no broker up it returns ERR__TRANSPORT after its whole timeout;
        // short attempts keep the last one from running far past the deadline.
        await admin.listTopics(budget(deadline, 100, 2000));
        last = null;
        return;
      } catch (err) {
        last = err;
      }
      // An attempt that failed at once (not by timing out) must not become a busy loop.
      const spent = performance.now() - started;
      if (spent < 200) await sleep(Math.min(200 - spent, Math.max(0, deadline - performance.now())));
    }
  });
  if (last !== null) throw kafkaUnavailable(config, `did not answer a metadata request within ${timeoutMs} ms`, last);
}

export interface TopicSpec {
  readonly topic: string;
  /** Exact partition count: created with it, and an existing topic must have it. */
  readonly partitions: number;
  /** Replicas per partition when the topic is created; 1 when not given (the local single-node stack). */
  readonly replicationFactor?: number;
  /** min.insync.replicas of the topic when it is created; the broker's default when not given. */
  readonly minInsyncReplicas?: number;
}

export interface EnsureTopicsResult {
  /** Topics that did not exist when looked for and now exist with the wanted partition count. */
  readonly created: string[];
  /** Topics that already existed, with the wanted partition count; nothing was sent for them. */
  readonly existing: string[];
}

function mismatch(topic: string, found: number, wanted: number): StratusError {
  return new StratusError(
    ErrorCode.KAFKA_TOPIC_MISMATCH,
    `topic ${topic} has ${found} partitions but ${wanted} were asked for; Stratus never changes the partitions of an existing topic ` +
      `(keys would move to other partitions and lose their order): delete the topic (on the local stack \`npx stratus stack up --fresh\` wipes all data), ` +
      `or ask for ${found} (kafka.partitions, STRATUS_KAFKA_PARTITIONS, for the events and results topics)`,
  );
}

/**
 * Checks the partition count of each topic, waiting (until deadline) for topics that the broker
 * does not know yet: a topic just created is acknowledged by the controller before every broker's
 * metadata has it, and a describe in that window answers UNKNOWN_TOPIC_OR_PART.
 */
async function checkPartitions(config: Config, admin: EngineAdmin, specs: readonly TopicSpec[], deadline: number): Promise<void> {
  const topics = specs.map((s) => s.topic);
  for (;;) {
    let meta: TopicDescription[] | null = null;
    try {
      meta = await admin.describeTopics(topics, budget(deadline, 100, 10_000));
    } catch (err) {
      const waiting = failed(err, 'unknown-topic');
      if (!waiting || performance.now() >= deadline) throw kafkaUnavailable(config, `did not describe topics ${topics.join(', ')}`, err);
    }
    if (meta !== null) {
      let leaderless = false;
      for (const s of specs) {
        const m = meta.find((t) => t.name === s.topic);
        assert.ok(m !== undefined, `describeTopics answered without ${s.topic}`);
        if (m.partitions.length !== s.partitions) throw mismatch(s.topic, m.partitions.length, s.partitions);
        if (m.partitions.some((p) => p.leader < 0)) leaderless = true;
      }
      if (!leaderless) return;
      if (performance.now() >= deadline) throw kafkaUnavailable(config, `has partitions without a leader in ${topics.join(', ')}`, new Error('leader -1'));
    }
    await sleep(100);
  }
}

/**
 * Makes each topic exist with exactly its partition count. Creates the missing ones, leaves the
 * matching ones alone (a second call sends no create request), and throws KAFKA_TOPIC_MISMATCH,
 * before creating anything, for a topic that exists with another partition count. Resolves only
 * when the broker's metadata shows every topic, so a producer can use them at once.
 *
 * Safe to run concurrently with itself (two `stack up`, parallel tests): a topic created by the
 * other caller in between is checked like an existing one.
 */
export async function ensureTopics(config: Config, specs: readonly TopicSpec[], timeoutMs = 30_000): Promise<EnsureTopicsResult> {
  assert.equal(new Set(specs.map((s) => s.topic)).size, specs.length, 'ensureTopics: a topic is listed twice');
  for (const s of specs) {
    assert.ok(Number.isInteger(s.partitions) && s.partitions >= 1, `ensureTopics: ${s.topic} partitions must be an integer >= 1 (got ${s.partitions})`);
    const rf = s.replicationFactor ?? 1;
    assert.ok(Number.isInteger(rf) && rf >= 1, `ensureTopics: ${s.topic} replicationFactor must be an integer >= 1 (got ${rf})`);
  }
  if (specs.length === 0) return { created: [], existing: [] };
  const deadline = performance.now() + timeoutMs;
  return withAdmin(config, 'stratus-admin', async (admin) => {
    let names: Set<string>;
    try {
      names = new Set(await admin.listTopics(budget(deadline, 100, 10_000)));
    } catch (err) {
      throw kafkaUnavailable(config, 'did not list its topics', err);
    }
    const existing = specs.filter((s) => names.has(s.topic));
    const missing = specs.filter((s) => !names.has(s.topic));
    // Existing topics first: a mismatch then leaves the cluster exactly as it was.
    if (existing.length > 0) await checkPartitions(config, admin, existing, deadline);
    if (missing.length > 0) {
      try {
        await admin.createTopics(
          missing.map((s) => ({ topic: s.topic, partitions: s.partitions, replicationFactor: s.replicationFactor ?? 1, minInsyncReplicas: s.minInsyncReplicas })),
          budget(deadline, 100, 30_000),
        );
      } catch (err) {
        // topic-exists: a concurrent creator won the race (the others were created); checkPartitions
        // below holds that topic to the same partition count.
        if (!failed(err, 'topic-exists')) {
          // The broker's text names the factor and the brokers it has (Kafka 4: "The target
          // replication factor of 2 cannot be reached because only 1 broker(s) are registered ...").
          const what = `refused to create ${missing.map((s) => `${s.topic} (${s.partitions} partitions, replication factor ${s.replicationFactor ?? 1}${s.minInsyncReplicas === undefined ? '' : `, min.insync.replicas ${s.minInsyncReplicas}`})`).join(', ')}`;
          throw kafkaUnavailable(config, failed(err, 'replication-factor') ? `${what}: the cluster has fewer brokers than kafka.replicationFactor; lower it (STRATUS_KAFKA_REPLICATION_FACTOR) or add brokers` : what, err);
        }
      }
      await checkPartitions(config, admin, missing, deadline);
    }
    return { created: missing.map((s) => s.topic), existing: existing.map((s) => s.topic) };
  });
}

/** Deletes the topics; one that does not exist is not an error (cleanup in tests and the demo). */
export async function deleteTopics(config: Config, topics: readonly string[], timeoutMs = 30_000): Promise<void> {
  if (topics.length === 0) return;
  const deadline = performance.now() + timeoutMs;
  await withAdmin(config, 'stratus-admin', async (admin) => {
    // One request per topic: the library rejects a multi-topic delete on the first error, hiding
    // what happened to the others.
    const results = await Promise.allSettled(topics.map((topic) => admin.deleteTopic(topic, budget(deadline, 100, 30_000))));
    const refused = results.flatMap((r, i) => (r.status === 'rejected' && !failed(r.reason, 'unknown-topic') ? [{ topic: topics[i]!, err: r.reason as unknown }] : []));
    if (refused.length > 0) throw kafkaUnavailable(config, `did not delete ${refused.map((f) => f.topic).join(', ')}`, refused[0]!.err);
    // Deletion completes asynchronously on the broker: return once metadata no longer lists the
    // topics, so a caller that lists or re-creates them right after sees them gone.
    const wanted = new Set(topics);
    while (performance.now() < deadline) {
      const names = await admin.listTopics(budget(deadline, 100, 5_000));
      if (!names.some((n) => wanted.has(n))) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw kafkaUnavailable(config, `still lists ${topics.join(', ')} ${timeoutMs} ms after deleting them`, null);
  });
}
