/**
 * Scenario 4: the events topic as the gateway fills it (bench/e2e/producer-load:
 * src/kafka/native/producer.ts with the gateway's settings, EventRecords of EVENTS_PER_RECORD events of
 * one partition's devices, encoded per record) against Kafka's own
 * org.apache.kafka.tools.ProducerPerformance from the same Maven Central jars the local broker runs
 * on, sending each event as a record of its own: the same events, acks=all, idempotence, linger,
 * batch size and no compression, each to a fresh topic with the same partitions. Ratio of events/s,
 * target >= 0.8. The producer with one event per record (the earlier layout's count) is measured
 * too.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeProfile, readProfileDir, type ProfileSummary } from '../cpu-profile.js';
import { promisify } from 'node:util';
import { deleteTopics, ensureTopics } from '../../src/kafka/admin.js';
import { KAFKA_LIBS } from '../../src/stack/paths.js';
import { encodeEventRecord } from '../../src/wire/event-record.js';
import { dist, runJson } from '../child.js';
import { ratio, type Scenario } from '../scenario.js';

interface ProducerLoadJson {
  recordsPerS: number;
  eventsPerS: number;
  mbPerS: number;
  failed: number;
  latencyMs: { avg: number; p50: number; p95: number; p99: number; p999: number; max: number };
}

const PARTITIONS = 12;
/**
 * Events per record on the Stratus side: about what the gateway writes per partition per turn under
 * load (stratus_kafka_record_events: 6.2 on average at 6,000 events/s from 1,000 devices over 12
 * partitions, more with more devices or a busier turn).
 */
const EVENTS_PER_RECORD = 10;

