/**
 * The Kafka round trip: produce N keyed messages, read them back with a new consumer group from
 * the beginning of the topic, and account for every one. `stack up` verification, the demo and the
 * tests use it; the engine never reads these messages.
 *
 * Reads and writes: the topic given, which must exist (topics are never created automatically;
 * see admin.ts ensureTopics). Guarantee checked: every message acknowledged by the idempotent
 * acks=all producer is read back exactly once, in produce order per key. The report counts what
 * was not; a round trip that cannot read every message back within its time budget throws.
 *
 * Message layout (UTF-8 strings):
 *
 *   i-th message:  key   = "k<i % keys>"
 *                  value = "<runId>/<seq>"      seq = floor(i / keys), the per-key sequence
 *
 * A shared topic may hold earlier runs' messages: their runId differs, so they are skipped and
 * counted as `foreign` (they still cost reading, so use a topic of the run's own where it matters).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { KafkaJS } from '@confluentinc/kafka-javascript';
import type { Config } from '../../config.js';
import { ErrorCode, StratusError } from '../../errors.js';
import { topology } from '../../topology.js';
import { kafkaUnavailable } from '../errors.js';
import { nativeFailure } from './admin.js';
import { KafkaErrorCodes, kafkaClient, kafkaErrorCode } from './client.js';

export interface KafkaRoundTripOptions {
  readonly topic: string;
  /** Messages to produce and read back. */
  readonly messages: number;
  /** Distinct keys the messages are spread over, round robin; 16 when not given. */
  readonly keys?: number;
  /** Budget for the whole round trip; 60000 when not given. */
  readonly timeoutMs?: number;
}

export interface KafkaRoundTripReport {
  readonly topic: string;
  /** Partitions of the topic, as the broker described it before producing. */
  readonly partitions: number;
  readonly keys: number;
  /** Messages acknowledged by Kafka (a delivery report without error). */
  readonly produced: number;
  /** Distinct messages of this run read back; equal to `produced` when the round trip returns. */
  readonly consumed: number;
  /** Messages of this run read a second time (must be 0). */
  readonly duplicates: number;
  /** Messages of this run read before an earlier one of the same key (must be 0). */
  readonly outOfOrder: number;
  /** Messages of other runs found on the topic and skipped. */
  readonly foreign: number;
  /** From the first send to the last delivery report. */
  readonly produceMs: number;
  /** From the consumer's connect to its first message of this run: connect, group join, assignment, first fetch. */
  readonly firstMessageMs: number;
  /** From the consumer's connect to the last message of this run. */
  readonly allConsumedMs: number;
  /** From the first message of this run to the last: reading alone, without the start-up. */
  readonly consumeMs: number;
}

/** Send calls of this many messages each; every message costs the library one promise. */
const SEND_CHUNK_MAX = 1000;

/**
 * Counts what the consumer reads. Own message i (key k, per-key seq s) sits at seen[s * keys + k].
 * Invariant: consumed === number of set entries in seen.
 */
class Tally {
  consumed = 0;
  duplicates = 0;
  outOfOrder = 0;
  foreign = 0;
  firstAt: number | null = null;
  lastAt: number | null = null;
  private readonly seen: Uint8Array;
  /** Per key: the seq of the last new message read, -1 before the first. */
  private readonly lastSeq: Int32Array;
  private readonly prefix: string;

  constructor(
    runId: string,
    private readonly messages: number,
    private readonly keys: number,
    private readonly onComplete: () => void,
  ) {
    this.seen = new Uint8Array(messages);
    this.lastSeq = new Int32Array(keys).fill(-1);
    this.prefix = `${runId}/`;
  }

  add(key: Buffer | null, value: Buffer | null): void {
    const v = value?.toString() ?? '';
    const k = key === null ? NaN : Number(key.toString().slice(1));
    const seq = v.startsWith(this.prefix) ? Number(v.slice(this.prefix.length)) : NaN;
    const i = seq * this.keys + k;
    if (!Number.isInteger(k) || k < 0 || k >= this.keys || !Number.isInteger(seq) || seq < 0 || i >= this.messages) {
      this.foreign++;
      return;
    }
    if (this.seen[i] === 1) {
      this.duplicates++;
      return;
    }
    this.seen[i] = 1;
    if (seq !== this.lastSeq[k]! + 1) this.outOfOrder++;
    this.lastSeq[k] = seq;
    const now = performance.now();
    this.firstAt ??= now;
    this.lastAt = now;
    if (++this.consumed === this.messages) this.onComplete();
  }
}

