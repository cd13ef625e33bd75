/**
 * The batch consumer of the processor and the forwarder on @platformatic/kafka: the library's
 * MessagesStream (an object-mode Readable, one message per chunk) drained a batch at a time, offsets
 * committed explicitly by the caller once the batch's output is durable.
 *
 * Guarantee: at least once. A batch whose offsets were not committed (crash, rebalance) is read
 * again; the stages after it deduplicate by (device, seq).
 *
 * Commits go through consumer.commit() with this file's own single-flight merge (as the native
 * consumer), not through each message's commit(): a stream's commit that fails with a rejoin error
 * destroys the stream (messages-stream.js:890), while consumer.commit() rejoins and retries itself
 * (consumer.js:692-716). The stream can still be destroyed by a fetch or offset error; it is then
 * made again, from the committed offsets.
 */
import { Consumer, type Message, type MessagesStream } from '@platformatic/kafka';
import type { Config } from '../../config.js';
import { KafkaClientHealth, registerHealth } from '../../http/health.js';
import { metrics } from '../../http/metrics.js';
import { errorText, RateLimitedLog, roleLog } from '../../log.js';
import { CommitQueue, logConsumerLeft, type CommitClient } from '../commit-queue.js';
import type { ConsumedMessage, ConsumerOptions, EngineBatchConsumer } from '../types.js';
import { bounded, platformaticFailure } from './errors.js';
import { baseOptions } from './options.js';

/** Pause before a stream is made again after the library failed or destroyed it. */
const STREAM_RETRY_MS = 500;
/** How long making a stream (joining the group, reading the committed offsets) may take before it is tried again. */
const STREAM_OPEN_TIMEOUT_MS = 30_000;
/** Lag is asked of the broker this often (one ListOffsets); librdkafka's statistics came every second. */
const LAG_INTERVAL_MS = 5000;
/** What the library's own retries may spend on one group or fetch request. */
const RETRY_BUDGET_MS = 5000;

/** Consume and commit failures, logged at most 5 per minute per consumer and kind (as the native consumer). */
const failureLog = new RateLimitedLog(roleLog('kafka'), { linesMax: 5, intervalMs: 60_000 });

type Stream = MessagesStream<Buffer, Buffer, Buffer, Buffer>;

export class PlatformaticBatchConsumer implements EngineBatchConsumer {
  /** Invariant: stream !== null iff a stream is open and not destroyed; opening !== null while one is being made. */
  private stream: Stream | null = null;
  private opening: Promise<void> | null = null;
  /** The consume() waiting for the stream's next 'readable' (or its timer); at most one (the stage's loop). */
  private wake: (() => void) | null = null;
  private closed = false;
  /** Offsets of finished batches, committed one at a time (commit-queue.ts). */
  private readonly commits: CommitQueue;
  private readonly waitMs: number;
  private readonly batchMax: number;

  private constructor(
    private readonly lib: Consumer<Buffer, Buffer, Buffer, Buffer>,
    config: Config,
    private readonly options: ConsumerOptions,
    private readonly health: KafkaClientHealth,
    private readonly unregisterHealth: () => void,
  ) {
    this.waitMs = options.waitMs ?? 100;
    this.batchMax = config.kafka.consumeBatchMax;
    this.config = config;
    this.commits = new CommitQueue(options.groupId, this.commitClient());
  }

  private readonly config: Config;

