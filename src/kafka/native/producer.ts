/**
 * The hot-path producer: librdkafka's native producer without the promise layer, so one produce
 * costs one native call and one delivery report, never a promise per event.
 *
 * Reads: nothing. Writes: the topic given per message, to the partition given (partitioner.ts:
 * the records carry many devices and have no key), or keyed (key -> partition -> per-key order).
 * Guarantee: idempotent, acks=all; a delivery report with no error means the message is durable
 * on every in-sync replica. Reports for one partition arrive in produce order.
 */
import assert from 'node:assert/strict';
import KafkaJavascript from '@confluentinc/kafka-javascript';
import type { Config } from '../../config.js';
import { ErrorCode, StratusError } from '../../errors.js';
import { KafkaClientHealth, registerHealth } from '../../http/health.js';
import { metrics } from '../../http/metrics.js';
import { drainTally, errorText, roleLog } from '../../log.js';
import { librdkafkaEvents } from './client.js';
import type { DeliveryHandler, EngineProducer } from '../types.js';
import { WaitClock } from '../wait-clock.js';

const { Producer, CODES } = KafkaJavascript;

export class KafkaProducer implements EngineProducer {
  readonly kind = 'native';
  /** Messages produced whose delivery report has not come back yet. */
  inflight = 0;
  private readonly native: InstanceType<typeof Producer>;
  /** Produce times of the messages without a report, for load shedding (see WaitClock). */
  private readonly waits: WaitClock;
  /** Removes this producer from /readyz (health.ts); called once it is disconnected. */
  private readonly unregisterHealth: () => void;

  private constructor(
    native: InstanceType<typeof Producer>,
    queueMax: number,
    unregisterHealth: () => void,
    private readonly health: KafkaClientHealth,
    private readonly clientId: string,
  ) {
    this.native = native;
    this.waits = new WaitClock(queueMax);
    this.unregisterHealth = unregisterHealth;
  }

  /** How long the oldest message without a delivery report has waited, in ms; 0 when none waits. */
  oldestWaitMs(now: number = performance.now()): number {
    return this.waits.oldestWaitMs(now);
  }

  /**
   * `eventsOf`: how many events (or results) a message's opaque stands for, for the drain summary's
   * count; 1 when not given.
   */
  static async connect(config: Config, clientId: string, onDelivery: DeliveryHandler, eventsOf: (opaque: unknown) => number = () => 1): Promise<KafkaProducer> {
    const native = new Producer({
      'metadata.broker.list': config.kafka.brokers.join(','),
      'client.id': clientId,
      // Durable before acknowledged: every in-sync replica has it, and retries never duplicate or reorder.
      'enable.idempotence': true,
      acks: -1,
      // A message that failed for good must not leave a gap behind later ones of the same partition:
      // librdkafka raises a fatal error instead, and the gateway ends the affected streams.
      'enable.gapless.guarantee': true,
      'linger.ms': config.kafka.lingerMs,
      'batch.size': config.kafka.batchSizeMax,
      'queue.buffering.max.messages': config.kafka.producerQueueMax,
      'message.timeout.ms': config.kafka.deliveryTimeoutMs,
      'dr_cb': true,
      // librdkafka's statistics, every second: broker connection states for /readyz (how soon it
      // sees Kafka back after all brokers were down), and batch sizes, queue latency and broker rtt
      // for /metrics (their windows are this interval).
      'statistics.interval.ms': 1000,
      'log_level': config.logLevel === 'debug' ? 7 : 3,
    });
    // /readyz reads this from the events below; it says "connecting" until connect() succeeds.
    const health = new KafkaClientHealth(`Kafka producer ${clientId}`);
    const unregisterHealth = registerHealth(health);
    const producer = new KafkaProducer(native, config.kafka.producerQueueMax, unregisterHealth, health, clientId);
    native.on('delivery-report', (err, report) => {
      producer.inflight--;
      producer.waits.reported();
      if (!err && drainTally.startedAtMs !== null) drainTally.eventsFlushed += eventsOf(report.opaque);
      onDelivery(err ? new Error(`${err.message} (librdkafka code ${err.code})`) : null, report.opaque);
    });
    native.on('event.stats', (e: { message: string }) => {
      const stats = parseStats(e.message);
      if (stats === null) return;
      recordStats(stats);
      health.stats(stats);
    });
    // Connection errors are retried by librdkafka; they surface as failed delivery reports if they
    // last. /readyz notes all brokers down and fatal errors; each error and librdkafka log line is
    // logged too, at a bounded rate (librdkafka repeats a broker's failure on every reconnect).
    librdkafkaEvents(native, clientId, health);
    await new Promise<void>((resolve, reject) => {
      native.connect({ timeout: 10_000 }, (err) => (err ? reject(err) : resolve()));
    }).catch((err: unknown) => {
      unregisterHealth();
      throw new StratusError(ErrorCode.KAFKA_UNAVAILABLE, `producer could not connect to Kafka at ${config.kafka.brokers.join(',')} (${String(err)})`, { retryable: true, cause: err });
    });
    health.connected();
    // Delivery reports are polled on librdkafka's own thread and handed to the event loop.
    native.setPollInBackground(true);
    return producer;
  }

