/**
 * The hot-path producer on @platformatic/kafka (pure TypeScript): a queue per topic-partition in
 * front of the library's send(), which has no linger, no queue limit, no delivery timeout and one
 * result per send rather than per message.
 *
 * Reads: nothing. Writes: the topic given per message, to the partition given, or to the partition
 * of its key (partitioner.ts: murmur2, as the Java client), or round-robin when it has neither.
 * Guarantee (types.ts EngineProducer): idempotent, acks=all; reports per partition in produce
 * order; a message that failed for good fails everything queued behind it in its partition.
 *
 * One lane per topic-partition:
 *
 *   produce() -> [ queued: m5 m6 m7 ... ]   collecting, up to batchSizeMax bytes / BATCH_MESSAGES_MAX
 *                [ inflight: m1..m4     ]   at most ONE send per partition, whatever the library allows
 *
 * Why one send per partition: @platformatic/kafka 1.x read a partition's sequence number when a
 * send was built and advanced it when its answer came, so two sends in flight to one partition
 * carried the same sequence and the broker dropped the second as a duplicate while acknowledging
 * it (platformatic/kafka#326; 10,000 acked, 9,937 in the log). 2.12.1 reserves the sequence at send
 * time (producer.js:699-705), but this file does not rely on it: with one send in flight per
 * partition a retry or a producer-id reset (producer.js:736-740, 805-840) cannot reorder a partition
 * either. The library itself keeps one request in flight per broker connection when idempotent
 * (producer.js:36-38 sets maxInflights = 1), so concurrency across partitions is its queue's.
 */
import assert from 'node:assert/strict';
import { Producer, type MessageToProduce, type ProduceResult } from '@platformatic/kafka';
import type { Config } from '../../config.js';
import { ErrorCode, StratusError } from '../../errors.js';
import { KafkaClientHealth, registerHealth } from '../../http/health.js';
import { metrics } from '../../http/metrics.js';
import { drainTally, errorText, RateLimitedLog, roleLog } from '../../log.js';
import { partitionOf } from '../partitioner.js';
import { KafkaClientError, type DeliveryHandler, type EngineProducer } from '../types.js';
import { WaitClock } from '../wait-clock.js';
import { bounded, platformaticFailure } from './errors.js';
import { baseOptions } from './options.js';

/** Messages in one send (one record batch per partition); bytes are capped by kafka.batchSizeMax. */
const BATCH_MESSAGES_MAX = 10_000;
/** A record's bytes beyond its key and value in a batch (length, attributes, deltas: varints), roughly. */
const RECORD_OVERHEAD_BYTES = 24;
/** How often the deadline of waiting messages is checked, at most; a 20th of kafka.deliveryTimeoutMs, at least. */
const SWEEP_MS_MAX = 1000;
/** Batch statistics for /metrics are summarised over this window (native: librdkafka's statistics.interval.ms). */
const STATS_WINDOW_MS = 1000;
/** A producer without an answered send for this long asks the broker for metadata (health). */
const PROBE_IDLE_MS = 2000;
/** Samples of each statistic kept per window; beyond it a window's later sends are not sampled. */
const STATS_SAMPLES_MAX = 1024;

/** Send failures, one line per client and failure kind at most 5 a minute (a broker down fails every partition's sends). */
const failureLog = new RateLimitedLog(roleLog('kafka'), { linesMax: 5, intervalMs: 60_000 });

type Message = MessageToProduce<Buffer, Buffer, Buffer, Buffer>;

/** One send in flight. */
interface Batch {
  readonly count: number;
  readonly opaques: unknown[];
  readonly bytes: number;
  /** performance.now() of its oldest message's produce() (the deadline counts from there). */
  readonly oldestAt: number;
  readonly sentAt: number;
  /** Its messages were failed by the deadline or by disconnect(); the library's late answer is ignored. */
  abandoned: boolean;
}

