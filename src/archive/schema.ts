/**
 * The archive's schema, as numbered migrations in the two stores' dialects. A store applies, at
 * open, every migration above the version its database records (stratus_schema_version), in one
 * transaction under a lock (SQLite's write lock, a PostgreSQL advisory lock), so that two engines
 * opening one database at once migrate it once, and a failed migration leaves the version it found. A database at a version above SCHEMA_VERSION was written by a newer Stratus: opening it is
 * refused (ARCHIVE_SCHEMA_UNKNOWN) rather than guessed at.
 *
 *   events        (device_id, seq) PRIMARY KEY; type, value, payload, sent_at_us, received_at_us
 *   results       (device_id, seq) PRIMARY KEY; type, value, payload, received_at_us, processed_at_us
 *   dead_letters  (topic, kafka_partition, kafka_offset, item) PRIMARY KEY; device_id, seq, reason, at_us
 *
 * Indexes: events (device_id, received_at_us) for `query --since`; events (received_at_us) and
 * results (received_at_us) for retention. Times are µs since the epoch, as on the wire.
 */
import { ErrorCode, StratusError } from '../errors.js';
import type { DeadLetter } from './store.js';

export interface Migration {
  version: number;
  summary: string;
  sqlite: readonly string[];
  postgres: readonly string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    summary: 'events and results, keyed by (device_id, seq)',
    sqlite: [
      `CREATE TABLE events (device_id TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, value REAL NOT NULL, payload BLOB NOT NULL,
         sent_at_us INTEGER NOT NULL, received_at_us INTEGER NOT NULL, PRIMARY KEY (device_id, seq))`,
      'CREATE INDEX events_device_received ON events (device_id, received_at_us)',
      'CREATE INDEX events_received ON events (received_at_us)',
      `CREATE TABLE results (device_id TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, value REAL NOT NULL, payload BLOB NOT NULL,
         received_at_us INTEGER NOT NULL, processed_at_us INTEGER NOT NULL, PRIMARY KEY (device_id, seq))`,
      'CREATE INDEX results_received ON results (received_at_us)',
    ],
    postgres: [
      `CREATE TABLE events (device_id TEXT NOT NULL, seq BIGINT NOT NULL, type TEXT NOT NULL, value DOUBLE PRECISION NOT NULL, payload BYTEA NOT NULL,
         sent_at_us BIGINT NOT NULL, received_at_us BIGINT NOT NULL, PRIMARY KEY (device_id, seq))`,
      'CREATE INDEX events_device_received ON events (device_id, received_at_us)',
      'CREATE INDEX events_received ON events (received_at_us)',
      `CREATE TABLE results (device_id TEXT NOT NULL, seq BIGINT NOT NULL, type TEXT NOT NULL, value DOUBLE PRECISION NOT NULL, payload BYTEA NOT NULL,
         received_at_us BIGINT NOT NULL, processed_at_us BIGINT NOT NULL, PRIMARY KEY (device_id, seq))`,
      'CREATE INDEX results_received ON results (received_at_us)',
    ],
  },
  {
    version: 2,
    summary: 'dead letters: rows not archived, with their Kafka position and reason',
    sqlite: [
      `CREATE TABLE dead_letters (topic TEXT NOT NULL, kafka_partition INTEGER NOT NULL, kafka_offset INTEGER NOT NULL, item INTEGER NOT NULL,
         device_id TEXT, seq INTEGER, reason TEXT NOT NULL, at_us INTEGER NOT NULL, PRIMARY KEY (topic, kafka_partition, kafka_offset, item))`,
    ],
    postgres: [
      `CREATE TABLE dead_letters (topic TEXT NOT NULL, kafka_partition INTEGER NOT NULL, kafka_offset BIGINT NOT NULL, item INTEGER NOT NULL,
         device_id TEXT, seq BIGINT, reason TEXT NOT NULL, at_us BIGINT NOT NULL, PRIMARY KEY (topic, kafka_partition, kafka_offset, item))`,
    ],
  },
];

/** The version this Stratus writes: the last migration's. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** The version table, in both dialects (created before anything is read from it). */
export const VERSION_TABLE = {
  sqlite: 'CREATE TABLE IF NOT EXISTS stratus_schema_version (version INTEGER PRIMARY KEY, summary TEXT NOT NULL, applied_at_us INTEGER NOT NULL)',
  postgres: 'CREATE TABLE IF NOT EXISTS stratus_schema_version (version INTEGER PRIMARY KEY, summary TEXT NOT NULL, applied_at_us BIGINT NOT NULL)',
} as const;

/** The migrations a database at `current` still needs; throws ARCHIVE_SCHEMA_UNKNOWN above SCHEMA_VERSION. */
export function migrationsAfter(current: number, where: string): readonly Migration[] {
  if (current > SCHEMA_VERSION) {
    throw new StratusError(
      ErrorCode.ARCHIVE_SCHEMA_UNKNOWN,
      `the archive at ${where} is at schema version ${current}, newer than this Stratus knows (${SCHEMA_VERSION}): run the Stratus that wrote it, or point archive.store at another database`,
    );
  }
  return MIGRATIONS.filter((m) => m.version > current);
}

/** How much of a refused row's reason is kept: a driver message can quote the whole value. */
export const REASON_CHARS_MAX = 500;

export function shortReason(reason: string): string {
  return reason.length <= REASON_CHARS_MAX ? reason : `${reason.slice(0, REASON_CHARS_MAX - 1)}…`;
}

/** A dead_letters row as both drivers read it (integers as numbers; BIGINT parsed by the caller's driver). */
export interface DeadLetterRow {
  topic: string;
  kafka_partition: number;
  kafka_offset: number;
  item: number;
  device_id: string | null;
  seq: number | null;
  reason: string;
}

export function deadLetterOf(r: DeadLetterRow): DeadLetter {
  return { topic: r.topic, partition: Number(r.kafka_partition), offset: Number(r.kafka_offset), item: Number(r.item), deviceId: r.device_id, seq: r.seq === null ? null : Number(r.seq), reason: r.reason };
}
