/**
 * Processor: events topic -> results topic.
 *
 * Reads the events topic as consumer group <prefix>processor, a batch at a time; runs each event's
 * processor (registry.ts), on a piscina pool when processor.threads > 0; produces the result keyed by device id (so a device's results keep their
 * order); commits the batch's offsets only after every result of the batch has its delivery report.
 *
 * Guarantee: at least once. A crash before the commit re-reads the batch and produces its results
 * again; the forwarder drops them by (device, seq) high-water mark, so a device still sees each
 * result once. (Kafka transactions would avoid the duplicate writes at the cost of a commit
 * round trip per batch; the dedupe is needed anyway for events a device resends.)
 */
import type { Config } from '../config.js';
import { KafkaBatchConsumer, type ConsumedMessage } from '../kafka/consumer.js';
import { KafkaProducer } from '../kafka/producer.js';
import { topology } from '../topology.js';
import { Piscina } from 'piscina';
import { metrics } from '../http/metrics.js';
import { compute } from './compute-worker.js';

export interface ProcessorStats {
  batches: number;
  events: number;
  results: number;
  /** Values that could not be decoded or named an unknown processor: skipped, counted. */
  skipped: number;
}

export interface RunningStage<S> {
  readonly stats: S;
  /** Finishes the batch in hand, commits it and disconnects. */
  stop(): Promise<void>;
}

interface Batch {
  pending: number;
  failed: boolean;
  done: () => void;
}

export async function startProcessor(config: Config, instanceId: string): Promise<RunningStage<ProcessorStats>> {
  const t = topology(config);
  const stats: ProcessorStats = { batches: 0, events: 0, results: 0, skipped: 0 };
  const producer = await KafkaProducer.connect(config, `${instanceId}-processor`, (err, opaque) => {
    const b = opaque as Batch;
    if (err) b.failed = true;
    if (--b.pending === 0) b.done();
  });
  const consumer = await KafkaBatchConsumer.connect(config, { groupId: t.groups.processor, topics: [t.topics.events], clientId: `${instanceId}-processor` });
  let running = true;
  const threads = config.processor.threads;
  // processor.threads > 0: processor compute runs on a piscina pool, a batch split into one chunk per
  // thread. Results are produced afterwards in the batch's order, so per-device order holds.
  const pool = threads === 0 ? null : new Piscina({
    filename: new URL('./compute-worker.js', import.meta.url).href,
    minThreads: threads,
    maxThreads: threads,
    // One batch in flight at a time, so at most `threads` chunks wait: a small queue is enough.
    maxQueue: threads * 2,
    idleTimeout: 60_000,
  });

  async function computeAll(values: Buffer[]): Promise<(Buffer | null)[]> {
    if (pool === null || values.length < threads * 4) return compute(values);
    const size = Math.ceil(values.length / threads);
    const chunks: Promise<(Buffer | null)[]>[] = [];
    for (let i = 0; i < values.length; i += size) chunks.push(pool.run({ values: values.slice(i, i + size) }));
    return (await Promise.all(chunks)).flat().map((b) => (b === null ? null : Buffer.from(b.buffer, b.byteOffset, b.byteLength)));
  }

  async function produceAll(messages: readonly ConsumedMessage[]): Promise<boolean> {
    const batch: Batch = { pending: 1, failed: false, done: () => {} };
    const finished = new Promise<void>((resolve) => (batch.done = resolve));
    const results = await computeAll(messages.map((m) => m.value));
    for (let i = 0; i < messages.length; i++) {
      const value = results[i];
      const key = messages[i]!.key;
      if (value === null || value === undefined || key === null) {
        // Undecodable, or a type no processor has (the gateway rejects those): skipped, counted.
        stats.skipped++;
        continue;
      }
      batch.pending++;
      // A full producer queue means Kafka is behind: wait for room rather than drop.
      while (!producer.produce(t.topics.results, key.toString('utf8'), value, batch)) await new Promise((r) => setTimeout(r, 5));
      stats.results++;
    }
    if (--batch.pending === 0) batch.done();
    await finished;
    return !batch.failed;
  }

  const loop = (async () => {
    while (running) {
      const messages = await consumer.consume();
      if (messages.length === 0) continue;
      stats.events += messages.length;
      metrics.processorBatch.observe(messages.length);
      // Results must be durable before the offsets move; a failed delivery is produced again
      // (the forwarder drops whatever turns out to be a duplicate).
      while (!(await produceAll(messages))) await new Promise((r) => setTimeout(r, 200));
      metrics.processorEvents.inc(messages.length);
      consumer.commitBatch(messages);
      stats.batches++;
    }
  })();

  return {
    stats,
    async stop() {
      running = false;
      await loop;
      await consumer.disconnect();
      await producer.disconnect();
      await pool?.destroy();
    },
  };
}