/** One topic-partition. Invariant: queued.length > 0 && inflight === null implies a send is scheduled (timer !== null). */
interface Lane {
  readonly topic: string;
  readonly partition: number;
  queued: Message[];
  opaques: unknown[];
  /** performance.now() of each queued message's produce(). */
  times: number[];
  bytes: number;
  inflight: Batch | null;
  timer: NodeJS.Timeout | null;
}

/** A message waiting for its topic's partition count (the topic's first messages). */
interface Pending {
  partition: number | null;
  key: string | null;
  value: Buffer;
  opaque: unknown;
  at: number;
}

interface Topic {
  lanes: (Lane | undefined)[];
  /** Partition count from the metadata; null until known. */
  partitions: number | null;
  pending: Pending[];
  fetching: boolean;
  /** Round-robin position for messages with neither a partition nor a key. */
  next: number;
}

class Samples {
  readonly bytes: number[] = [];
  readonly messages: number[] = [];
  readonly queueSeconds: number[] = [];
  readonly rttSeconds: number[] = [];

  add(batch: Batch, now: number): void {
    if (this.bytes.length >= STATS_SAMPLES_MAX) return;
    this.bytes.push(batch.bytes);
    this.messages.push(batch.count);
    this.queueSeconds.push((batch.sentAt - batch.oldestAt) / 1000);
    this.rttSeconds.push((now - batch.sentAt) / 1000);
  }

  /** Sets the gauges from this window and starts the next; a window without sends leaves them to the other producers. */
  flush(): void {
    if (this.bytes.length === 0) return;
    const set = (gauge: typeof metrics.kafkaBatchBytes, values: number[]) => {
      values.sort((a, b) => a - b);
      gauge.set({ stat: 'avg' }, values.reduce((s, v) => s + v, 0) / values.length);
      gauge.set({ stat: 'p99' }, values[Math.min(values.length - 1, Math.floor(values.length * 0.99))]!);
      values.length = 0;
    };
    set(metrics.kafkaBatchBytes, this.bytes);
    set(metrics.kafkaBatchMessages, this.messages);
    set(metrics.kafkaQueueSeconds, this.queueSeconds);
    set(metrics.kafkaRttSeconds, this.rttSeconds);
  }
}

export class PlatformaticProducer implements EngineProducer {
  readonly kind = 'platformatic';
  /** Messages produced whose delivery report has not come back yet (queued, pending or in flight). */
  inflight = 0;
  private readonly topics = new Map<string, Topic>();
  private readonly waits: WaitClock;
  private readonly samples = new Samples();
  private readonly sweepTimer: NodeJS.Timeout;
  private readonly statsTimer: NodeJS.Timeout;
  /** flush() callers waiting for inflight to reach 0. */
  private drained: (() => void)[] = [];
  private closing = false;
  /** Date.now() of the last send or probe a broker answered. */
  private answeredAt = 0;
  private probing = false;
  private readonly brokers: string;
  private readonly queueMax: number;
  private readonly batchBytesMax: number;
  private readonly lingerMs: number;
  private readonly deadlineMs: number;

  private constructor(
    private readonly lib: Producer<Buffer, Buffer, Buffer, Buffer>,
    config: Config,
    private readonly clientId: string,
    private readonly onDelivery: DeliveryHandler,
    private readonly eventsOf: (opaque: unknown) => number,
    private readonly health: KafkaClientHealth,
    private readonly unregisterHealth: () => void,
  ) {
    this.queueMax = config.kafka.producerQueueMax;
    this.batchBytesMax = config.kafka.batchSizeMax;
    this.lingerMs = config.kafka.lingerMs;
    this.deadlineMs = config.kafka.deliveryTimeoutMs;
    this.brokers = config.kafka.brokers.join(',');
    this.waits = new WaitClock(this.queueMax);
    this.sweepTimer = setInterval(() => this.sweep(performance.now()), Math.max(10, Math.min(SWEEP_MS_MAX, Math.floor(this.deadlineMs / 20))));
    this.sweepTimer.unref();
    this.statsTimer = setInterval(() => {
      this.samples.flush();
      this.probe(Date.now());
    }, STATS_WINDOW_MS);
    this.statsTimer.unref();
  }