/**
 * Produces every message with at most `windowMax` awaiting their delivery report, so the
 * producer's queue (queue.buffering.max.messages) never overflows: past the window this waits for
 * the oldest send. Sends are issued in order, and the idempotent producer keeps that order per
 * partition through retries.
 */
async function produceAll(producer: KafkaJS.Producer, topic: string, runId: string, messages: number, keys: number, windowMax: number): Promise<void> {
  const inflight: { readonly done: Promise<void>; readonly size: number }[] = [];
  let inflightSize = 0;
  let failure: { err: unknown } | null = null;
  for (let i = 0; i < messages && failure === null; i += SEND_CHUNK_MAX) {
    const batch: KafkaJS.Message[] = [];
    for (let j = i; j < Math.min(messages, i + SEND_CHUNK_MAX); j++) batch.push({ key: `k${j % keys}`, value: `${runId}/${Math.floor(j / keys)}` });
    while (inflight.length > 0 && inflightSize + batch.length > windowMax) {
      const oldest = inflight.shift()!;
      await oldest.done;
      inflightSize -= oldest.size;
    }
    // Rejections are caught here, at once, so none is ever unhandled while an earlier send is awaited.
    const done = producer.send({ topic, messages: batch }).then(
      () => {},
      (err: unknown) => {
        failure ??= { err };
      },
    );
    inflight.push({ done, size: batch.length });
    inflightSize += batch.length;
  }
  await Promise.all(inflight.map((f) => f.done));
  if (failure !== null) throw (failure as { err: unknown }).err;
}

/**
 * Produces `messages` keyed messages to `topic` and reads them back; see the file comment.
 * Throws KAFKA_UNAVAILABLE when the topic does not exist, Kafka does not answer, a produce fails,
 * or not every message is read back within the time budget. Every client it made is disconnected
 * on every path.
 */
