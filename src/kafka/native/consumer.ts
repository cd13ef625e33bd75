/**
 * The batch consumer of the processor and the forwarder: librdkafka's native consumer, a batch at
 * a time, offsets committed explicitly by the caller once the batch's output is durable.
 *
 * Guarantee: at least once. A batch whose offsets were not committed (crash, rebalance) is read
 * again; the stages after it deduplicate by (device, seq).
 */
import KafkaJavascript from '@confluentinc/kafka-javascript';
import type { Config } from '../../config.js';
import { ErrorCode, StratusError } from '../../errors.js';
import { KafkaClientHealth, registerHealth, type KafkaStatsBrokers } from '../../http/health.js';
import { metrics } from '../../http/metrics.js';
import { errorText, RateLimitedLog, roleLog } from '../../log.js';
import { CommitQueue, logConsumerLeft, type CommitClient, type OffsetToCommit } from '../commit-queue.js';
import type { ConsumedMessage, ConsumerOptions, EngineBatchConsumer } from '../types.js';
import { librdkafkaEvents } from './client.js';

const { KafkaConsumer } = KafkaJavascript;

const CONSUME_ERROR_PAUSE_MS = 200;
/** librdkafka's rebalance codes: partitions given to this member, or taken from it. */
const ERR__ASSIGN_PARTITIONS = -175;
const ERR__REVOKE_PARTITIONS = -174;
/**
 * Consume and commit failures: one per poll while Kafka is away or a rebalance is under way
 * (counted in stratus_kafka_consume_errors_total / commit_failures_total), logged at most 5 per
 * minute per consumer and code.
 */
const failureLog = new RateLimitedLog(roleLog('kafka'), { linesMax: 5, intervalMs: 60_000 });

/** What this consumer reads of librdkafka's statistics (STATISTICS.md) beyond the broker states. */
interface ConsumerStats extends KafkaStatsBrokers {
  topics?: Record<string, { partitions?: Record<string, { partition?: number; consumer_lag?: number }> }>;
}

/**
 * stratus_kafka_consumer_lag_messages{group, topic}: messages behind the committed offset, summed
 * over the partitions this consumer holds (librdkafka's consumer_lag; -1, unknown, counts nothing).
 * A topic of which it holds nothing reads 0 here; the members holding its partitions report them.
 */
function recordLag(group: string, topics: readonly string[], stats: ConsumerStats): void {
  for (const topic of topics) {
    let lag = 0;
    for (const p of Object.values(stats.topics?.[topic]?.partitions ?? {})) {
      // Partition -1 is librdkafka's internal UA (unassigned) partition.
      if ((p.partition ?? -1) >= 0 && (p.consumer_lag ?? -1) > 0) lag += p.consumer_lag!;
    }
    metrics.kafkaConsumerLag.set({ group, topic }, lag);
  }
}

export class KafkaBatchConsumer implements EngineBatchConsumer {
  private readonly native: InstanceType<typeof KafkaConsumer>;
  private readonly batchMax: number;
  /** Offsets of finished batches, committed one commitCb at a time (commit-queue.ts). */
  private readonly commits: CommitQueue;