export const producer: Scenario = {
  id: 'producer',
  title: 'Events topic vs ProducerPerformance',
  async run(ctx) {
    const records = ctx.quick ? 100_000 : 1_000_000;
    // The size of one event in an events-topic record as the gateway writes it: an `sq` event with
    // the load generator's default 32-byte payload and a device id of 13 characters.
    const recordBytes = encodeEventRecord([{ deviceId: 'device-100000', seq: 1_000_000, value: 1, sentAtUs: 1_790_000_000_000_000, receivedAtUs: 1_790_000_000_000_500, type: 'sq', payload: Buffer.alloc(32) }]).length;
    const k = ctx.config.kafka;
    const [single] = await runJson<ProducerLoadJson>(process.execPath, [dist('bench', 'e2e', 'producer-load.js'), '--records', String(records), '--record-bytes', String(recordBytes), '--partitions', String(PARTITIONS)], { timeoutMs: 300_000 });
    if (single!.failed > 0) throw new Error(`the Stratus producer had ${single!.failed} failed deliveries`);
    ctx.log(`  Stratus producer, one event per record: ${single!.recordsPerS} records/s`);
    const profileDir = mkdtempSync(join(tmpdir(), 'stratus-bench-prof-'));
    let profile: ProfileSummary | undefined;
    const [ours] = await runJson<ProducerLoadJson>(process.execPath, ['--cpu-prof', '--cpu-prof-dir', profileDir, dist('bench', 'e2e', 'producer-load.js'), '--records', String(records / EVENTS_PER_RECORD), '--events-per-record', String(EVENTS_PER_RECORD), '--partitions', String(PARTITIONS)], { timeoutMs: 300_000 });
    try {
      profile = readProfileDir(profileDir);
    } catch (err) {
      ctx.log(`  no CPU profile of the producer: ${(err as Error).message}`);
    }
    rmSync(profileDir, { recursive: true, force: true });
    if (ours!.failed > 0) throw new Error(`the Stratus producer had ${ours!.failed} failed deliveries`);
    ctx.log(`  Stratus producer, EventRecords of ${EVENTS_PER_RECORD}: ${ours!.eventsPerS} events/s`);

    const topic = `${k.topicPrefix}bench-producer-perf-${randomUUID().slice(0, 8)}`;
    await ensureTopics(ctx.config, [{ topic, partitions: PARTITIONS }]);
    let line: RegExpExecArray | null;
    try {
      const props = [`acks=all`, `enable.idempotence=true`, `linger.ms=${k.lingerMs}`, `batch.size=${k.batchSizeMax}`, `compression.type=none`];
      const { stdout } = await promisify(execFile)(
        'java',
        ['-cp', join(KAFKA_LIBS, '*'), 'org.apache.kafka.tools.ProducerPerformance', '--bootstrap-server', k.brokers.join(','), '--topic', topic, '--num-records', String(records), '--record-size', String(recordBytes), '--throughput', '-1', '--command-property', ...props],
        { timeout: 300_000, maxBuffer: 16 * 1024 * 1024 },
      );
      // "N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max latency, p50 ms 50th, p95 ms 95th, p99 ms 99th, p999 ms 99.9th."
      line = /(\d+) records sent, ([\d.]+) records\/sec \(([\d.]+) MB\/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99\.9th/.exec(stdout);
      if (line === null) throw new Error(`ProducerPerformance printed no summary: ${stdout.slice(-300)}`);
    } finally {
      await deleteTopics(ctx.config, [topic]).catch(() => {});
    }
    const java = { recordsPerS: Math.round(Number(line[2])), mbPerS: Number(line[3]), avg: Number(line[4]), max: Number(line[5]), p50: Number(line[6]), p95: Number(line[7]), p99: Number(line[8]), p999: Number(line[9]) };
    ctx.log(`  ProducerPerformance: ${java.recordsPerS} records/s`);
    const r = ours!.eventsPerS / java.recordsPerS;
    const r1 = single!.recordsPerS / java.recordsPerS;
    return {
      id: this.id,
      title: this.title,
      params: { events: records, eventBytes: recordBytes, eventsPerRecord: EVENTS_PER_RECORD, partitions: PARTITIONS, acks: 'all', idempotence: true, lingerMs: k.lingerMs, batchSizeBytes: k.batchSizeMax, compression: 'none', stratusPartitioning: 'explicit partition per record (murmur2 of the device ids)', javaKeys: 'none (sticky partitioner)' },
      sides: [
        { name: `Stratus producer, EventRecords of ${EVENTS_PER_RECORD} events`, figures: { eventsPerS: ours!.eventsPerS, recordsPerS: ours!.recordsPerS, mbPerS: ours!.mbPerS, latencyAvgMs: ours!.latencyMs.avg, latencyP50Ms: ours!.latencyMs.p50, latencyP99Ms: ours!.latencyMs.p99, latencyMaxMs: ours!.latencyMs.max } },
        { name: 'Stratus producer, one event per record', figures: { eventsPerS: single!.recordsPerS, recordsPerS: single!.recordsPerS, mbPerS: single!.mbPerS, latencyAvgMs: single!.latencyMs.avg, latencyP50Ms: single!.latencyMs.p50, latencyP99Ms: single!.latencyMs.p99, latencyMaxMs: single!.latencyMs.max } },
        { name: 'Kafka ProducerPerformance (Java), one event per record', figures: { eventsPerS: java.recordsPerS, recordsPerS: java.recordsPerS, mbPerS: java.mbPerS, latencyAvgMs: java.avg, latencyP50Ms: java.p50, latencyP99Ms: java.p99, latencyMaxMs: java.max } },
      ],
      ratios: [
        ratio('events/s: Stratus events topic / ProducerPerformance', r, { op: '>=', value: 0.8 }),
        ratio('records/s, one event per record: Stratus producer / ProducerPerformance', r1),
      ],
      reading:
        `Writing ${records.toLocaleString('en-US')} events (${recordBytes} bytes each as one record) with acks=all and idempotence, the gateway's producer wrote ${ours!.eventsPerS.toLocaleString('en-US')} events/s as EventRecords of ${EVENTS_PER_RECORD} (${ours!.recordsPerS.toLocaleString('en-US')} records/s), ${(r * 100).toFixed(0)}% of Kafka's own Java tool sending each event as a record (${java.recordsPerS.toLocaleString('en-US')}/s); one event per record, as before, it did ${single!.recordsPerS.toLocaleString('en-US')} records/s (${(r1 * 100).toFixed(0)}%). ` +
        `Both fill their buffers as fast as they can, so latency here is mostly time queued in the client (ours holds up to kafka.producerQueueMax = ${k.producerQueueMax.toLocaleString('en-US')} messages, Java's 32 MiB buffer.memory), not broker time. ` +
        `The Stratus side names each record's partition (the devices', as the gateway does); ProducerPerformance sends unkeyed records, which its sticky partitioner packs into fuller batches. ` +
        `Each record costs the Node side one native produce() call and one delivery-report callback into JavaScript (the gateway needs the report to ack its events); the Java client batches in-process without crossing a language boundary per record, and a record of ${EVENTS_PER_RECORD} events pays that once.` +
        (profile === undefined ? '' : ` ${describeProfile(profile, 'the Stratus producer process')}`),
      raw: profile === undefined ? undefined : { producerProfile: profile },
    };
  },
};
