/**
 * Archiver: events topic + results topic -> the archive store (sqlite or postgres, store.ts).
 *
 * Reads both topics as consumer group <prefix>archiver, gathering Kafka batches for up to
 * archive.lingerMs or archive.batchRowsMax rows; decodes each record into rows (an event per
 * AcceptedEvent, a result per DeviceResult); writes them to the store in transactions of at most
 * archive.batchRowsMax rows; commits the offsets only after the store has every row. The next Kafka
 * batch is fetched while the store writes (one batch ahead at most).
 *
 * Guarantee: exactly once in the store. At least once from Kafka (a crash before the commit reads
 * the batch again), and the store's key (device_id, seq) makes a row written twice one row. A
 * result joins its event by that key when read, whichever was written first.
 *
 * What is not archived is dead-lettered, never retried for ever and never silently dropped: a
 * record that does not decode, a payload over archive.payloadBytesMax, a row the store refuses
 * for its content. Each goes to the store's dead_letters table with its Kafka position and reason
 * (the row itself stays in Kafka until the topic's retention), counted in
 * stratus_archive_dead_letters_total.
 *
 * The store away (unreachable, full, timing out): the batch in hand is written again and again
 * (100 ms doubling to archive.retryMaxMs), nothing is committed or read meanwhile, so the lag
 * grows (stratus_archive_lag_seconds, stratus_archive_lag_messages) and nothing is lost; /readyz
 * names the outage (in a process that also runs the gateway it stays 200, "degraded": devices keep
 * being served). Logged once when lost and once when back.
 *
 * Retention: every archive.retentionIntervalMs, rows received more than archive.retentionDays ago
 * are deleted, archive.batchRowsMax per table at a time, between batches.
 */
import type { Config } from '../config.js';
import { isStratusError } from '../errors.js';
import { kafkaClients } from '../kafka/factory.js';
import type { ConsumedMessage } from '../kafka/types.js';
import { registerHealth } from '../http/health.js';
import { metrics, setArchiverGroup } from '../http/metrics.js';
import { errorText, roleLog } from '../log.js';
import type { RunningStage } from '../processor/processor.js';
import { topology } from '../topology.js';
import { decodeEventRecord } from '../wire/event-record.js';
import { decodeResult, splitResultRecord } from '../wire/result-record.js';
import type { ArchivedEvent, ArchivedResult, ArchiveStore, DeadLetter, WriteBatch } from './store.js';

export interface ArchiverStats {
  batches: number;
  events: number;
  results: number;
  duplicates: number;
  deadLetters: number;
  writeFailures: number;
  expired: number;
}

const RETRY_FIRST_MS = 100;
/**
 * How long stop() waits for the store write in hand (a slow or hung store): then the batch is left
 * uncommitted, and whoever owns its partitions next writes it again (the key absorbs it).
 */
const STOP_WAIT_MS = 5000;
const DAY_MS = 86_400_000;
const log = roleLog('archive');

/** The rows of one Kafka batch, and the oldest time among them (µs; for the lag in seconds). */
interface Rows {
  events: ArchivedEvent[];
  results: ArchivedResult[];
  deadLetters: DeadLetter[];
  /** Why each of deadLetters is there, for the metric's label. */
  deadReasons: ('payload' | 'undecodable')[];
  oldestUs: number;
}

