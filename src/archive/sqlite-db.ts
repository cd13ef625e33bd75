/**
 * The SQLite archive, synchronous: what sqlite-worker.ts runs on its own thread for sqlite-store.ts.
 * better-sqlite3 on Node; bun:sqlite on Bun (which cannot load the addon). Both are driven through
 * the few calls they share (exec, prepare, run/all/get with positional parameters), so one body of
 * SQL serves both.
 *
 * Durability: WAL with synchronous=FULL, so a transaction that returned is on disk (the archiver
 * commits Kafka offsets right after: NORMAL could lose the last ones in a power cut, and they would
 * not be read again). busy_timeout = archive.statementTimeoutMs: a second process writing the same
 * file (another engine, `stratus query` reading) waits its turn rather than failing at once.
 */
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { ErrorCode, StratusError } from '../errors.js';
import { deadLetterOf, migrationsAfter, shortReason, VERSION_TABLE, type DeadLetterRow } from './schema.js';
import type { ArchivedEvent, ArchivedResult, DeadLetter, HistoryEntry, HistoryQuery, StoreCounts, WriteBatch, WriteOutcome } from './store.js';

/** The calls better-sqlite3 and bun:sqlite share. */
interface Statement {
  run(...params: unknown[]): { changes: number | bigint };
  all(...params: unknown[]): unknown[];
  get(...params: unknown[]): unknown;
}
interface Driver {
  exec(sql: string): void;
  prepare(sql: string): Statement;
  close(): void;
}

function openDriver(path: string): Driver {
  const require = createRequire(import.meta.url);
  if (process.versions.bun !== undefined) {
    const { Database } = require('bun:sqlite') as { Database: new (path: string, options: { create: boolean; strict: boolean }) => Driver };
    return new Database(path, { create: true, strict: false });
  }
  const Database = require('better-sqlite3') as new (path: string, options: { timeout: number }) => Driver;
  // better-sqlite3's own busy wait is set below with the pragma, like on Bun.
  return new Database(path, { timeout: 0 });
}

/**
 * SQLite's codes for a row it will never store as it is (constraint, type, size): dead-lettered.
 * Every other failure (full disk, I/O, busy, read-only, corrupt) may mend: the batch is retried.
 */
function isRowError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^SQLITE_(CONSTRAINT|MISMATCH|TOOBIG|RANGE)/.test(code);
}

export class SqliteDb {
  private readonly db: Driver;
  private readonly insertEvent: Statement;
  private readonly insertResult: Statement;
  private readonly insertDead: Statement;
  /** A device's latest events (seq descending), and its events from a time on (seq ascending), each with its result. */
  private readonly historyLatest: Statement;
  private readonly historySince: Statement;

  constructor(
    readonly path: string,
    busyTimeoutMs: number,
  ) {
    let db: Driver | null = null;
    try {
      mkdirSync(dirname(path), { recursive: true });
      db = openDriver(path);
      this.db = db;
      this.db.exec(`PRAGMA busy_timeout = ${Math.trunc(busyTimeoutMs)}`);
      this.db.exec('PRAGMA journal_mode = WAL');
      this.db.exec('PRAGMA synchronous = FULL');
      this.migrate();
    } catch (err) {
      db?.close();
      throw this.failure(err, 'opening');
    }
    this.insertEvent = this.db.prepare(
      'INSERT INTO events (device_id, seq, type, value, payload, sent_at_us, received_at_us) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, seq) DO NOTHING',
    );
    this.insertResult = this.db.prepare(
      'INSERT INTO results (device_id, seq, type, value, payload, received_at_us, processed_at_us) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, seq) DO NOTHING',
    );
    this.insertDead = this.db.prepare(
      'INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, item, device_id, seq, reason, at_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
    );
    const select = `SELECT e.seq, e.type, e.value, e.payload, e.sent_at_us, e.received_at_us,
        r.type AS r_type, r.value AS r_value, r.payload AS r_payload, r.processed_at_us AS r_processed_at_us
      FROM events e LEFT JOIN results r ON r.device_id = e.device_id AND r.seq = e.seq`;
    this.historyLatest = this.db.prepare(`${select} WHERE e.device_id = ? ORDER BY e.seq DESC LIMIT ?`);
    this.historySince = this.db.prepare(`${select} WHERE e.device_id = ? AND e.received_at_us >= ? ORDER BY e.seq LIMIT ?`);
  }