  static async connect(config: Config, clientId: string, onDelivery: DeliveryHandler, eventsOf: (opaque: unknown) => number = () => 1): Promise<PlatformaticProducer> {
    const lib = new Producer<Buffer, Buffer, Buffer, Buffer>({
      // Retries (with the backoff of options.ts) cover about kafka.deliveryTimeoutMs; the deadline
      // below is what bounds a message, the retries only make a send end at all (an idempotent
      // producer with retries unset retries forever: producer.js:39-41).
      ...baseOptions(config, clientId, config.kafka.deliveryTimeoutMs),
      // Durable before acknowledged, deduplicated on retry: forces acks=all and maxInflights=1
      // per connection (producer.js:36-41).
      idempotent: true,
      // Every message carries its partition (produce() below): the library's partitioner never runs.
      // After a metadata error on a moved leader it sends again once to the new one (default true).
      repeatOnStaleMetadata: true,
    });
    const health = new KafkaClientHealth(`Kafka producer ${clientId}`);
    const unregisterHealth = registerHealth(health);
    const producer = new PlatformaticProducer(lib, config, clientId, onDelivery, eventsOf, health, unregisterHealth);
    // Building the client sends nothing; a metadata request tells /readyz whether a broker answers.
    // Not awaited: like the native producer, produce() queues while Kafka is away, and each message
    // fails on its own deadline (kafka.deliveryTimeoutMs) if it stays away.
    producer.probe(Date.now());
    return producer;
  }

  /**
   * /readyz's view of the broker when no send has answered lately (an idle producer): one metadata
   * request at a time, at most one a second (native: librdkafka's statistics every second).
   */
  private probe(now: number): void {
    if (this.probing || this.closing || now - this.answeredAt < PROBE_IDLE_MS) return;
    this.probing = true;
    bounded(this.lib.metadata({ topics: [], forceUpdate: true }), 10_000, 'metadata').then(
      () => {
        this.probing = false;
        this.answeredAt = Date.now();
        this.health.heard();
      },
      (err: unknown) => {
        this.probing = false;
        this.health.down(`no broker of ${this.brokers} answered (${platformaticFailure(err).message})`);
      },
    );
  }

  oldestWaitMs(now: number = performance.now()): number {
    return this.waits.oldestWaitMs(now);
  }

  produce(topic: string, partition: number | null, key: string | null, value: Buffer, opaque: unknown): boolean {
    assert.ok(!this.closing, 'produce() after disconnect()');
    if (this.inflight >= this.queueMax) return false;
    const now = performance.now();
    this.inflight++;
    this.waits.produced(now);
    const t = this.topic(topic);
    // Behind pending messages of the topic, a message waits with them: produce order is kept.
    if (t.partitions !== null && t.pending.length === 0) this.enqueue(t, topic, this.partitionFor(t, partition, key), key, value, opaque, now);
    else {
      // The topic's first messages wait for its metadata, so that no send is ever in flight to a
      // topic the cluster does not have: such a send is the library retrying metadata, never a
      // Produce, and failing its messages at the deadline must not mark the producer fatal.
      t.pending.push({ partition, key, value, opaque, at: now });
      this.fetchPartitions(topic, t);
    }
    return true;
  }

  partitionsOf(topic: string, timeoutMs = 10_000): Promise<number> {
    return bounded(this.lib.metadata({ topics: [topic], forceUpdate: true }), timeoutMs, `metadata of topic ${topic}`).then(
      (meta) => {
        const count = meta.topics.get(topic)?.partitionsCount ?? 0;
        if (count === 0) throw new StratusError(ErrorCode.KAFKA_UNAVAILABLE, `topic ${topic} has no partitions in the cluster's metadata (does it exist?)`, { retryable: true });
        this.health.heard();
        this.topic(topic).partitions = count;
        return count;
      },
      (err: unknown) => {
        const failure = platformaticFailure(err);
        throw new StratusError(ErrorCode.KAFKA_UNAVAILABLE, `metadata of topic ${topic} unavailable (${failure.message})`, { retryable: true, cause: failure });
      },
    );
  }