/** Decodes a batch of both topics into rows; what cannot be archived becomes a dead letter. */
export function rowsOf(messages: readonly ConsumedMessage[], eventsTopic: string, payloadBytesMax: number): Rows {
  const rows: Rows = { events: [], results: [], deadLetters: [], deadReasons: [], oldestUs: Infinity };
  const tooBig = (m: ConsumedMessage, item: number, deviceId: string, seq: number, bytes: number) => {
    rows.deadLetters.push({ topic: m.topic, partition: m.partition, offset: m.offset, item, deviceId, seq, reason: `payload of ${bytes} bytes is over archive.payloadBytesMax (${payloadBytesMax})` });
    rows.deadReasons.push('payload');
  };
  for (const m of messages) {
    try {
      if (m.topic === eventsTopic) {
        const events = decodeEventRecord(m.value, m.key);
        for (let i = 0; i < events.length; i++) {
          const e = events[i]!;
          if (e.receivedAtUs < rows.oldestUs) rows.oldestUs = e.receivedAtUs;
          if (e.payload.length > payloadBytesMax) tooBig(m, i, e.deviceId, e.seq, e.payload.length);
          else {
            // The decoded event is this batch's own: it becomes the row, with its position added.
            const row = e as ArchivedEvent;
            row.origin = { topic: m.topic, partition: m.partition, offset: m.offset, item: i };
            rows.events.push(row);
          }
        }
      } else {
        const results = splitResultRecord(m.value, m.key);
        for (let i = 0; i < results.length; i++) {
          const one = results[i]!;
          const r = decodeResult(one.bytes);
          if (r.processedAtUs < rows.oldestUs) rows.oldestUs = r.processedAtUs;
          if (r.payload.length > payloadBytesMax) tooBig(m, i, one.deviceId, one.seq, r.payload.length);
          // The earlier layout keeps the device id in the record's key only (split gives it).
          else rows.results.push({ deviceId: one.deviceId, seq: one.seq, type: r.type, value: r.value, payload: r.payload, receivedAtUs: r.receivedAtUs, processedAtUs: r.processedAtUs, origin: { topic: m.topic, partition: m.partition, offset: m.offset, item: i } });
        }
      }
    } catch (err) {
      // The rows of a record decoded before the failure are kept with it: the whole record is
      // dead-lettered rather than half archived.
      rows.events = rows.events.filter((e) => !(e.origin.topic === m.topic && e.origin.partition === m.partition && e.origin.offset === m.offset));
      rows.results = rows.results.filter((r) => !(r.origin.topic === m.topic && r.origin.partition === m.partition && r.origin.offset === m.offset));
      rows.deadLetters.push({ topic: m.topic, partition: m.partition, offset: m.offset, item: 0, deviceId: null, seq: null, reason: `undecodable ${m.topic === eventsTopic ? 'event' : 'result'} record: ${errorText(err)}` });
      rows.deadReasons.push('undecodable');
    }
  }
  return rows;
}

function rowCount(rows: Rows): number {
  return rows.events.length + rows.results.length + rows.deadLetters.length;
}

/** `more` appended to `rows`. */
function appendRows(rows: Rows, more: Rows): void {
  for (const e of more.events) rows.events.push(e);
  for (const r of more.results) rows.results.push(r);
  for (const d of more.deadLetters) rows.deadLetters.push(d);
  for (const r of more.deadReasons) rows.deadReasons.push(r);
  if (more.oldestUs < rows.oldestUs) rows.oldestUs = more.oldestUs;
}

/** The rows as store transactions of at most rowsMax rows each, in order. */
export function* chunksOf(rows: Rows, rowsMax: number): Generator<WriteBatch> {
  let batch: { events: ArchivedEvent[]; results: ArchivedResult[]; deadLetters: DeadLetter[] } = { events: [], results: [], deadLetters: [] };
  let n = 0;
  const flush = function* () {
    if (n > 0) yield batch;
    batch = { events: [], results: [], deadLetters: [] };
    n = 0;
  };
  for (const e of rows.events) {
    batch.events.push(e);
    if (++n >= rowsMax) yield* flush();
  }
  for (const r of rows.results) {
    batch.results.push(r);
    if (++n >= rowsMax) yield* flush();
  }
  for (const d of rows.deadLetters) {
    batch.deadLetters.push(d);
    if (++n >= rowsMax) yield* flush();
  }
  yield* flush();
}

/**
 * Starts archiving into `store` (opened by the caller, who closes it after stop()). `degradedOnly`:
 * the store's outage does not make /readyz fail (the process also serves devices).
 */
