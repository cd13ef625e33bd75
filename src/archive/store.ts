/**
 * The archive's store: where the archiver (archiver.ts) keeps every event and result, and what
 * `stratus query` and GET /v1/devices/{id}/history read back. Two implementations behind this one
 * interface, one contract suite against both (test/contract/archive-store.test.ts):
 *
 *   sqlite-store.ts     a file, no server (better-sqlite3 on Node, bun:sqlite on Bun), driven from a
 *                       worker thread so that a write never holds the engine's event loop
 *   postgres-store.ts   PostgreSQL through node-postgres (pg), rows sent as arrays (unnest)
 *
 * The contract:
 * - write() is one transaction: every row of the batch is stored, or none (it rejects). Exactly
 *   once: (device_id, seq) is the key of events and of results, so writing a batch again (a
 *   re-read after a crash, a retry after a lost reply) changes nothing and counts its rows as
 *   duplicates. A dead letter's key is (topic, partition, offset, item): also written once.
 * - A row the store refuses for what it holds (a value out of range, text it cannot store) does
 *   not fail the batch: it is dead-lettered in the same transaction with the store's reason, and
 *   the rest is written (the outcome lists it). Only a failure a retry may mend (unreachable,
 *   full, busy, read-only) rejects, with ARCHIVE_UNAVAILABLE (retryable).
 * - A result joins its event by (device_id, seq) when read; either may be written first.
 * - open (openStore in open-store.ts) creates or migrates the schema (schema.ts) and refuses a
 *   version it does not know with ARCHIVE_SCHEMA_UNKNOWN.
 */
import type { AcceptedEvent } from '../wire/event-record.js';
import type { DeviceResult } from '../wire/result-record.js';

export type StoreKind = 'sqlite' | 'postgres';

/** Where a row came from in Kafka: what a dead letter records when the store refuses the row. */
export interface KafkaOrigin {
  topic: string;
  partition: number;
  offset: number;
  /** Its index among the events (results) of its Kafka record. */
  item: number;
}

/** An event as the events topic holds it (wire/event-record.ts), and where it was read. */
export interface ArchivedEvent extends AcceptedEvent {
  origin: KafkaOrigin;
}

/**
 * A result as the results topic holds it (wire/result-record.ts; its device id from the record's
 * key for the earlier layout), without the device's send time (the event row has it), and where it
 * was read. receivedAtUs is the event's receive time: retention counts from it for both tables.
 */
export interface ArchivedResult extends Omit<DeviceResult, 'sentAtUs'> {
  origin: KafkaOrigin;
}

/** A row not archived: where it is in Kafka (it stays there until the topic's retention) and why. */
export interface DeadLetter extends KafkaOrigin {
  deviceId: string | null;
  seq: number | null;
  reason: string;
}

export interface WriteBatch {
  events: readonly ArchivedEvent[];
  results: readonly ArchivedResult[];
  deadLetters: readonly DeadLetter[];
}

export interface WriteOutcome {
  /** Rows new to the store. */
  events: number;
  results: number;
  /** Rows of the batch the store had already (by key): a re-read batch is all duplicates. */
  duplicates: number;
  /** Dead letters written: the batch's own plus the rows the store refused, each with its reason. */
  deadLetters: DeadLetter[];
}

export interface HistoryQuery {
  deviceId: string;
  /** Events received at or after this time (µs since the epoch), oldest first; absent: the latest `limit`, oldest first. */
  sinceUs?: number;
  /** At most this many events (1..archive.historyLimitMax). */
  limit: number;
}

/** One archived event of a device (its id and Kafka position aside), with its result. */
export interface HistoryEntry extends Omit<ArchivedEvent, 'deviceId' | 'origin'> {
  /** null while the result is not archived (not processed yet, or the archiver is behind). */
  result: Pick<ArchivedResult, 'type' | 'value' | 'payload' | 'processedAtUs'> | null;
}

export interface StoreCounts {
  events: number;
  results: number;
  deadLetters: number;
}

export interface ArchiveStore {
  readonly kind: StoreKind;
  /** Where it is, for logs and errors: the file, or host:port/database (never a password). */
  readonly where: string;
  write(batch: WriteBatch): Promise<WriteOutcome>;
  /** One device's events with their results, ordered by seq. */
  history(query: HistoryQuery): Promise<HistoryEntry[]>;
  /**
   * Deletes up to rowsMax events and rowsMax results received before beforeUs (oldest first);
   * resolves with how many rows went. The archiver calls it until it returns 0.
   */
  expire(beforeUs: number, rowsMax: number): Promise<number>;
  counts(): Promise<StoreCounts>;
  /** Dead letters, oldest first (by Kafka position), at most `limit`. */
  deadLetters(limit: number): Promise<DeadLetter[]>;
  /** The schema version the store is at (schema.ts SCHEMA_VERSION once opened). */
  schemaVersion(): Promise<number>;
  close(): Promise<void>;
}
