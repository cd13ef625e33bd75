/**
 * Processor: events topic -> results topic.
 *
 * Reads the events topic as consumer group <prefix>processor, a batch at a time (each record holds
 * the events of many devices: proto/stratus/v1/kafka.proto); runs each event's processor
 * (registry.ts), on a piscina pool when processor.threads > 0; produces the batch's results as one
 * record per results partition (a device's partition from partitioner.ts, so a device's results
 * keep their order), at most kafka.recordEventsMax results and kafka.recordBytesMax bytes each;
 * commits the batch's offsets only after every record of the batch has its delivery report, in
 * batch order. Pipelined: while a batch's records wait for their reports, the next batches (up to
 * processor.batchesInflightMax in all) are consumed, computed and produced.
 *
 * Guarantee: at least once. A crash before the commit re-reads the batch and produces its results
 * again; the forwarder drops them by (device, seq) high-water mark, so a device still sees each
 * result once. (Kafka transactions would avoid the duplicate writes at the cost of a commit
 * round trip per batch; the dedupe is needed anyway for events a device resends.)
 */
import type { Config } from '../config.js';
import { kafkaClients } from '../kafka/factory.js';
import type { ConsumedMessage } from '../kafka/types.js';
import { topology } from '../topology.js';
import { Piscina } from 'piscina';
import { metrics } from '../http/metrics.js';
import { compute, type ComputedResult, type ComputeOutput } from './compute-worker.js';
import { partitionOf } from '../kafka/partitioner.js';
import { encodeResultRecord } from '../wire/result-record.js';

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
  /** Records without a delivery report, plus one while the batch may still add records. */
  pending: number;
  failed: boolean;
  done: () => void;
}

interface RecordOpaque {
  batch: Batch;
  results: number;
}