  /** Creates or migrates the schema; BEGIN IMMEDIATE takes the write lock, so two openers migrate once. */
  private migrate(): void {
    this.db.exec(VERSION_TABLE.sqlite);
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const current = this.version();
      for (const m of migrationsAfter(current, this.path)) {
        for (const sql of m.sqlite) this.db.exec(sql);
        this.db.prepare('INSERT INTO stratus_schema_version (version, summary, applied_at_us) VALUES (?, ?, ?)').run(m.version, m.summary, nowUs());
      }
      this.db.exec('COMMIT');
    } catch (err) {
      this.db.exec('ROLLBACK');
      throw err;
    }
  }

  private version(): number {
    const row = this.db.prepare('SELECT COALESCE(MAX(version), 0) AS v FROM stratus_schema_version').get() as { v: number };
    return Number(row.v);
  }

  schemaVersion(): number {
    return this.guard('reading the schema version', () => this.version());
  }

  write(batch: WriteBatch): WriteOutcome {
    return this.guard('writing a batch', () => {
      const out: WriteOutcome = { events: 0, results: 0, duplicates: 0, deadLetters: [] };
      const at = nowUs();
      this.db.exec('BEGIN IMMEDIATE');
      try {
        for (const e of batch.events) this.row(out, e, 'events', () => this.insertEvent.run(e.deviceId, e.seq, e.type, e.value, e.payload, e.sentAtUs, e.receivedAtUs), at);
        for (const r of batch.results) this.row(out, r, 'results', () => this.insertResult.run(r.deviceId, r.seq, r.type, r.value, r.payload, r.receivedAtUs, r.processedAtUs), at);
        for (const d of batch.deadLetters) this.dead(out, d, at);
        this.db.exec('COMMIT');
      } catch (err) {
        this.rollback();
        throw err;
      }
      return out;
    });
  }

  /**
   * One row, inside the batch's transaction. A statement SQLite refuses for its content (a
   * constraint) is undone alone, the transaction stays open: the row is dead-lettered instead.
   */
  private row(out: WriteOutcome, row: ArchivedEvent | ArchivedResult, table: 'events' | 'results', insert: () => { changes: number | bigint }, at: number): void {
    try {
      if (Number(insert().changes) === 1) out[table]++;
      else out.duplicates++;
    } catch (err) {
      if (!isRowError(err)) throw err;
      const code = (err as { code?: string }).code ?? 'SQLITE_ERROR';
      this.dead(out, { ...row.origin, deviceId: row.deviceId, seq: row.seq, reason: shortReason(`${code}: ${(err as Error).message}`) }, at);
    }
  }

  private dead(out: WriteOutcome, d: DeadLetter, at: number): void {
    this.insertDead.run(d.topic, d.partition, d.offset, d.item, d.deviceId, d.seq, shortReason(d.reason), at);
    out.deadLetters.push(d);
  }

  private rollback(): void {
    try {
      this.db.exec('ROLLBACK');
    } catch {
      // SQLite rolled back by itself (a full disk, an I/O error end the transaction): nothing to undo.
    }
  }

  history(q: HistoryQuery): HistoryEntry[] {
    return this.guard('reading a history', () => {
      const rows =
        q.sinceUs === undefined
          ? (this.historyLatest.all(q.deviceId, q.limit) as HistoryRow[]).reverse()
          : (this.historySince.all(q.deviceId, q.sinceUs, q.limit) as HistoryRow[]);
      return rows.map(historyEntry);
    });
  }

  expire(beforeUs: number, rowsMax: number): number {
    return this.guard('deleting expired rows', () => {
      let n = 0;
      this.db.exec('BEGIN IMMEDIATE');
      try {
        for (const table of ['events', 'results']) {
          n += Number(this.db.prepare(`DELETE FROM ${table} WHERE rowid IN (SELECT rowid FROM ${table} WHERE received_at_us < ? ORDER BY received_at_us LIMIT ?)`).run(beforeUs, rowsMax).changes);
        }
        this.db.exec('COMMIT');
      } catch (err) {
        this.rollback();
        throw err;
      }
      return n;
    });
  }

  counts(): StoreCounts {
    return this.guard('counting rows', () => {
      const count = (table: string) => Number((this.db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n);
      return { events: count('events'), results: count('results'), deadLetters: count('dead_letters') };
    });
  }

  deadLetters(limit: number): DeadLetter[] {
    return this.guard('reading dead letters', () =>
      (this.db.prepare('SELECT topic, kafka_partition, kafka_offset, item, device_id, seq, reason FROM dead_letters ORDER BY topic, kafka_partition, kafka_offset, item LIMIT ?').all(limit) as DeadLetterRow[]).map(deadLetterOf),
    );
  }

  close(): void {
    this.db.close();
  }

  private guard<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw this.failure(err, what);
    }
  }

  /** A StratusError as it is; anything else SQLite threw is ARCHIVE_UNAVAILABLE (retryable), one line. */
  private failure(err: unknown, what: string): StratusError {
    if (err instanceof StratusError) return err;
    const code = (err as { code?: unknown }).code;
    const message = err instanceof Error ? err.message : String(err);
    return new StratusError(ErrorCode.ARCHIVE_UNAVAILABLE, `SQLite at ${this.path}: ${what} failed: ${typeof code === 'string' ? `${code} ` : ''}${message.split('\n')[0]}`, { retryable: true, cause: err });
  }
}

interface HistoryRow {
  seq: number;
  type: string;
  value: number;
  payload: Uint8Array;
  sent_at_us: number;
  received_at_us: number;
  r_type: string | null;
  r_value: number | null;
  r_payload: Uint8Array | null;
  r_processed_at_us: number | null;
}

function historyEntry(r: HistoryRow): HistoryEntry {
  return {
    seq: Number(r.seq),
    type: r.type,
    value: r.value,
    payload: r.payload,
    sentAtUs: Number(r.sent_at_us),
    receivedAtUs: Number(r.received_at_us),
    result: r.r_type === null ? null : { type: r.r_type, value: r.r_value!, payload: r.r_payload!, processedAtUs: Number(r.r_processed_at_us) },
  };
}

function nowUs(): number {
  return Date.now() * 1000;
}