  static async connect(config: Config, options: ConsumerOptions): Promise<PlatformaticBatchConsumer> {
    const lib = new Consumer<Buffer, Buffer, Buffer, Buffer>({
      ...baseOptions(config, options.clientId, RETRY_BUDGET_MS),
      groupId: options.groupId,
      // Offsets move only when the caller commits a batch whose output is durable.
      autocommit: false,
      // A member silent this long is considered dead and its partitions move (native: 10 s).
      sessionTimeout: 10_000,
      heartbeatInterval: 3000,
      // How long the group waits for members to rejoin during a rebalance (native: max.poll.interval.ms 60 s).
      rebalanceTimeout: 60_000,
      // Cooperative rebalancing, as the native consumer: a member joining or leaving does not stop
      // every partition, and the library commits what is queued before revoking (consumer.js:1483-1541).
      // The library's default is roundrobin (consumer/options.js:250), eager.
      protocols: [{ name: 'cooperative-sticky', version: 1 }],
      // The library's default maxWaitTime is 5 s (options.js:253): a fetch of an idle partition
      // would hold each hop for that long. These are the native fetch.wait.max.ms / fetch.min.bytes.
      maxWaitTime: config.kafka.fetchWaitMaxMs,
      minBytes: config.kafka.fetchMinBytes,
      // Read only committed transactional data (default too; spelled out as in native).
      isolationLevel: 1,
      // One batch buffered ahead of the one being processed (default 1024 messages).
      highWaterMark: config.kafka.consumeBatchMax,
    });
    const health = new KafkaClientHealth(`Kafka consumer ${options.clientId} (group ${options.groupId})`);
    const unregisterHealth = registerHealth(health);
    const consumer = new PlatformaticBatchConsumer(lib, config, options, health, unregisterHealth);
    const kafka = roleLog('kafka');
    const who = { group: options.groupId, client: options.clientId };
    lib.on('consumer:group:join', (e: { assignments?: { topic: string; partitions: number[] }[] | null }) => {
      const partitions = (e.assignments ?? []).flatMap((a) => a.partitions.map((p) => `${a.topic}[${p}]`));
      kafka.info({ ...who, partitions }, `rebalance: ${partitions.length} partition(s) assigned`);
    });
    lib.on('consumer:group:rebalance', () => kafka.info(who, 'rebalance under way'));
    lib.on('consumer:lag', (lag: Map<string, bigint[]>) => {
      for (const topic of options.topics) {
        // -1 marks a partition this member does not hold (consumer.js getLag); those count nothing here.
        let sum = 0;
        for (const l of lag.get(topic) ?? []) if (l > 0n) sum += Number(l);
        metrics.kafkaConsumerLag.set({ group: options.groupId, topic }, sum);
      }
    });
    // A failed lag request is retried next interval; counted nowhere else, so at debug.
    lib.on('consumer:lag:error', (err: unknown) => kafka.debug({ ...who, err: errorText(err) }, 'consumer lag request failed'));
    // A rejoin after a failed heartbeat that itself failed is emitted as 'error' on the client
    // (consumer.js:961, `emitWithDebug(null, 'error', ...)`): with no listener an EventEmitter
    // throws it, which ended a Bun test process between two tests (a member closing while its
    // group rebalanced). No more heartbeats follow it, so the member is out of the group: the
    // stream is closed and made again, which joins the group anew.
    lib.on('error', (err: unknown) => consumer.rejoinFailed(err));
    // A member whose heartbeats have failed for a session's length (consumer.js #trackHeartbeatStall).
    lib.on('consumer:heartbeat:stalled', (e: { lastError?: unknown; stalledFor?: number }) => {
      kafka.warn({ ...who, stalledForMs: e.stalledFor, err: errorText(e.lastError) }, 'consumer heartbeats stalled');
      health.down(`consumer heartbeats stalled for ${Math.round((e.stalledFor ?? 0) / 1000)} s (${errorText(e.lastError)})`);
    });
    // Not awaited: joining the group needs the broker, and consume() reads [] while Kafka is away.
    consumer.open();
    return consumer;
  }

  /** Makes the stream (joins the group, reads the committed offsets), again after a pause on failure. */
  private open(): void {
    if (this.closed || this.stream !== null || this.opening !== null) return;
    const opened = this.lib.consume({
      topics: [...this.options.topics],
      // A group with no committed offset starts at the beginning: nothing produced before the
      // first consumer started is skipped (native auto.offset.reset=earliest).
      mode: 'committed',
      fallbackMode: 'earliest',
      autocommit: false,
      maxWaitTime: this.config.kafka.fetchWaitMaxMs,
      minBytes: this.config.kafka.fetchMinBytes,
      highWaterMark: this.config.kafka.consumeBatchMax,
      protocols: [{ name: 'cooperative-sticky', version: 1 }],
      sessionTimeout: 10_000,
      heartbeatInterval: 3000,
      rebalanceTimeout: 60_000,
    });
    this.opening = bounded(opened, STREAM_OPEN_TIMEOUT_MS, 'join group').then(
      (stream) => {
        this.opening = null;
        if (this.closed) {
          stream.close().catch(() => {}); // closing anyway; the consumer's close() follows
          return;
        }
        this.stream = stream;
        this.health.heard();
        // A 'readable' listener from the start: the stream fetches only once it is read in paused
        // mode or flowing (messages-stream.js:352 returns early while readableFlowing === null, and
        // a read() made then is never followed by another _read), so without it a consume() that
        // came before the stream's first fetch would wait forever.
        stream.on('readable', () => {
          const wake = this.wake;
          this.wake = null;
          wake?.();
        });
        stream.on('error', (err: unknown) => this.lost(stream, err));
        stream.on('close', () => this.lost(stream, null));
        this.lib.startLagMonitoring({ topics: [...this.options.topics] }, LAG_INTERVAL_MS);
      },
      (err: unknown) => {
        this.opening = null;
        this.failed('join', err);
        // A late stream of an attempt given up on is closed when it comes; the next attempt makes another.
        opened.then(
          (late) => late.close().catch(() => {}), // its failure to close leaves nothing behind that the consumer's close() does not
          () => {}, // this attempt's failure was reported as the deadline above
        );
        if (!this.closed) setTimeout(() => this.open(), STREAM_RETRY_MS).unref();
      },
    );
  }