export async function startProcessor(config: Config, instanceId: string): Promise<RunningStage<ProcessorStats>> {
  const t = topology(config);
  const stats: ProcessorStats = { batches: 0, events: 0, results: 0, skipped: 0 };
  const kafka = await kafkaClients(config);
  const producer = await kafka.producer(config, `${instanceId}-processor`, (err, opaque) => {
    const { batch: b } = opaque as RecordOpaque;
    if (err) b.failed = true;
    if (--b.pending === 0) b.done();
  }, (opaque) => (opaque as RecordOpaque).results);
  const resultsPartitions = await producer.partitionsOf(t.topics.results).catch(async (err: unknown) => {
    await producer.disconnect(1000);
    throw err;
  });
  const consumer = await kafka.batchConsumer(config, { groupId: t.groups.processor, topics: [t.topics.events], clientId: `${instanceId}-processor` });
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

  async function computeAll(messages: readonly ConsumedMessage[]): Promise<ComputeOutput> {
    const records = messages.map((m) => ({ value: m.value, key: m.key }));
    if (pool === null || records.length < threads * 4) return compute(records);
    const size = Math.ceil(records.length / threads);
    const chunks: Promise<ComputeOutput>[] = [];
    for (let i = 0; i < records.length; i += size) chunks.push(pool.run({ records: records.slice(i, i + size) }));
    const outs = await Promise.all(chunks);
    return { results: outs.flatMap((o) => o.results), skipped: outs.reduce((n, o) => n + o.skipped, 0) };
  }

  /** The batch's results, one record per partition (split at the record limits), in order. */
  function* recordsOf(results: readonly ComputedResult[]): Generator<{ partition: number; results: Buffer[] }> {
    const open = new Map<number, { results: Buffer[]; bytes: number }>();
    for (const r of results) {
      const partition = partitionOf(r.deviceId, resultsPartitions);
      const bytes = Buffer.isBuffer(r.bytes) ? r.bytes : Buffer.from(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength);
      let rec = open.get(partition);
      if (rec !== undefined && (rec.results.length >= config.kafka.recordEventsMax || rec.bytes + bytes.length > config.kafka.recordBytesMax)) {
        yield { partition, results: rec.results };
        rec = undefined;
      }
      if (rec === undefined) {
        rec = { results: [], bytes: 0 };
        open.set(partition, rec);
      }
      rec.results.push(bytes);
      rec.bytes += bytes.length + 6;
    }
    for (const [partition, rec] of open) yield { partition, results: rec.results };
  }

  interface Counts {
    events: number;
    results: number;
    skipped: number;
  }
  interface InFlight {
    messages: readonly ConsumedMessage[];
    counts: Counts;
    /** true once every record has a report without error; false when one failed. */
    durable: Promise<boolean>;
    settled: boolean;
  }

  /** Computes the batch and queues its records, in order; `durable` settles with their reports. */
  async function produceBatch(messages: readonly ConsumedMessage[]): Promise<InFlight> {
    const batch: Batch = { pending: 1, failed: false, done: () => {} };
    const finished = new Promise<void>((resolve) => (batch.done = resolve));
    const { results, skipped } = await computeAll(messages);
    for (const rec of recordsOf(results)) {
      batch.pending++;
      const value = encodeResultRecord(rec.results);
      const opaque: RecordOpaque = { batch, results: rec.results.length };
      metrics.kafkaRecordEvents.observe({ topic: 'results' }, rec.results.length);
      // A full producer queue means Kafka is behind: wait for room rather than drop.
      while (!producer.produce(t.topics.results, rec.partition, null, value, opaque)) await new Promise((r) => setTimeout(r, 5));
    }
    if (--batch.pending === 0) batch.done();
    const f: InFlight = { messages, counts: { events: results.length + skipped, results: results.length, skipped }, durable: finished.then(() => !batch.failed), settled: false };
    void f.durable.then(() => (f.settled = true));
    return f;
  }

  /** A batch whose results are durable: counted, and its offsets committed (in batch order). */
  function finish(b: InFlight): void {
    stats.events += b.counts.events;
    stats.results += b.counts.results;
    // Undecodable records, or a type no processor has (the gateway rejects those): skipped, counted.
    stats.skipped += b.counts.skipped;
    metrics.processorBatch.observe(b.counts.events);
    metrics.processorEvents.inc(b.counts.events);
    consumer.commitBatch(b.messages);
    stats.batches++;
  }

  /**
   * Batches produced and waiting for their reports, oldest first: the next batch is consumed and
   * produced meanwhile (processor.batchesInflightMax), and offsets are committed in batch order.
   */
  const inflight: InFlight[] = [];

  /** Waits for the oldest batch in flight and finishes it. */
  async function settleOldest(): Promise<void> {
    const head = inflight[0]!;
    if (await head.durable) {
      inflight.shift();
      finish(head);
      return;
    }
    // A delivery failed. With idempotence and the gapless guarantee nothing produced after it to
    // its partition landed, so every batch in flight is produced again, in order, each waited for
    // (the forwarder drops what turns out to be a duplicate), before anything new is consumed.
    const again = inflight.splice(0);
    await Promise.all(again.map((b) => b.durable));
    for (const b of again) {
      for (;;) {
        await new Promise((r) => setTimeout(r, 200));
        // Stopping: what is not durable stays uncommitted and is read again by the next owner.
        if (!running) return;
        const retry = await produceBatch(b.messages);
        if (await retry.durable) {
          finish(retry);
          break;
        }
      }
    }
  }

  const loop = (async () => {
    while (running) {
      const messages = await consumer.consume();
      if (messages.length > 0) inflight.push(await produceBatch(messages));
      // Results must be durable before the offsets move. Waits when the pipeline is full, or when
      // there was nothing to read (then everything in flight settles before the next poll).
      while (inflight.length > 0 && (inflight.length >= config.processor.batchesInflightMax || inflight[0]!.settled || messages.length === 0)) await settleOldest();
    }
    while (inflight.length > 0) await settleOldest();
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
