/**
 * Kafka administration and probes: readiness, explicit topic creation, and a produce -> consume
 * round trip for `stack up`, the demo and the tests.
 *
 * src/kafka/ is the only importer of @confluentinc/kafka-javascript. This file uses its
 * KafkaJS-compatible promise API (librdkafka underneath); the hot-path producer and consumer of the
 * pipeline live beside it.
 */
import { randomUUID } from 'node:crypto';
import KafkaJavascript from '@confluentinc/kafka-javascript';
import type { KafkaJS as KafkaJSTypes } from '@confluentinc/kafka-javascript';
import type { Config } from '../config.js';
import { ErrorCode, StratusError } from '../errors.js';

const { Kafka, logLevel } = KafkaJavascript.KafkaJS;

/**
 * librdkafka reports every refused connection while a broker starts; at `info` that is noise on
 * the user's terminal. Errors go to stderr only when the user asked for debug logs; the calls that
 * matter fail with typed errors anyway.
 */
function logger(config: Config): KafkaJSTypes.Logger {
  const debug = config.logLevel === 'debug';
  const write = (level: string) => (message: string, extra?: object) => {
    if (debug) process.stderr.write(`kafka ${level}: ${message}${extra ? ` ${JSON.stringify(extra)}` : ''}\n`);
  };
  const l: KafkaJSTypes.Logger = {
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    debug: write('debug'),
    namespace: () => l,
    setLogLevel: () => {},
  };
  return l;
}

export function kafkaClient(config: Config, clientId: string): KafkaJSTypes.Kafka {
  return new Kafka({
    kafkaJS: {
      brokers: [...config.kafka.brokers],
      clientId,
      logger: logger(config),
      logLevel: config.logLevel === 'debug' ? logLevel.DEBUG : logLevel.ERROR,
    },
  });
}

function unavailable(config: Config, what: string, cause: unknown): StratusError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new StratusError(
    ErrorCode.KAFKA_UNAVAILABLE,
    `Kafka at ${config.kafka.brokers.join(',')} ${what} (${detail}); is it running? \`stratus stack status\` tells`,
    { retryable: true, cause },
  );
}