  /** The library could not rejoin the group (see connect()): a new stream joins it again. */
  private rejoinFailed(err: unknown): void {
    if (this.closed) return;
    const stream = this.stream;
    if (stream === null) return this.failed('rejoin', err);
    this.lost(stream, err);
    stream.close().catch(() => {}); // the stream is replaced whatever its close does; lost() ignores its 'close' now
  }

  /** The library destroyed or closed the stream (a fetch or offset error, a rejoin it could not do): make another. */
  private lost(stream: Stream, err: unknown): void {
    if (this.stream !== stream) return;
    this.stream = null;
    this.lib.stopLagMonitoring();
    const wake = this.wake;
    this.wake = null;
    wake?.();
    if (err !== null) this.failed('stream', err);
    if (!this.closed) setTimeout(() => this.open(), STREAM_RETRY_MS).unref();
  }

  private failed(what: string, err: unknown): void {
    const failure = platformaticFailure(err);
    metrics.kafkaConsumeErrors.inc();
    if (failure.failure === 'unavailable') this.health.down(failure.message);
    failureLog.warn(`${this.options.groupId}\0${what}\0${failure.failure}`, { group: this.options.groupId, client: this.options.clientId, err: failure.message }, `consume failed (${what}); trying again`);
  }

  consume(): Promise<ConsumedMessage[]> {
    const batch: ConsumedMessage[] = [];
    const stream = this.stream;
    if (stream === null) {
      // Kafka away or the group being joined: nothing to hand out now.
      return new Promise((resolve) => setTimeout(() => resolve(batch), this.waitMs).unref());
    }
    // Polled with a live stream: /readyz's "heard from" (a dead broker destroys the stream, and
    // failed() says why it is down).
    this.health.heard();
    this.drain(stream, batch);
    if (batch.length > 0) return Promise.resolve(batch);
    // Nothing buffered: wait for the first message (or waitMs), then take what is there.
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.wake === done) this.wake = null;
        if (this.stream === stream) this.drain(stream, batch);
        resolve(batch);
      };
      const timer = setTimeout(done, this.waitMs);
      this.wake = done;
    });
  }

  private drain(stream: Stream, batch: ConsumedMessage[]): void {
    while (batch.length < this.batchMax) {
      const m = stream.read() as Message<Buffer, Buffer, Buffer, Buffer> | null;
      if (m === null) break;
      // A tombstone (null value) is nothing the engine produces or reads (as native: filtered).
      if (m.value == null) continue;
      batch.push({ topic: m.topic, partition: m.partition, offset: Number(m.offset), key: m.key ?? null, value: m.value });
    }
  }

  commitBatch(messages: readonly ConsumedMessage[]): void {
    this.commits.add(messages);
  }

  settleCommits(timeoutMs: number): Promise<void> {
    return this.commits.settle(timeoutMs);
  }

  /**
   * consumer.commit(), not each message's commit(): the stream's commit path destroys the stream on a
   * rejoin error (messages-stream.js:890), and consumer.commit rejoins and retries by itself.
   */
  private commitClient(): CommitClient {
    return {
      // leaderEpoch -1: unknown (the broker then skips its fencing check).
      commit: (offsets, done) => this.lib.commit({ offsets: offsets.map(({ topic, partition, offset }) => ({ topic, partition, offset: BigInt(offset), leaderEpoch: -1 })) }, (err?: Error | null) => done(err ?? null)),
      failed: (err, partitions) => {
        metrics.kafkaCommitFailures.inc();
        const failure = platformaticFailure(err);
        failureLog.warn(`${this.options.groupId}\0commit\0${failure.failure}`, { group: this.options.groupId, partitions, err: failure.message }, 'offset commit failed; retrying with the next');
      },
      committed: () => this.health.heard(),
      isClosed: () => this.closed,
    };
  }

  async disconnect(): Promise<void> {
    const startedAt = Date.now();
    const left = await this.commits.settleForClose(5000);
    this.closed = true;
    this.lib.stopLagMonitoring();
    const stream = this.stream;
    this.stream = null;
    // Leaves the group (the library closes its streams first); bounded, Kafka may be away.
    if (stream !== null) await bounded(stream.close(), 5000, 'stream close').catch(() => {}); // the consumer's close below closes it too
    await bounded(this.lib.close(true), 10_000, 'consumer close').catch((err: unknown) => roleLog('kafka').debug({ group: this.options.groupId, err: errorText(err) }, 'consumer close failed'));
    this.unregisterHealth();
    for (const topic of this.options.topics) metrics.kafkaConsumerLag.remove({ group: this.options.groupId, topic });
    this.health.closed();
    logConsumerLeft(this.options.groupId, left, startedAt);
  }
}
