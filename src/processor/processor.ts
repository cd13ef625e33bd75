/**
 * Processor: events topic -> results topic.
 *
 * Reads the events topic as consumer group <prefix>processor, a batch at a time; runs each event's
 * processor (registry.ts); produces the result keyed by device id (so a device's results keep their
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
import { decodeEvent } from '../wire/event-codec.js';
import { encodeResult } from '../wire/result-codec.js';
import { PROCESSORS } from './registry.js';

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

  async function produceAll(messages: readonly ConsumedMessage[]): Promise<boolean> {
    const batch: Batch = { pending: 1, failed: false, done: () => {} };
    const finished = new Promise<void>((resolve) => (batch.done = resolve));
    for (const m of messages) {
      let event;
      try {
        event = decodeEvent(m.value);
      } catch {
        stats.skipped++;
        continue;
      }
      const processor = PROCESSORS.get(event.type);
      if (processor === undefined || m.key === null) {
        stats.skipped++;
        continue;
      }
      const out = processor.run(event);
      const value = encodeResult({
        seq: event.seq,
        value: out.value,
        payload: out.payload,
        sentAtUs: event.sentAtUs,
        receivedAtUs: event.receivedAtUs,
        processedAtUs: Date.now() * 1000,
        type: event.type,
      });
      batch.pending++;
      // A full producer queue means Kafka is behind: wait for room rather than drop.
      while (!producer.produce(t.topics.results, m.key.toString('utf8'), value, batch)) await new Promise((r) => setTimeout(r, 5));
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
      // Results must be durable before the offsets move; a failed delivery is produced again
      // (the forwarder drops whatever turns out to be a duplicate).
      while (!(await produceAll(messages))) await new Promise((r) => setTimeout(r, 200));
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
    },
  };
}