export async function kafkaRoundTrip(config: Config, opts: KafkaRoundTripOptions): Promise<KafkaRoundTripReport> {
  const keys = opts.keys ?? 16;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  assert.ok(Number.isInteger(opts.messages) && opts.messages >= 1, `kafkaRoundTrip messages must be an integer >= 1 (got ${opts.messages})`);
  assert.ok(Number.isInteger(keys) && keys >= 1, `kafkaRoundTrip keys must be an integer >= 1 (got ${keys})`);
  assert.ok(Number.isFinite(timeoutMs) && timeoutMs > 0, `kafkaRoundTrip timeoutMs must be > 0 (got ${timeoutMs})`);
  const deadline = performance.now() + timeoutMs;
  const left = () => Math.max(1, Math.ceil(deadline - performance.now()));
  const runId = randomUUID();
  const groupId = topology(config).groups.probe(runId);
  const kafka = kafkaClient(config, 'stratus-probe');
  const admin = kafka.admin();
  let producer: KafkaJS.Producer | null = null;
  let consumer: KafkaJS.Consumer | null = null;
  let timer: NodeJS.Timeout | undefined;
  try {
    await admin.connect();
    // Ask before producing: a producer's connect() waits up to 30 s for metadata (fixed in the
    // library) and cannot be cut short, and producing to a missing topic waits out
    // topic.metadata.propagation.max.ms. A short describe fails fast and says why.
    let partitions: number;
    try {
      const [meta] = await admin.fetchTopicMetadata({ topics: [opts.topic], timeout: Math.min(left(), 10_000) });
      partitions = meta!.partitions.length;
    } catch (err) {
      if (kafkaErrorCode(err) === KafkaErrorCodes.ERR_UNKNOWN_TOPIC_OR_PART) {
        throw new StratusError(
          ErrorCode.KAFKA_UNAVAILABLE,
          `topic ${opts.topic} does not exist at ${config.kafka.brokers.join(',')}; Stratus never creates topics implicitly: create it first (\`npx stratus stack up\` creates the engine's topics)`,
          { cause: err },
        );
      }
      throw kafkaUnavailable(config, `did not describe topic ${opts.topic}`, nativeFailure(err));
    }

    producer = kafka.producer({
      // Durable before acknowledged, never duplicated or reordered by a retry (the guarantee this
      // round trip checks). Idempotence requires acks=all and at most 5 requests in flight.
      'enable.idempotence': true,
      acks: -1,
      'max.in.flight.requests.per.connection': 5,
      // Compatibility mode sets retries=5; librdkafka's idempotent default is unlimited, bounded
      // in time by message.timeout.ms instead.
      retries: 2_147_483_647,
      // Every message is acknowledged or failed within the round trip's budget (librdkafka wants it
      // above linger.ms).
      'message.timeout.ms': Math.max(config.kafka.lingerMs + 1000, Math.min(config.kafka.deliveryTimeoutMs, left())),
      'linger.ms': config.kafka.lingerMs,
      'batch.size': config.kafka.batchSizeMax,
      'queue.buffering.max.messages': config.kafka.producerQueueMax,
      // Java-compatible key hashing: the same key lands on the same partition as with any Kafka client.
      partitioner: 'murmur2_random',
    });
    await producer.connect();
    const t0 = performance.now();
    await produceAll(producer, opts.topic, runId, opts.messages, keys, Math.max(SEND_CHUNK_MAX, Math.floor(config.kafka.producerQueueMax / 2)));
    const produceMs = performance.now() - t0;

    let complete!: () => void;
    const allRead = new Promise<void>((resolve) => (complete = resolve));
    const tally = new Tally(runId, opts.messages, keys, () => complete());
    consumer = kafka.consumer({
      // A group of this run's own (topology.groups.probe): no committed offsets, so it starts at
      // auto.offset.reset, the beginning of every partition.
      'group.id': groupId,
      'auto.offset.reset': 'earliest',
      // Nothing is committed: the group is thrown away (and deleted) when the round trip ends.
      'enable.auto.commit': false,
      // The classic protocol works with every broker; the engine's consumers use it too.
      'group.protocol': 'classic',
      // One member: any strategy gives it every partition. Named because compatibility mode picks one.
      'partition.assignment.strategy': 'roundrobin',
      // A probe that dies leaves its group after 10 s instead of 30 s (the broker's minimum is 6 s).
      'session.timeout.ms': 10_000,
      'heartbeat.interval.ms': 3000,
      // Reads only committed data; plain idempotent produce counts as committed.
      'isolation.level': 'read_committed',
      // Messages handed to eachBatch at a time.
      'js.consumer.max.batch.size': config.kafka.consumeBatchMax,
    });
    const t1 = performance.now();
    await consumer.connect();
    await consumer.subscribe({ topics: [opts.topic] });
    // run() returns at once; messages arrive once the group is joined and partitions assigned.
    await consumer.run({
      partitionsConsumedConcurrently: 1,
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) tally.add(m.key, m.value);
      },
    });
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), left());
    });
    if ((await Promise.race([allRead, timedOut])) === 'timeout') {
      throw kafkaUnavailable(
        config,
        `returned ${tally.consumed} of ${opts.messages} messages on ${opts.topic} within the round trip's ${timeoutMs} ms`,
        new Error(`${tally.duplicates} duplicates, ${tally.foreign} foreign messages read`),
      );
    }
    return {
      topic: opts.topic,
      partitions,
      keys,
      produced: opts.messages,
      consumed: tally.consumed,
      duplicates: tally.duplicates,
      outOfOrder: tally.outOfOrder,
      foreign: tally.foreign,
      produceMs,
      firstMessageMs: tally.firstAt! - t1,
      allConsumedMs: tally.lastAt! - t1,
      consumeMs: tally.lastAt! - tally.firstAt!,
    };
  } catch (err) {
    if (err instanceof StratusError) throw err;
    throw kafkaUnavailable(config, `failed a produce/consume round trip on ${opts.topic}`, nativeFailure(err));
  } finally {
    clearTimeout(timer);
    // A client whose connect() failed is already disconnected (a no-op here); a consumer's
    // disconnect waits for an eachBatch in progress, which never blocks.
    // Clean-up of a probe whose result is already decided: a client that fails to close takes
    // nothing with it (the probe's topic and group are its own).
    await consumer?.disconnect().catch(() => {});
    await producer?.disconnect().catch(() => {});
    // The group never committed an offset; deleting it keeps the broker's group list clean.
    if (consumer !== null) await admin.deleteGroups([groupId], { timeout: 5000 }).catch(() => {});
    await admin.disconnect().catch(() => {});
  }
}