  async flush(timeoutMs: number): Promise<void> {
    // Lingering batches go now: nobody waits for more messages to fill them.
    for (const t of this.topics.values()) for (const lane of t.lanes) if (lane !== undefined && lane.timer !== null && lane.inflight === null) this.send(lane);
    if (this.inflight === 0) return;
    let done!: () => void;
    const drained = new Promise<void>((resolve) => (done = resolve));
    this.drained.push(done);
    try {
      await bounded(drained, timeoutMs, 'flush');
    } catch {
      this.drained = this.drained.filter((d) => d !== done);
      throw new StratusError(ErrorCode.KAFKA_UNAVAILABLE, `producer flush: ${this.inflight} message(s) without a delivery report after ${timeoutMs} ms`, { retryable: true });
    }
  }

  async disconnect(timeoutMs = 10_000): Promise<void> {
    const startedAt = Date.now();
    const waited = this.inflight;
    let flushErr: unknown = null;
    // A flush that times out (Kafka away) is not an error of the stop: the messages without a
    // report were never acknowledged to anyone, and the line below says how many there were.
    await this.flush(timeoutMs).catch((err: unknown) => (flushErr = err));
    this.closing = true;
    const unflushed = this.inflight;
    // Every message still waiting gets its one report, as failed: the library cannot cancel a send,
    // and its late answer is ignored (abandoned).
    const closed = new KafkaClientError('unavailable', `producer ${this.clientId} disconnected before Kafka acknowledged the message`, 'platformatic');
    for (const t of this.topics.values()) {
      this.failPending(t, closed);
      for (const lane of t.lanes) if (lane !== undefined) this.failLane(lane, closed);
    }
    clearInterval(this.sweepTimer);
    clearInterval(this.statsTimer);
    this.samples.flush();
    // force: a send still in flight (Kafka away) must not hold the close; bounded for a close that hangs.
    await bounded(this.lib.close(true), 5000, 'producer close').catch((err: unknown) => roleLog('kafka').debug({ client: this.clientId, err: errorText(err) }, 'producer close failed'));
    this.unregisterHealth();
    this.health.closed();
    assert.equal(this.inflight, 0);
    drainTally.eventsUnflushed += unflushed;
    const fields = { client: this.clientId, flushed: Math.max(0, waited - unflushed), unflushed, ms: Date.now() - startedAt };
    if (flushErr !== null) roleLog('kafka').warn({ ...fields, err: errorText(flushErr) }, 'producer flush incomplete, disconnected');
    else roleLog('kafka').info(fields, 'producer flushed and disconnected');
  }

  private topic(name: string): Topic {
    let t = this.topics.get(name);
    if (t === undefined) {
      t = { lanes: [], partitions: null, pending: [], fetching: false, next: 0 };
      this.topics.set(name, t);
    }
    return t;
  }

  /**
   * The partition given (reduced modulo the count, as the library itself does at producer.js:685:
   * two lanes must never feed one partition, or it would have two sends in flight), else the key's,
   * else the next in turn.
   */
  private partitionFor(t: Topic, partition: number | null, key: string | null): number {
    const partitions = t.partitions!;
    if (partition !== null) return partition % partitions;
    if (key !== null) return partitionOf(key, partitions);
    t.next = (t.next + 1) % partitions;
    return t.next;
  }

  /** The topic's partition count for its pending messages; routes them once known, fails them if not. */
  private fetchPartitions(name: string, t: Topic): void {
    if (t.fetching) return;
    t.fetching = true;
    bounded(this.lib.metadata({ topics: [name] }), this.deadlineMs, `metadata of topic ${name}`).then(
      (meta) => {
        t.fetching = false;
        const count = meta.topics.get(name)?.partitionsCount ?? 0;
        if (count === 0) return this.failPending(t, new KafkaClientError('unknown-topic', `topic ${name} has no partitions in the cluster's metadata`, 'platformatic'));
        this.health.heard();
        t.partitions = count;
        const pending = t.pending;
        t.pending = [];
        for (const p of pending) this.enqueue(t, name, this.partitionFor(t, p.partition, p.key), p.key, p.value, p.opaque, p.at);
      },
      (err: unknown) => {
        t.fetching = false;
        this.failPending(t, platformaticFailure(err, `metadata of topic ${name}`));
      },
    );
  }