  /**
   * Queues one message: to `partition`, or (null) to the partition of `key`. Returns false,
   * producing nothing, when the producer's queue is full (kafka.producerQueueMax): the caller must
   * push back upstream.
   */
  produce(topic: string, partition: number | null, key: string | null, value: Buffer, opaque: unknown): boolean {
    try {
      this.native.produce(topic, partition, value, key, null, opaque);
    } catch (err) {
      if ((err as { code?: number }).code === CODES.ERRORS.ERR__QUEUE_FULL) return false;
      throw err;
    }
    // librdkafka counts a message out of kafka.producerQueueMax when its report leaves its thread,
    // before JavaScript sees the report: the clock's ring may have to grow a little past it.
    this.waits.produced(performance.now());
    this.inflight++;
    return true;
  }

  /** The topic's partition count, from the cluster's metadata. */
  partitionsOf(topic: string, timeoutMs = 10_000): Promise<number> {
    return new Promise((resolve, reject) => {
      this.native.getMetadata({ topic, timeout: timeoutMs }, (err, metadata) => {
        if (err) return reject(new StratusError(ErrorCode.KAFKA_UNAVAILABLE, `metadata of topic ${topic} unavailable (${err.message})`, { retryable: true, cause: err }));
        const t = metadata.topics.find((x) => x.name === topic);
        if (t === undefined || t.partitions.length === 0) return reject(new StratusError(ErrorCode.KAFKA_UNAVAILABLE, `topic ${topic} has no partitions in the cluster's metadata (does it exist?)`, { retryable: true }));
        resolve(t.partitions.length);
      });
    });
  }

  /** Waits until every queued message has its delivery report, or timeoutMs passes. */
  flush(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => this.native.flush(timeoutMs, (err) => (err ? reject(err) : resolve())));
  }

  /**
   * Waits for every queued message's delivery report (up to timeoutMs), then closes the client.
   * Logs one line: how many messages it waited for, how many still had no report, how long.
   */
  async disconnect(timeoutMs = 10_000): Promise<void> {
    const startedAt = Date.now();
    const waited = this.inflight;
    let flushErr: unknown = null;
    // A flush that times out (Kafka away) is not an error of the stop: the messages without a
    // report were never acknowledged to anyone, and the line below says how many there were.
    await this.flush(timeoutMs).catch((err: unknown) => (flushErr = err));
    // Reports still on their way to the event loop when flush() answered count as flushed: flush()
    // succeeds only once librdkafka has every report.
    const unflushed = flushErr === null ? 0 : Math.max(0, this.inflight);
    await new Promise<void>((resolve) => this.native.disconnect(timeoutMs, () => resolve()));
    this.unregisterHealth();
    this.health.closed();
    assert.ok(this.inflight >= 0);
    drainTally.eventsUnflushed += unflushed;
    const fields = { client: this.clientId, flushed: Math.max(0, waited - unflushed), unflushed, ms: Date.now() - startedAt };
    if (flushErr !== null) roleLog('kafka').warn({ ...fields, err: errorText(flushErr) }, 'producer flush incomplete, disconnected');
    else roleLog('kafka').info(fields, 'producer flushed and disconnected');
  }
}

interface Window { avg: number; p99: number }

/** librdkafka statistics JSON (STATISTICS.md): windows in microseconds (latencies) or bytes/messages. */
interface ProducerStats {
  brokers?: Record<string, { int_latency?: Window; rtt?: Window; nodeid?: number; state?: string }>;
  topics?: Record<string, { batchsize?: Window; batchcnt?: Window }>;
}

function parseStats(json: string): ProducerStats | null {
  try {
    return JSON.parse(json) as ProducerStats;
  } catch {
    // librdkafka writes this JSON itself; a sample it garbled is skipped, the next comes in a second.
    return null;
  }
}

function recordStats(stats: ProducerStats): void {
  const pick = (windows: (Window | undefined)[], field: 'avg' | 'p99') => {
    const v = windows.filter((w): w is Window => w !== undefined && w[field] > 0).map((w) => w[field]);
    return v.length === 0 ? 0 : Math.max(...v);
  };
  // Bootstrap and controller entries have nodeid -1 and no produce traffic.
  const brokers = Object.values(stats.brokers ?? {}).filter((b) => (b.nodeid ?? 0) >= 0);
  const topics = Object.values(stats.topics ?? {});
  for (const stat of ['avg', 'p99'] as const) {
    metrics.kafkaBatchBytes.set({ stat }, pick(topics.map((t) => t.batchsize), stat));
    metrics.kafkaBatchMessages.set({ stat }, pick(topics.map((t) => t.batchcnt), stat));
    metrics.kafkaQueueSeconds.set({ stat }, pick(brokers.map((b) => b.int_latency), stat) / 1e6);
    metrics.kafkaRttSeconds.set({ stat }, pick(brokers.map((b) => b.rtt), stat) / 1e6);
  }
}