  private constructor(
    native: InstanceType<typeof KafkaConsumer>,
    batchMax: number,
    /** What /readyz reads about this consumer (health.ts); unregistered once it is disconnected. */
    private readonly health: KafkaClientHealth,
    private readonly unregisterHealth: () => void,
    private readonly groupId: string,
    /** Its stratus_kafka_consumer_lag_messages series, removed when it leaves the group. */
    private readonly lagSeries: { group: string; topic: string }[],
  ) {
    this.native = native;
    this.batchMax = batchMax;
    this.commits = new CommitQueue(this.groupId, this.commitClient());
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
        // Fewer, fuller fetches for the broker to answer, at most kafka.fetchWaitMaxMs later.
        'fetch.wait.max.ms': config.kafka.fetchWaitMaxMs,
        'fetch.min.bytes': config.kafka.fetchMinBytes,
        // Read only committed transactional data; plain idempotent produce is unaffected.
        'isolation.level': 'read_committed',
        // Broker connection states for /readyz, every second: how soon it sees Kafka back after all
        // brokers were down. Served by consume() calls, like every event of a consumer.
        'statistics.interval.ms': 1000,
        'log_level': config.logLevel === 'debug' ? 7 : 3,
        // The library's own handler (incremental assign / unassign for cooperative-sticky), plus a
        // 'rebalance' event: logged below, one line per assignment or revocation.
        'rebalance_cb': true,
      },
      // A group with no committed offset starts at the beginning: nothing produced before the
      // first consumer started is skipped.
      { 'auto.offset.reset': 'earliest' },
    );
    const health = new KafkaClientHealth(`Kafka consumer ${options.clientId} (group ${options.groupId})`);
    const unregisterHealth = registerHealth(health);
    // Connection errors are retried by librdkafka; /readyz notes all brokers down and fatal errors,
    // and they are logged at a bounded rate (client.ts).
    librdkafkaEvents(native, options.clientId, health);
    const kafka = roleLog('kafka');
    native.on('rebalance', (err: { code?: number; message?: string }, assignment: { topic: string; partition: number }[]) => {
      const partitions = assignment.map((tp) => `${tp.topic}[${tp.partition}]`);
      if (err.code === ERR__ASSIGN_PARTITIONS) kafka.info({ group: options.groupId, client: options.clientId, partitions }, `rebalance: ${partitions.length} partition(s) assigned`);
      else if (err.code === ERR__REVOKE_PARTITIONS) kafka.info({ group: options.groupId, client: options.clientId, partitions }, `rebalance: ${partitions.length} partition(s) revoked`);
      else kafka.warn({ group: options.groupId, client: options.clientId, code: err.code, err: err.message }, 'rebalance failed');
    });
    native.on('rebalance.error', (err: unknown) => kafka.warn({ group: options.groupId, client: options.clientId, err: errorText(err) }, 'rebalance: assign or unassign failed'));
    native.on('event.stats', (e: { message: string }) => {
      let stats: ConsumerStats;
      try {
        stats = JSON.parse(e.message) as ConsumerStats;
      } catch {
        // librdkafka writes this JSON itself; a sample it garbled is skipped, the next comes in a second.
        return;
      }
      health.stats(stats);
      recordLag(options.groupId, options.topics, stats);
    });
    await new Promise<void>((resolve, reject) => native.connect({ timeout: 10_000 }, (err) => (err ? reject(err) : resolve()))).catch((err: unknown) => {
      unregisterHealth();
      throw new StratusError(ErrorCode.KAFKA_UNAVAILABLE, `consumer ${options.groupId} could not connect to Kafka at ${config.kafka.brokers.join(',')} (${String(err)})`, { retryable: true, cause: err });
    });
    native.setDefaultConsumeTimeout(options.waitMs ?? 100);
    // Wait only for a batch's first message, then take what is already fetched. The default waits
    // up to the timeout for every message of the batch, which added ~0.4 s per hop at light load
    // (measured with bench/e2e/pipeline-load.ts). Marked private in the library, but it is what its
    // own KafkaJS layer calls; checked against 1.10.1's lib/kafka-consumer.js.
    (native as unknown as { setDefaultIsTimeoutOnlyForFirstMessage(v: boolean): void }).setDefaultIsTimeoutOnlyForFirstMessage(true);
    native.subscribe(options.topics);
    health.connected();
    return new KafkaBatchConsumer(native, config.kafka.consumeBatchMax, health, unregisterHealth, options.groupId, options.topics.map((topic) => ({ group: options.groupId, topic })));
  }

  /** Up to kafka.consumeBatchMax messages; an empty array after waitMs with nothing to read. */
  consume(): Promise<ConsumedMessage[]> {
    return new Promise((resolve) => {
      this.native.consume(this.batchMax, (err, messages) => {
        if (err) {
          // Kafka away or a rebalance under way: nothing to hand out now; librdkafka reconnects.
          // Never a rejection: the stage's loop would end, and with it the stage.
          metrics.kafkaConsumeErrors.inc();
          failureLog.warn(`${this.groupId}\0consume\0${err.code}`, { group: this.groupId, code: err.code, err: err.message }, 'consume failed; polling again');
          // A high-level consumer gets a fatal error here, not as an error event.
          this.health.failed(err);
          setTimeout(() => resolve([]), CONSUME_ERROR_PAUSE_MS).unref();
          return;
        }
        resolve(messages.filter((m) => m.value != null) as ConsumedMessage[]);
      });
    });
  }

  /**
   * Commits, for each partition in the batch, the offset after its last message, without blocking:
   * librdkafka's synchronous commit would hold the event loop (the gateway's too, in one process)
   * for as long as Kafka does not answer. One commit is in flight at a time; offsets of batches
   * finished meanwhile are merged and sent next (a later offset covers an earlier one). A commit
   * that fails is tried again with the next, up to COMMIT_TRIES times, then given up: the batch is
   * read again after a restart or rebalance, which at-least-once allows.
   */
  commitBatch(messages: readonly ConsumedMessage[]): void {
    this.commits.add(messages);
  }

  /** Resolves once nothing waits to be committed (or timeoutMs passed): before a graceful disconnect. */
  settleCommits(timeoutMs: number): Promise<void> {
    return this.commits.settle(timeoutMs);
  }

  /** commitCb: librdkafka's commit on a libuv pool thread, answered by callback (commit-queue.ts decides when). */
  private commitClient(): CommitClient {
    // In the library's JavaScript (lib/kafka-consumer.js, 1.10.1) but not in its type declarations.
    const native = this.native as unknown as { commitCb(tp: OffsetToCommit[], cb: (err: { code?: number; message?: string } | null) => void): void };
    return {
      commit: (offsets, done) => native.commitCb(offsets, done),
      nothingToCommit: (err) => (err as { code?: number }).code === KafkaJavascript.CODES.ERRORS.ERR__NO_OFFSET,
      failed: (err, partitions) => {
        const e = err as { code?: number; message?: string };
        metrics.kafkaCommitFailures.inc();
        failureLog.warn(`${this.groupId}\0commit\0${e.code ?? ''}`, { group: this.groupId, code: e.code, partitions, err: e.message }, 'offset commit failed; retrying with the next');
      },
      // A commit failed after disconnect() is retried, and refused at once (commitCb throws): logged once more.
      isClosed: () => false,
    };
  }

  /**
   * Commits what is waiting (for up to 5 s: a graceful stop should not re-deliver), then leaves the
   * group. Logs one line: offsets committed while stopping, offsets left uncommitted, how long.
   */
  async disconnect(): Promise<void> {
    const startedAt = Date.now();
    const left = await this.commits.settleForClose(5000);
    await new Promise<void>((resolve) => this.native.disconnect(() => resolve()));
    this.unregisterHealth();
    for (const labels of this.lagSeries) metrics.kafkaConsumerLag.remove(labels);
    this.health.closed();
    logConsumerLeft(this.groupId, left, startedAt);
  }
}
