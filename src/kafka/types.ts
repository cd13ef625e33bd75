/**
 * What the engine needs of a Kafka client, whichever library provides it. Two do:
 *
 *   native/        @confluentinc/kafka-javascript (librdkafka, a native addon): the default on Node
 *   platformatic/  @platformatic/kafka (pure TypeScript): the default on Bun, which cannot load the
 *                  native addon; selectable on Node >= 22.22 with kafka.client=platformatic
 *
 * factory.ts picks one from Config and imports only that library. The gateway, processor,
 * forwarder and admin.ts are written against these interfaces, and test/contract/kafka-client
 * holds both implementations to the same promises on a real broker.
 */

export type KafkaClientKind = 'native' | 'platformatic';

/** Called once per produced message, on the event loop, with the opaque given to produce(). */
export type DeliveryHandler = (err: Error | null, opaque: unknown) => void;

/**
 * The hot-path producer.
 *
 * Guarantee (both implementations): idempotent, acks=all. A delivery report with no error means
 * the message is durable on every in-sync replica. Reports for one partition arrive in produce
 * order, and a message that failed for good is never followed by a later one of its partition
 * being reported durable (no gap): every message after it in that partition fails too.
 */
export interface EngineProducer {
  readonly kind: KafkaClientKind;
  /** Messages produced whose delivery report has not come back yet. */
  readonly inflight: number;
  /** How long the oldest message without a delivery report has waited, in ms (now: a performance.now() value); 0 when none waits. */
  oldestWaitMs(now?: number): number;
  /**
   * Queues one message: to `partition`, or (null) to the partition of `key`. Returns false,
   * queueing nothing, when kafka.producerQueueMax messages are queued or in flight: the caller
   * must push back upstream. Each message queued gets exactly one delivery report.
   */
  produce(topic: string, partition: number | null, key: string | null, value: Buffer, opaque: unknown): boolean;
  /** The topic's partition count, from the cluster's metadata; KAFKA_UNAVAILABLE when unknown. */
  partitionsOf(topic: string, timeoutMs?: number): Promise<number>;
  /** Waits until every queued message has its delivery report; rejects after timeoutMs. */
  flush(timeoutMs: number): Promise<void>;
  /** Flushes (up to timeoutMs), then closes the client; logs one line on what it waited for. */
  disconnect(timeoutMs?: number): Promise<void>;
}

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

/**
 * The processor's and forwarder's consumer: a batch at a time, offsets committed by the caller once
 * the batch's output is durable. Guarantee: at least once; a batch not committed (crash,
 * rebalance) is read again, and the stages after it deduplicate by (device, seq). A group member
 * starting with no committed offset reads from the beginning.
 */
export interface EngineBatchConsumer {
  /**
   * Up to kafka.consumeBatchMax messages, in offset order per partition; [] after waitMs with
   * nothing to read. Never rejects: Kafka away or a rebalance under way reads as [].
   */
  consume(): Promise<ConsumedMessage[]>;
  /**
   * Commits, per partition of the batch, the offset after its last message, without blocking. One
   * commit in flight at a time; later offsets merge over earlier ones; a failed commit is retried
   * with the next, a few times, then given up (the batch is read again by the next owner).
   */
  commitBatch(messages: readonly ConsumedMessage[]): void;
  /** Resolves once nothing waits to be committed, or timeoutMs passed. */
  settleCommits(timeoutMs: number): Promise<void>;
  /** Commits what waits (up to 5 s), then leaves the group; one log line. */
  disconnect(): Promise<void>;
}

export interface NewTopic {
  topic: string;
  partitions: number;
  replicationFactor: number;
  minInsyncReplicas?: number;
}

export interface TopicDescription {
  name: string;
  /** Each partition's leader broker id; -1 while it has none. */
  partitions: { id: number; leader: number }[];
}

/**
 * Why an admin call failed, reduced to what admin.ts decides on. Every EngineAdmin method rejects
 * with a KafkaClientError only.
 */
export type KafkaFailure =
  | 'unknown-topic' // the broker does not know the topic (yet, or any more)
  | 'topic-exists' // create: a concurrent creator won
  | 'replication-factor' // create: more replicas asked for than brokers
  | 'unavailable' // no broker answered in time, or it answered with a transient error
  | 'refused'; // anything a retry will not change (policy, authorization, bad argument)

export class KafkaClientError extends Error {
  constructor(
    readonly failure: KafkaFailure,
    message: string,
    readonly client: KafkaClientKind,
    options: { cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KafkaClientError';
  }

  /** Whether the same call may succeed later without anything being changed. */
  get retryable(): boolean {
    return this.failure === 'unknown-topic' || this.failure === 'unavailable';
  }
}

/** Administration, one call at a time, each bounded by its own timeout. */
export interface EngineAdmin {
  listTopics(timeoutMs: number): Promise<string[]>;
  /** Creates the topics; a topic that exists already rejects with 'topic-exists' (after the others were created). */
  createTopics(topics: readonly NewTopic[], timeoutMs: number): Promise<void>;
  /** Partitions and leaders; a topic the broker does not know rejects with 'unknown-topic'. */
  describeTopics(topics: readonly string[], timeoutMs: number): Promise<TopicDescription[]>;
  /** Deletes one topic; a missing one rejects with 'unknown-topic'. */
  deleteTopic(topic: string, timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/** One library's clients, as factory.ts hands them out. */
export interface KafkaClients {
  readonly kind: KafkaClientKind;
  /** `eventsOf`: how many events a message's opaque stands for (the drain summary's count); 1 when not given. */
  producer(config: import('../config.js').Config, clientId: string, onDelivery: DeliveryHandler, eventsOf?: (opaque: unknown) => number): Promise<EngineProducer>;
  batchConsumer(config: import('../config.js').Config, options: ConsumerOptions): Promise<EngineBatchConsumer>;
  /** An admin client; the caller closes it. Connecting sends nothing: calls fail on their own timeouts. */
  admin(config: import('../config.js').Config, clientId: string): Promise<EngineAdmin>;
}