  private enqueue(t: Topic, topic: string, partition: number, key: string | null, value: Buffer, opaque: unknown, at: number): void {
    let lane = t.lanes[partition];
    if (lane === undefined) {
      lane = { topic, partition, queued: [], opaques: [], times: [], bytes: 0, inflight: null, timer: null };
      t.lanes[partition] = lane;
    }
    const keyBytes = key === null ? undefined : Buffer.from(key);
    lane.queued.push({ topic, partition, key: keyBytes, value });
    lane.opaques.push(opaque);
    lane.times.push(at);
    lane.bytes += value.length + (keyBytes?.length ?? 0) + RECORD_OVERHEAD_BYTES;
    if (lane.inflight !== null) return; // sent when the one in flight answers
    if (lane.bytes >= this.batchBytesMax || lane.queued.length >= BATCH_MESSAGES_MAX) this.send(lane);
    else if (lane.timer === null) {
      // linger: the first message of an idle partition waits kafka.lingerMs for company.
      lane.timer = setTimeout(() => this.send(lane), this.lingerMs);
    }
  }

  /** Sends the lane's queue head (up to the caps); the rest keeps collecting behind it. */
  private send(lane: Lane): void {
    if (lane.timer !== null) {
      clearTimeout(lane.timer);
      lane.timer = null;
    }
    if (lane.inflight !== null || lane.queued.length === 0) return;
    let n = 0;
    let bytes = 0;
    while (n < lane.queued.length && n < BATCH_MESSAGES_MAX) {
      const m = lane.queued[n]!;
      const size = m.value!.length + (m.key?.length ?? 0) + RECORD_OVERHEAD_BYTES;
      if (n > 0 && bytes + size > this.batchBytesMax) break;
      bytes += size;
      n++;
    }
    const messages = n === lane.queued.length ? lane.queued : lane.queued.slice(0, n);
    const batch: Batch = { count: n, opaques: n === lane.opaques.length ? lane.opaques : lane.opaques.slice(0, n), bytes, oldestAt: lane.times[0]!, sentAt: performance.now(), abandoned: false };
    if (n === lane.queued.length) {
      lane.queued = [];
      lane.opaques = [];
      lane.times = [];
    } else {
      lane.queued.splice(0, n);
      lane.opaques.splice(0, n);
      lane.times.splice(0, n);
    }
    lane.bytes -= bytes;
    lane.inflight = batch;
    // The callback form: no promise per send. acks is forced to ALL by idempotent.
    this.lib.send({ messages }, (err: Error | null, _result?: ProduceResult) => this.answered(lane, batch, err));
  }

  private answered(lane: Lane, batch: Batch, err: Error | null): void {
    lane.inflight = null;
    if (batch.abandoned) {
      // Its messages were reported failed by the deadline (or disconnect); a late success means
      // they may be in the log after all, which at-least-once allows (the device resends, the
      // processor deduplicates). Nothing queued behind it was sent meanwhile.
      if (err === null) roleLog('kafka').warn({ client: this.clientId, topic: lane.topic, partition: lane.partition, messages: batch.count }, 'a send given up on at its deadline was acknowledged late (its messages were reported failed; they may be duplicated on resend)');
    } else if (err !== null) {
      const failure = platformaticFailure(err, `produce to ${lane.topic}[${lane.partition}]`);
      failureLog.warn(`${this.clientId}\0${failure.failure}`, { client: this.clientId, topic: lane.topic, partition: lane.partition, messages: batch.count, queuedBehind: lane.queued.length, err: failure.message }, 'produce failed; its messages and those queued behind them in the partition fail');
      if (failure.failure === 'unavailable') this.health.down(failure.message);
      this.reportBatch(batch, failure);
      // Gapless: nothing queued behind a failed message of this partition may be acknowledged.
      this.failQueued(lane, failure);
    } else {
      const now = performance.now();
      this.answeredAt = Date.now();
      this.health.heard();
      this.samples.add(batch, now);
      this.reportBatch(batch, null);
    }
    if (this.closing) return;
    // What collected meanwhile goes at once: it has waited a round trip already.
    if (lane.queued.length > 0) this.send(lane);
  }