export async function startArchiver(config: Config, instanceId: string, store: ArchiveStore, options: { degradedOnly?: boolean } = {}): Promise<RunningStage<ArchiverStats>> {
  const t = topology(config);
  const stats: ArchiverStats = { batches: 0, events: 0, results: 0, duplicates: 0, deadLetters: 0, writeFailures: 0, expired: 0 };
  const label = { store: store.kind };
  log.info({ store: store.kind, where: store.where, group: t.groups.archiver }, `archiving to ${store.kind} at ${store.where}`);
  const kafka = await kafkaClients(config);
  const consumer = await kafka.batchConsumer(config, { groupId: t.groups.archiver, topics: [t.topics.events, t.topics.results], clientId: `${instanceId}-archiver` });
  setArchiverGroup(t.groups.archiver);
  // Every series from the start, at 0 (a series that appears with its first increment hides it from rate()).
  for (const table of ['events', 'results'] as const) metrics.archiveRowsWritten.inc({ ...label, table }, 0);
  for (const reason of ['payload', 'undecodable', 'refused'] as const) metrics.archiveDeadLetters.inc({ ...label, reason }, 0);
  metrics.archiveDuplicates.inc(label, 0);
  metrics.archiveWriteFailures.inc(label, 0);
  metrics.archiveRowsExpired.inc(label, 0);
  metrics.archiveLagSeconds.set(0);

  /** Invariant: downSince !== 0 iff the last write attempt failed. */
  let downSince = 0;
  let downWhy = '';
  const unregister = registerHealth({
    name: `archive store ${store.kind} at ${store.where}`,
    dependency: 'archive',
    degraded: options.degradedOnly === true,
    problem: () => (downSince === 0 ? null : `failing for ${Math.round((Date.now() - downSince) / 1000)} s (${downWhy}); the archiver commits nothing until it is back, nothing is lost`),
  });

  let running = true;
  /** Set when stop() stopped waiting for the loop: it must not touch the consumer any more. */
  let abandoned = false;
  /** The oldest row read and not yet written (µs), for stratus_archive_lag_seconds; 0: none. */
  let inHandUs = 0;
  const lagTimer = setInterval(() => metrics.archiveLagSeconds.set(inHandUs === 0 ? 0 : Math.max(0, (Date.now() * 1000 - inHandUs) / 1e6)), 1000);
  lagTimer.unref();

  /** The store answered: "back" once after a failure. */
  function answered(): void {
    if (downSince === 0) return;
    log.info({ store: store.kind, where: store.where, downMs: Date.now() - downSince }, 'archive store back');
    downSince = 0;
  }

  /** The store failed: "lost" once, then waits `waitMs` before the caller tries again. */
  async function failed(err: unknown, waitMs: number, doing: string): Promise<void> {
    downWhy = isStratusError(err) ? err.message : errorText(err);
    if (downSince === 0) {
      downSince = Date.now();
      log.warn({ store: store.kind, where: store.where, err: downWhy }, `archive store lost: ${doing}`);
    }
    await new Promise((r) => setTimeout(r, waitMs));
  }

  /** Writes one transaction, again and again while the store fails; false if stopped first. */
  async function writeUntilDone(batch: WriteBatch): Promise<boolean> {
    let waitMs = RETRY_FIRST_MS;
    while (running) {
      const t0 = performance.now();
      try {
        const out = await store.write(batch);
        metrics.archiveWriteSeconds.observe(label, (performance.now() - t0) / 1000);
        metrics.archiveBatchRows.observe(label, batch.events.length + batch.results.length + batch.deadLetters.length);
        metrics.archiveRowsWritten.inc({ ...label, table: 'events' }, out.events);
        metrics.archiveRowsWritten.inc({ ...label, table: 'results' }, out.results);
        metrics.archiveDuplicates.inc(label, out.duplicates);
        const refused = out.deadLetters.length - batch.deadLetters.length;
        if (refused > 0) {
          metrics.archiveDeadLetters.inc({ ...label, reason: 'refused' }, refused);
          log.warn({ rows: refused, first: out.deadLetters[batch.deadLetters.length] }, `the store refused ${refused} rows: dead-lettered with its reasons`);
        }
        stats.events += out.events;
        stats.results += out.results;
        stats.duplicates += out.duplicates;
        stats.deadLetters += out.deadLetters.length;
        answered();
        return true;
      } catch (err) {
        stats.writeFailures++;
        metrics.archiveWriteFailures.inc(label);
        await failed(err, waitMs, 'retrying, committing nothing meanwhile');
        waitMs = Math.min(waitMs * 2, config.archive.retryMaxMs);
      }
    }
    return false;
  }

  let nextExpireAt = Date.now();
  let expiring = false;
  /** One retention step between batches: a chunk per table while there is more to delete. */
  async function retentionStep(): Promise<void> {
    if (config.archive.retentionDays === 0) return;
    if (!expiring && Date.now() < nextExpireAt) return;
    expiring = true;
    try {
      const n = await store.expire(Date.now() * 1000 - config.archive.retentionDays * DAY_MS * 1000, config.archive.batchRowsMax);
      stats.expired += n;
      metrics.archiveRowsExpired.inc(label, n);
      if (n === 0) {
        expiring = false;
        nextExpireAt = Date.now() + config.archive.retentionIntervalMs;
      }
    } catch (err) {
      // Tried again at the next interval; writes report the store's state.
      log.warn({ err: errorText(err) }, 'deleting rows past archive.retentionDays failed; tried again later');
      expiring = false;
      nextExpireAt = Date.now() + config.archive.retentionIntervalMs;
    }
  }

  /** The next Kafka batch, fetched while the store writes the one in hand; null: none asked for. */
  let ahead: Promise<ConsumedMessage[]> | null = null;
  const nextBatch = (): Promise<ConsumedMessage[]> => {
    const p = ahead ?? consumer.consume();
    ahead = null;
    return p;
  };

  /**
   * Waits until the store answers (it may not have when the process started), retrying like a
   * write: nothing is read from Kafka before there is somewhere to write it.
   */
  async function storeAnswers(): Promise<boolean> {
    let waitMs = RETRY_FIRST_MS;
    while (running) {
      try {
        await store.schemaVersion();
        answered();
        return true;
      } catch (err) {
        await failed(err, waitMs, 'waiting for it before reading Kafka');
        waitMs = Math.min(waitMs * 2, config.archive.retryMaxMs);
      }
    }
    return false;
  }

  const loop = (async () => {
    if (!(await storeAnswers())) return;
    while (running) {
      await retentionStep();
      if (!running) break;
      const messages = await nextBatch();
      if (messages.length === 0) continue;
      const rows = rowsOf(messages, t.topics.events, config.archive.payloadBytesMax);
      // Linger: more batches into the same transactions while they come, up to the row limit.
      const lingerUntil = Date.now() + config.archive.lingerMs;
      while (running && rowCount(rows) < config.archive.batchRowsMax && Date.now() < lingerUntil) {
        const more = await consumer.consume();
        if (more.length === 0) break;
        for (const m of more) messages.push(m);
        appendRows(rows, rowsOf(more, t.topics.events, config.archive.payloadBytesMax));
      }
      inHandUs = Number.isFinite(rows.oldestUs) ? rows.oldestUs : Date.now() * 1000;
      if (running) ahead = consumer.consume();
      for (let i = 0; i < rows.deadReasons.length; i++) metrics.archiveDeadLetters.inc({ ...label, reason: rows.deadReasons[i]! });
      if (rows.deadLetters.length > 0) log.warn({ rows: rows.deadLetters.length, first: rows.deadLetters[0] }, `${rows.deadLetters.length} rows not archivable: dead-lettered`);
      let written = true;
      for (const batch of chunksOf(rows, config.archive.batchRowsMax)) {
        if (!(await writeUntilDone(batch))) {
          written = false;
          break;
        }
      }
      // Stopped with the batch not (wholly) in the store: not committed, read again by the next owner.
      if (!written || abandoned) break;
      consumer.commitBatch(messages);
      stats.batches++;
      inHandUs = 0;
    }
    // A batch fetched ahead and not written is not committed: the next owner reads it again.
    if (ahead !== null) await ahead;
  })();

  return {
    stats,
    async stop() {
      running = false;
      const stopped = await Promise.race([loop.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), STOP_WAIT_MS).unref())]);
      if (!stopped) {
        abandoned = true;
        log.warn({ store: store.kind, where: store.where, waitedMs: STOP_WAIT_MS }, 'stopping: the store write in hand did not finish; its batch stays uncommitted (written again by the next owner)');
      }
      clearInterval(lagTimer);
      await consumer.disconnect();
      unregister();
      setArchiverGroup(null);
      metrics.archiveLagSeconds.set(0);
    },
  };
}
