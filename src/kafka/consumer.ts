/**
 * The batch consumer of the processor and the forwarder: librdkafka's native consumer, a batch at
 * a time, offsets committed explicitly by the caller once the batch's output is durable.
 *
 * Guarantee: at least once. A batch whose offsets were not committed (crash, rebalance) is read
 * again; the stages after it deduplicate by (device, seq).
 */
import KafkaJavascript from '@confluentinc/kafka-javascript';
import type { Config } from '../config.js';
import { ErrorCode, StratusError } from '../errors.js';

const { KafkaConsumer } = KafkaJavascript;

export interface ConsumedMessage {
  topic: string;
  partition: number;
  offset: number;
  key: Buffer | null;
  value: Buffer;
}

export interface ConsumerOptions {
  groupId: string;
  topics: string[];
  clientId: string;
  /** How long one consume() waits for the first message of a batch. */
  waitMs?: number;
}

export class KafkaBatchConsumer {
  private readonly native: InstanceType<typeof KafkaConsumer>;
  private readonly batchMax: number;

  private constructor(native: InstanceType<typeof KafkaConsumer>, batchMax: number) {
    this.native = native;
    this.batchMax = batchMax;
  }

  static async connect(config: Config, options: ConsumerOptions): Promise<KafkaBatchConsumer> {
    const native = new KafkaConsumer(
      {
        'metadata.broker.list': config.kafka.brokers.join(','),
        'group.id': options.groupId,
        'client.id': options.clientId,
        // Offsets move only when the caller commits a batch whose output is durable.
        'enable.auto.commit': false,
        'enable.auto.offset.store': false,
        // Cooperative rebalancing: a member joining or leaving does not stop every partition.
        'partition.assignment.strategy': 'cooperative-sticky',
        // A member that stops polling for this long is considered dead and its partitions move.
        'max.poll.interval.ms': 60_000,
        'session.timeout.ms': 10_000,
        // Read only committed transactional data; plain idempotent produce is unaffected.
        'isolation.level': 'read_committed',
        'log_level': config.logLevel === 'debug' ? 7 : 3,
      },
      // A group with no committed offset starts at the beginning: nothing produced before the
      // first consumer started is skipped.
      { 'auto.offset.reset': 'earliest' },
    );
    native.on('event.error', () => {});
    await new Promise<void>((resolve, reject) => native.connect({ timeout: 10_000 }, (err) => (err ? reject(err) : resolve()))).catch((err: unknown) => {
      throw new StratusError(ErrorCode.KAFKA_UNAVAILABLE, `consumer ${options.groupId} could not connect to Kafka at ${config.kafka.brokers.join(',')} (${String(err)})`, { retryable: true, cause: err });
    });
    native.setDefaultConsumeTimeout(options.waitMs ?? 100);
    // Wait only for a batch's first message, then take what is already fetched. The default waits
    // up to the timeout for every message of the batch, which added ~0.4 s per hop at light load
    // (measured with bench/e2e/pipeline-load.ts). Marked private in the library, but it is what its
    // own KafkaJS layer calls; checked against 1.10.1's lib/kafka-consumer.js.
    (native as unknown as { setDefaultIsTimeoutOnlyForFirstMessage(v: boolean): void }).setDefaultIsTimeoutOnlyForFirstMessage(true);
    native.subscribe(options.topics);
    return new KafkaBatchConsumer(native, config.kafka.consumeBatchMax);
  }

  /** Up to kafka.consumeBatchMax messages; an empty array after waitMs with nothing to read. */
  consume(): Promise<ConsumedMessage[]> {
    return new Promise((resolve, reject) => {
      this.native.consume(this.batchMax, (err, messages) => {
        if (err) return reject(err);
        resolve(messages.filter((m) => m.value != null) as ConsumedMessage[]);
      });
    });
  }

  /**
   * Commits, for each partition in the batch, the offset after its last message. Returns false when
   * Kafka did not take the commit. Callers commit only batches whose output is already durable, so
   * an uncommitted batch is only read again (at least once; the stages after dedupe), by this member
   * or by the partition's next owner, and the partition's next commit covers it. So no broker-side
   * refusal is fatal here: a partition revoked by a rebalance (ERR__NO_OFFSET), and, after a broker
   * restart, a group generation the new coordinator does not know (ILLEGAL_GENERATION,
   * UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS, coordinator not available) until the member rejoins.
   * Throwing on those ended the processor and the forwarder on every Kafka restart (fault suite,
   * kill -9 Kafka). Anything that is not a librdkafka error is a programmer error and still throws.
   */
  commitBatch(messages: readonly ConsumedMessage[]): boolean {
    const next = new Map<string, { topic: string; partition: number; offset: number }>();
    for (const m of messages) next.set(`${m.topic}\0${m.partition}`, { topic: m.topic, partition: m.partition, offset: m.offset + 1 });
    if (next.size === 0) return true;
    try {
      this.native.commitSync([...next.values()]);
      return true;
    } catch (err) {
      // A librdkafka error (the package does not export its class): a numeric code and an origin.
      const e = err as { code?: unknown; origin?: unknown };
      if (typeof e.code !== 'number' || typeof e.origin !== 'string') throw err;
      return false;
    }
  }

  disconnect(): Promise<void> {
    return new Promise((resolve) => this.native.disconnect(() => resolve()));
  }
}