  /** One report per message of the batch, in produce order. */
  private reportBatch(batch: Batch, err: Error | null): void {
    batch.abandoned = true; // reported: never again
    const counting = err === null && drainTally.startedAtMs !== null;
    for (let i = 0; i < batch.count; i++) {
      this.inflight--;
      this.waits.reported();
      if (counting) drainTally.eventsFlushed += this.eventsOf(batch.opaques[i]);
      this.onDelivery(err, batch.opaques[i]);
    }
    this.maybeDrained();
  }

  private failQueued(lane: Lane, err: Error): void {
    if (lane.timer !== null) {
      clearTimeout(lane.timer);
      lane.timer = null;
    }
    const opaques = lane.opaques;
    lane.queued = [];
    lane.opaques = [];
    lane.times = [];
    lane.bytes = 0;
    for (const opaque of opaques) {
      this.inflight--;
      this.waits.reported();
      this.onDelivery(err, opaque);
    }
    this.maybeDrained();
  }

  /** Fails the send in flight (the library's answer will be ignored) and everything queued behind it. */
  private failLane(lane: Lane, err: Error): void {
    if (lane.inflight !== null && !lane.inflight.abandoned) this.reportBatch(lane.inflight, err);
    this.failQueued(lane, err);
  }

  private failPending(t: Topic, err: Error): void {
    const pending = t.pending;
    t.pending = [];
    for (const p of pending) {
      this.inflight--;
      this.waits.reported();
      this.onDelivery(err, p.opaque);
    }
    this.maybeDrained();
  }

  private maybeDrained(): void {
    if (this.inflight !== 0 || this.drained.length === 0) return;
    const drained = this.drained;
    this.drained = [];
    for (const done of drained) done();
  }

  /**
   * kafka.deliveryTimeoutMs, counted from produce() (librdkafka's message.timeout.ms): a partition
   * whose oldest message has waited that long fails it and everything behind it. When that message
   * is in a send the library is still retrying, the send cannot be cancelled and may yet land: the
   * producer can no longer promise the partition's order without a gap, so /readyz reports it fatal
   * and the process is to be restarted (the native producer's enable.gapless.guarantee does the same).
   */
  private sweep(now: number): void {
    for (const [name, t] of this.topics) {
      if (t.pending.length > 0 && now - t.pending[0]!.at >= this.deadlineMs) this.failPending(t, new KafkaClientError('unavailable', `no metadata for topic ${name} within kafka.deliveryTimeoutMs (${this.deadlineMs} ms)`, 'platformatic'));
      for (const lane of t.lanes) {
        if (lane === undefined) continue;
        const live = lane.inflight !== null && !lane.inflight.abandoned ? lane.inflight : null;
        const oldest = live !== null ? live.oldestAt : lane.times[0];
        if (oldest === undefined || now - oldest < this.deadlineMs) continue;
        const err = new KafkaClientError('unavailable', `produce to ${lane.topic}[${lane.partition}]: not acknowledged within kafka.deliveryTimeoutMs (${this.deadlineMs} ms)`, 'platformatic');
        if (live !== null) {
          this.health.fatalError(`a send to ${lane.topic}[${lane.partition}] outlived kafka.deliveryTimeoutMs and cannot be cancelled`);
          failureLog.warn(`${this.clientId}\0deadline`, { client: this.clientId, topic: lane.topic, partition: lane.partition, messages: live.count, queuedBehind: lane.queued.length }, 'produce deadline passed with the send in flight; its messages and those behind them fail');
        }
        this.failLane(lane, err);
      }
    }
  }
}