async function withAdmin<T>(config: Config, timeoutMs: number, fn: (admin: KafkaJSTypes.Admin) => Promise<T>): Promise<T> {
  const admin = kafkaClient(config, 'stratus-admin').admin({
    // Fail the connect within the caller's budget rather than librdkafka's own retry schedule.
    'socket.connection.setup.timeout.ms': Math.max(1000, timeoutMs),
  });
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/** Resolves once a broker answers a metadata request; throws KAFKA_UNAVAILABLE after timeoutMs. */
export async function waitForKafka(config: Config, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = new Error('no answer');
  while (Date.now() < deadline) {
    const left = deadline - Date.now();
    try {
      await withAdmin(config, left, (admin) => admin.listTopics({ timeout: Math.max(500, Math.min(left, 5000)) }));
      return;
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw unavailable(config, `did not answer a metadata request within ${timeoutMs} ms`, last);
}

export interface TopicSpec {
  topic: string;
  partitions: number;
  /** 1 on the local single-node stack. */
  replicationFactor?: number;
}

/**
 * Creates the topics that are missing, with their explicit partition counts. A topic that exists
 * with another partition count is an error: keys would hash to other partitions than the running
 * engine expects, breaking per-device order.
 */
export async function ensureTopics(config: Config, specs: readonly TopicSpec[], timeoutMs = 30_000): Promise<void> {
  try {
    await withAdmin(config, timeoutMs, async (admin) => {
      const existing = new Set(await admin.listTopics({ timeout: timeoutMs }));
      const missing = specs.filter((s) => !existing.has(s.topic));
      if (missing.length > 0) {
        await admin.createTopics({
          timeout: timeoutMs,
          topics: missing.map((s) => ({ topic: s.topic, numPartitions: s.partitions, replicationFactor: s.replicationFactor ?? 1 })),
        });
      }
      const present = specs.filter((s) => existing.has(s.topic));
      if (present.length > 0) {
        const meta = await admin.fetchTopicMetadata({ topics: present.map((s) => s.topic), timeout: timeoutMs });
        for (const s of present) {
          const found = meta.find((m) => m.name === s.topic)?.partitions.length ?? 0;
          if (found !== s.partitions) {
            throw new StratusError(
              ErrorCode.KAFKA_TOPIC_MISMATCH,
              `topic ${s.topic} has ${found} partitions but config asks for ${s.partitions}; set kafka.partitions to ${found}, or delete the topic (\`stratus stack up --fresh\` on the local stack)`,
            );
          }
        }
      }
    });
  } catch (err) {
    if (err instanceof StratusError) throw err;
    // A concurrent creator (another test, another `up`) may win the race: that is success if the layout matches.
    if ((err as { code?: number }).code === 36 /* TOPIC_ALREADY_EXISTS */) return ensureTopics(config, specs, timeoutMs);
    throw unavailable(config, 'refused to create topics', err);
  }
}

export async function deleteTopics(config: Config, topics: readonly string[], timeoutMs = 30_000): Promise<void> {
  await withAdmin(config, timeoutMs, (admin) => admin.deleteTopics({ topics: [...topics], timeout: timeoutMs }));
}

export interface RoundTripReport {
  produced: number;
  consumed: number;
  /** From the first send to the last delivery report. */
  produceMs: number;
  /** From the consumer's start to the last message read. */
  consumeMs: number;
  /** Messages read whose key order differed from the order produced (must be 0). */
  outOfOrder: number;
}

/**
 * Produces `messages` keyed messages (16 keys) with an idempotent acks=all producer, then reads them
 * back with a fresh consumer group from the beginning of the topic. The topic must exist and be
 * otherwise unused.
 */
export async function kafkaRoundTrip(config: Config, opts: { topic: string; messages: number; timeoutMs?: number }): Promise<RoundTripReport> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const kafka = kafkaClient(config, 'stratus-probe');
  const producer = kafka.producer({
    kafkaJS: { idempotent: true, acks: -1 },
    // Batching: wait up to 5 ms to fill a batch; the probe sends everything at once.
    'linger.ms': 5,
  });
  const consumer = kafka.consumer({
    kafkaJS: { groupId: `stratus-probe-${randomUUID()}`, fromBeginning: true, autoCommit: false },
  });
  const keys = 16;
  const produced: number[][] = Array.from({ length: keys }, () => []);
  try {
    await producer.connect();
    const t0 = performance.now();
    const chunk = 1000;
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < opts.messages; i += chunk) {
      const messages = [];
      for (let j = i; j < Math.min(opts.messages, i + chunk); j++) {
        produced[j % keys]!.push(j);
        messages.push({ key: `k${j % keys}`, value: String(j) });
      }
      sends.push(producer.send({ topic: opts.topic, messages }));
    }
    await Promise.all(sends);
    const produceMs = performance.now() - t0;

    await consumer.connect();
    await consumer.subscribe({ topic: opts.topic });
    const next = new Array<number>(keys).fill(0);
    let consumed = 0;
    let outOfOrder = 0;
    const t1 = performance.now();
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`read ${consumed} of ${opts.messages} messages in ${timeoutMs} ms`)), timeoutMs);
      void consumer.run({
        eachMessage: async ({ message }) => {
          const key = Number(message.key!.toString().slice(1));
          const value = Number(message.value!.toString());
          if (produced[key]![next[key]!] !== value) outOfOrder++;
          next[key]!++;
          if (++consumed === opts.messages) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
    await done;
    return { produced: opts.messages, consumed, produceMs, consumeMs: performance.now() - t1, outOfOrder };
  } catch (err) {
    throw unavailable(config, 'failed a produce/consume round trip', err);
  } finally {
    await consumer.disconnect().catch(() => {});
    await producer.disconnect().catch(() => {});
  }
}
