/**
 * The archive in PostgreSQL (archive.store=postgres), through node-postgres (pg): the store the
 * archiver writes every event and result into, and history reads back (store.ts has the contract).
 *
 * Reads: WriteBatch from the archiver; HistoryQuery from the HTTP surface and `stratus query`.
 * Writes: the tables of schema.ts in the schema archive.postgresSchema of archive.postgresUrl.
 * Guarantee: a batch is one transaction, exactly once by key (ON CONFLICT DO NOTHING), so a batch
 * re-read after a crash or retried after a lost reply changes nothing.
 *
 * A batch is sent as one INSERT per table with one array parameter per column, unnested by the
 * server: three statements whatever the batch's size, and no 65535-parameter limit.
 *
 *   write(batch)
 *     BEGIN; INSERT events ... unnest; INSERT results ... unnest; INSERT dead_letters ... unnest; COMMIT
 *       └─ a data error (SQLSTATE class 22, 23, 54): ROLLBACK, then the same batch row by row, each
 *          row under a SAVEPOINT; a row refused again is rolled back to its savepoint and
 *          dead-lettered with PostgreSQL's reason, the rest written, all in one transaction
 *       └─ anything else (unreachable, full, shut down, timed out): ROLLBACK, ARCHIVE_UNAVAILABLE
 *
 * Open takes a transaction-scoped advisory lock keyed on the schema's name before it creates the
 * schema and migrates it, so engines opening one new database at once migrate it exactly once.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Config } from '../config.js';
import { ErrorCode, StratusError } from '../errors.js';
import { errorText, RateLimitedLog, roleLog, type Logger } from '../log.js';
import { deadLetterOf, migrationsAfter, shortReason, VERSION_TABLE, type DeadLetterRow } from './schema.js';
import { targetOf, type Target } from './store-where.js';
import type {
  ArchivedEvent,
  ArchivedResult,
  ArchiveStore,
  DeadLetter,
  HistoryEntry,
  HistoryQuery,
  StoreCounts,
  WriteBatch,
  WriteOutcome,
} from './store.js';

const archiveLog: Logger = roleLog('archive');

/**
 * Per-pool type parsers: BIGINT (int8) comes back as a JS number, since every BIGINT here (seq,
 * times in µs, offsets) is written from a JS number and so fits in 2^53. pg's global parsers are
 * left alone: another module's pool in this process keeps pg's defaults.
 */
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 && format !== 'binary' ? (text: string) => Number(text) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** The SQLSTATE of an error the server sent, or undefined for any other (socket, timeout, client). */
function sqlState(err: unknown): string | undefined {
  return err instanceof pg.DatabaseError && typeof err.code === 'string' ? err.code : undefined;
}

/**
 * A refusal of what the batch holds rather than of the batch being written now: data exception
 * (22: NUL in text, number out of range), integrity (23), program limit (54: an index row too
 * large). Retrying the same rows would fail the same way, so they are dead-lettered instead.
 */
function isRefusal(err: unknown): boolean {
  const state = sqlState(err);
  return state !== undefined && (state.startsWith('22') || state.startsWith('23') || state.startsWith('54'));
}

/** One line naming the cause: SQLSTATE and message, or the socket's code when Node gives no message. */
function causeText(err: unknown): string {
  const state = sqlState(err);
  let text = errorText(err);
  if (text === '' && err instanceof AggregateError) text = err.errors.map(errorText).join('; ');
  const code = (err as { code?: unknown } | null)?.code;
  if (text === '' && typeof code === 'string') text = code;
  return (state === undefined ? text : `${state} ${text}`).replace(/\s*\n\s*/g, ' ');
}

/** Text PostgreSQL can hold: it refuses NUL in text; U+FFFD stands in for it. */
function storable(text: string): string {
  return text.includes('\u0000') ? text.replace(/\u0000/g, '\uFFFD') : text;
}

/** A double-quoted SQL identifier (config already limits the schema to [a-z0-9_]; quoted all the same). */
function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** The advisory lock of one schema's migrations: a stable 64-bit hash of its name (not hashtext, which may change between major versions). */
function migrationLockKey(schema: string): string {
  return createHash('sha256').update(`stratus.archive.migrate:${schema}`).digest().readBigInt64BE(0).toString();
}

/** A client out of the pool, with a listener for errors while it is held (pg-pool listens only while it is idle). */
interface Held {
  client: pg.PoolClient;
  /** Back to the pool; destroyed instead when it may be unusable (a lost socket, a client-side timeout, a failed ROLLBACK). */
  release(destroy: boolean): void;
}

/** Row arrays of one table, one per column (in the unnest statement's order), as it takes them. */
function columnsOf<R>(rows: readonly R[], columns: readonly ((r: R) => unknown)[]): unknown[][] {
  const cols: unknown[][] = columns.map(() => []);
  for (const r of rows) for (let i = 0; i < columns.length; i++) cols[i]!.push(columns[i]!(r));
  return cols;
}

const EVENT_COLUMNS: readonly ((r: ArchivedEvent) => unknown)[] = [(r) => r.deviceId, (r) => r.seq, (r) => r.type, (r) => r.value, (r) => r.payload, (r) => r.sentAtUs, (r) => r.receivedAtUs];
const RESULT_COLUMNS: readonly ((r: ArchivedResult) => unknown)[] = [(r) => r.deviceId, (r) => r.seq, (r) => r.type, (r) => r.value, (r) => r.payload, (r) => r.receivedAtUs, (r) => r.processedAtUs];
const eventColumns = (rows: readonly ArchivedEvent[]): unknown[] => columnsOf(rows, EVENT_COLUMNS);
const resultColumns = (rows: readonly ArchivedResult[]): unknown[] => columnsOf(rows, RESULT_COLUMNS);

/** Dead letters as stored: text made storable (a dead letter is the last record of a row, so it must not itself be refused). */
function deadLetterColumns(rows: readonly DeadLetter[], atUs: number): unknown[] {
  const cols: unknown[][] = [[], [], [], [], [], [], []];
  for (const d of rows) {
    cols[0]!.push(storable(d.topic));
    cols[1]!.push(d.partition);
    cols[2]!.push(d.offset);
    cols[3]!.push(d.item);
    cols[4]!.push(d.deviceId === null ? null : storable(d.deviceId));
    cols[5]!.push(d.seq);
    cols[6]!.push(shortReason(storable(d.reason)));
  }
  return [...cols, atUs];
}

/** Rows written under one savepoint when a batch is written again after a refusal (writeRows). */
const ROWS_PER_SAVEPOINT = 256;

interface HistoryRow {
  seq: number;
  type: string;
  value: number;
  payload: Buffer;
  sent_at_us: number;
  received_at_us: number;
  has_result: boolean;
  r_type: string | null;
  r_value: number | null;
  r_payload: Buffer | null;
  r_processed_at_us: number | null;
}

export class PostgresStore implements ArchiveStore {
  readonly kind = 'postgres' as const;
  readonly where: string;
  private readonly password: string;
  private readonly schema: string;
  /** The statements, with the schema's tables qualified (a search_path set by someone else changes nothing). */
  private readonly sql: {
    insertEvents: string;
    insertResults: string;
    insertDeadLetters: string;
    historyLatest: string;
    historySince: string;
    expire: string;
    counts: string;
    deadLetters: string;
    schemaVersion: string;
  };
  /** Errors of connections not in use (the server restarted, an idle socket dropped), at a bounded rate. */
  private readonly idleErrors = new RateLimitedLog(archiveLog);
  private closing: Promise<void> | null = null;

  private constructor(
    config: Config,
    private readonly pool: pg.Pool,
    target: Target,
  ) {
    this.where = target.where;
    this.password = target.password;
    this.schema = config.archive.postgresSchema;
    const s = quoteIdent(this.schema);
    const historyColumns = `e.seq, e.type, e.value, e.payload, e.sent_at_us, e.received_at_us, r.seq IS NOT NULL AS has_result,
      r.type AS r_type, r.value AS r_value, r.payload AS r_payload, r.processed_at_us AS r_processed_at_us
      FROM ${s}.events e LEFT JOIN ${s}.results r ON r.device_id = e.device_id AND r.seq = e.seq`;
    // Expiry deletes by ctid = ANY(ARRAY(...)): a TID scan of exactly the rows chosen (oldest
    // first through the received_at_us index), never a scan of the table.
    const expireFrom = (table: string) =>
      `DELETE FROM ${s}.${table} WHERE ctid = ANY (ARRAY(SELECT ctid FROM ${s}.${table} WHERE received_at_us < $1 ORDER BY received_at_us LIMIT $2)) RETURNING 1`;
    this.sql = {
      insertEvents: `INSERT INTO ${s}.events (device_id, seq, type, value, payload, sent_at_us, received_at_us)
        SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::float8[], $5::bytea[], $6::bigint[], $7::bigint[])
        ON CONFLICT (device_id, seq) DO NOTHING`,
      insertResults: `INSERT INTO ${s}.results (device_id, seq, type, value, payload, received_at_us, processed_at_us)
        SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::float8[], $5::bytea[], $6::bigint[], $7::bigint[])
        ON CONFLICT (device_id, seq) DO NOTHING`,
      insertDeadLetters: `INSERT INTO ${s}.dead_letters (topic, kafka_partition, kafka_offset, item, device_id, seq, reason, at_us)
        SELECT u.*, $8::bigint FROM unnest($1::text[], $2::int[], $3::bigint[], $4::int[], $5::text[], $6::bigint[], $7::text[]) AS u
        ON CONFLICT (topic, kafka_partition, kafka_offset, item) DO NOTHING`,
      historyLatest: `SELECT * FROM (SELECT ${historyColumns} WHERE e.device_id = $1 ORDER BY e.seq DESC LIMIT $2) h ORDER BY seq`,
      historySince: `SELECT ${historyColumns} WHERE e.device_id = $1 AND e.received_at_us >= $2 ORDER BY e.seq LIMIT $3`,
      expire: `WITH e AS (${expireFrom('events')}), r AS (${expireFrom('results')}) SELECT (SELECT count(*) FROM e) + (SELECT count(*) FROM r) AS n`,
      counts: `SELECT (SELECT count(*) FROM ${s}.events) AS events, (SELECT count(*) FROM ${s}.results) AS results, (SELECT count(*) FROM ${s}.dead_letters) AS dead_letters`,
      deadLetters: `SELECT topic, kafka_partition, kafka_offset, item, device_id, seq, reason FROM ${s}.dead_letters
        ORDER BY topic, kafka_partition, kafka_offset, item LIMIT $1`,
      schemaVersion: `SELECT coalesce(max(version), 0) AS version FROM ${s}.stratus_schema_version`,
    };
  }

  /**
   * Connects, creates the schema if missing and migrates it (schema.ts). Rejects with
   * ARCHIVE_UNAVAILABLE (retryable) when the server does not answer within archive.connectTimeoutMs,
   * and ARCHIVE_SCHEMA_UNKNOWN when the database was written by a newer Stratus.
   */
  static async open(config: Config): Promise<PostgresStore> {
    const a = config.archive;
    const pool = new pg.Pool({
      connectionString: a.postgresUrl,
      max: a.postgresConnectionsMax,
      // Bounds a new connection's handshake and a wait for a free client alike.
      connectionTimeoutMillis: a.connectTimeoutMs,
      // Server-side: a statement past it is cancelled (57014) and the connection stays usable.
      statement_timeout: a.statementTimeoutMs,
      // Client-side backstop for a server that stops answering altogether (a partition, no RST),
      // which statement_timeout cannot catch; later than it, so the server's clearer error comes first.
      query_timeout: a.statementTimeoutMs + a.connectTimeoutMs,
      // A transaction left open by a stalled engine must not hold its row locks for ever.
      idle_in_transaction_session_timeout: a.statementTimeoutMs + a.connectTimeoutMs,
      // Names the engine in pg_stat_activity (the server truncates it to 63 bytes).
      application_name: `stratus archive ${config.instanceId}`,
      // TCP keepalive finds a dead peer under an idle connection before a write waits on it.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      // An idle connection is closed after 30 s; the archiver writes on one far more often.
      idleTimeoutMillis: 30_000,
      // An open store keeps the process alive until close(), as the engine's other clients do.
      allowExitOnIdle: false,
      types: TYPES,
    });
    const store = new PostgresStore(config, pool, targetOf(a.postgresUrl));
    pool.on('error', (err) => store.idleErrors.warn('idle-error', { where: store.where, err: store.scrub(causeText(err)) }, 'an idle PostgreSQL connection of the archive failed; the pool opens another when needed'));
    try {
      await store.migrate();
    } catch (err) {
      await store.close().catch((closeErr: unknown) => archiveLog.warn({ where: store.where, err: store.scrub(causeText(closeErr)) }, 'closing the archive pool after a failed open failed'));
      throw store.failure('could not be opened', err);
    }
    return store;
  }

  async write(batch: WriteBatch): Promise<WriteOutcome> {
    const atUs = Date.now() * 1000;
    try {
      return await this.transaction((c) => this.writeArrays(c, batch, atUs));
    } catch (err) {
      if (!isRefusal(err)) throw this.failure('could not write a batch', err);
      archiveLog.debug({ where: this.where, err: this.scrub(causeText(err)) }, 'a batch was refused; writing it again row by row');
    }
    try {
      return await this.transaction((c) => this.writeRows(c, batch, atUs));
    } catch (err) {
      throw this.failure('could not write a batch (row by row, after a refused row)', err);
    }
  }

  async history(query: HistoryQuery): Promise<HistoryEntry[]> {
    // No device id with NUL can have been stored (text refuses it): nothing to find, and asking
    // would fail with 22021.
    if (query.deviceId.includes('\u0000')) return [];
    const res = await this.run<HistoryRow>(
      'could not read a history',
      query.sinceUs === undefined ? this.sql.historyLatest : this.sql.historySince,
      query.sinceUs === undefined ? [query.deviceId, query.limit] : [query.deviceId, query.sinceUs, query.limit],
    );
    return res.rows.map((r) => ({
      seq: r.seq,
      type: r.type,
      value: r.value,
      payload: r.payload,
      sentAtUs: r.sent_at_us,
      receivedAtUs: r.received_at_us,
      result: r.has_result ? { type: r.r_type!, value: r.r_value!, payload: r.r_payload!, processedAtUs: r.r_processed_at_us! } : null,
    }));
  }

  async expire(beforeUs: number, rowsMax: number): Promise<number> {
    const res = await this.run<{ n: number }>('could not delete expired rows', this.sql.expire, [beforeUs, rowsMax]);
    return res.rows[0]!.n;
  }

  async counts(): Promise<StoreCounts> {
    const res = await this.run<{ events: number; results: number; dead_letters: number }>('could not count rows', this.sql.counts, []);
    const r = res.rows[0]!;
    return { events: r.events, results: r.results, deadLetters: r.dead_letters };
  }

  async deadLetters(limit: number): Promise<DeadLetter[]> {
    const res = await this.run<DeadLetterRow>('could not read dead letters', this.sql.deadLetters, [limit]);
    return res.rows.map(deadLetterOf);
  }

  async schemaVersion(): Promise<number> {
    const res = await this.run<{ version: number }>('could not read the schema version', this.sql.schemaVersion, []);
    return res.rows[0]!.version;
  }

  /** Ends every connection once those in use are released; a second call waits on the first. */
  close(): Promise<void> {
    this.closing ??= this.pool.end().catch((err: unknown) => {
      throw this.failure('could not be closed cleanly', err);
    });
    return this.closing;
  }

  /**
   * Creates the schema and its version table if missing and applies the migrations above the
   * recorded version, in one transaction under an advisory lock on the schema's name: a second
   * engine opening at once waits on the lock, then finds the schema at the current version. The
   * lock comes before CREATE SCHEMA, which would otherwise race (23505 on pg_namespace).
   */
  private async migrate(): Promise<void> {
    const s = quoteIdent(this.schema);
    await this.transaction(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1::bigint)', [migrationLockKey(this.schema)]);
      // CREATE SCHEMA IF NOT EXISTS checks the database's CREATE privilege even when the schema
      // exists: asked only when it is missing, so a schema a DBA created for us is enough.
      const found = await c.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [this.schema]);
      if (found.rowCount === 0) await c.query(`CREATE SCHEMA ${s}`);
      // The migrations name their tables unqualified: for this transaction, they land in the schema.
      await c.query(`SET LOCAL search_path TO ${s}`);
      await c.query(VERSION_TABLE.postgres);
      const current = (await c.query<{ version: number }>(`SELECT coalesce(max(version), 0) AS version FROM ${s}.stratus_schema_version`)).rows[0]!.version;
      for (const m of migrationsAfter(current, this.where)) {
        for (const statement of m.postgres) await c.query(statement);
        await c.query(`INSERT INTO ${s}.stratus_schema_version (version, summary, applied_at_us) VALUES ($1, $2, $3)`, [m.version, m.summary, Date.now() * 1000]);
        archiveLog.info({ where: this.where, schema: this.schema, version: m.version }, `archive schema migrated: ${m.summary}`);
      }
    });
  }

  /** The whole batch in three statements (one per table). Throws the server's error as it is: write() sorts it. */
  private async writeArrays(c: pg.PoolClient, batch: WriteBatch, atUs: number): Promise<WriteOutcome> {
    let events = 0;
    let results = 0;
    if (batch.events.length > 0) events = (await c.query(this.sql.insertEvents, eventColumns(batch.events))).rowCount ?? 0;
    if (batch.results.length > 0) results = (await c.query(this.sql.insertResults, resultColumns(batch.results))).rowCount ?? 0;
    if (batch.deadLetters.length > 0) await c.query(this.sql.insertDeadLetters, deadLetterColumns(batch.deadLetters, atUs));
    return { events, results, duplicates: batch.events.length - events + batch.results.length - results, deadLetters: [...batch.deadLetters] };
  }

  /**
   * The batch again, through the same statements as writeArrays so that a row is refused here
   * exactly when it was refused there, in chunks of ROWS_PER_SAVEPOINT rows each under a
   * savepoint; a chunk refused is rolled back to its savepoint and written row by row, each row
   * under its own savepoint. A row refused alone is dead-lettered; any other failure aborts the
   * transaction. (Row by row throughout would cost three round trips per row: ~2k rows/s.)
   */
  private async writeRows(c: pg.PoolClient, batch: WriteBatch, atUs: number): Promise<WriteOutcome> {
    const refused: DeadLetter[] = [];
    /** Stored copies of the refused rows' dead letters (device id and seq made storable). */
    const refusedStored: DeadLetter[] = [];
    /** New rows written under one savepoint, or null when one of them was refused (all rolled back; a lone `row` is dead-lettered). */
    const underSavepoint = async (sql: string, values: unknown[], row: ArchivedEvent | ArchivedResult | null): Promise<number | null> => {
      await c.query('SAVEPOINT stratus_rows');
      try {
        const n = (await c.query(sql, values)).rowCount ?? 0;
        await c.query('RELEASE SAVEPOINT stratus_rows');
        return n;
      } catch (err) {
        if (!isRefusal(err)) throw err;
        await c.query('ROLLBACK TO SAVEPOINT stratus_rows');
        if (row !== null) refuse(row, err);
        return null;
      }
    };
    const refuse = (row: ArchivedEvent | ArchivedResult, err: unknown): void => {
      // The dead letter must be storable itself: a device id with NUL is kept with U+FFFD in
      // its place, a seq that is no BIGINT as null, and the reason says so. The outcome names
      // the row as the batch gave it.
      const deviceId = storable(row.deviceId);
      const seq = Number.isSafeInteger(row.seq) ? row.seq : null;
      const notes = [deviceId === row.deviceId ? '' : 'device id stored with U+FFFD for each NUL', seq === row.seq ? '' : 'seq not stored'].filter((n) => n !== '');
      const reason = shortReason(`${causeText(err)}${notes.length === 0 ? '' : ` (${notes.join('; ')})`}`);
      refused.push({ ...row.origin, deviceId: row.deviceId, seq: row.seq, reason });
      refusedStored.push({ ...row.origin, deviceId, seq, reason });
    };
    const table = async <R extends ArchivedEvent | ArchivedResult>(sql: string, rows: readonly R[], columns: (rows: readonly R[]) => unknown[]): Promise<number> => {
      let written = 0;
      for (let from = 0; from < rows.length; from += ROWS_PER_SAVEPOINT) {
        const chunk = rows.slice(from, from + ROWS_PER_SAVEPOINT);
        const n = await underSavepoint(sql, columns(chunk), chunk.length === 1 ? chunk[0]! : null);
        if (n !== null) {
          written += n;
          continue;
        }
        if (chunk.length === 1) continue;
        for (const row of chunk) written += (await underSavepoint(sql, columns([row]), row)) ?? 0;
      }
      return written;
    };
    const events = await table(this.sql.insertEvents, batch.events, eventColumns);
    const results = await table(this.sql.insertResults, batch.results, resultColumns);
    for (const d of [...batch.deadLetters, ...refusedStored]) await this.writeDeadLetter(c, d, atUs);
    return {
      events,
      results,
      duplicates: batch.events.length + batch.results.length - refused.length - events - results,
      deadLetters: [...batch.deadLetters, ...refused],
    };
  }

  /**
   * One dead letter under a savepoint. Its text is already storable; should the server refuse it
   * anyway (a partition or offset out of range), the Kafka position is kept with a reason saying
   * why the rest was not, and only a refusal of that too fails the batch (not retryable: the same
   * batch would be refused again).
   */
  private async writeDeadLetter(c: pg.PoolClient, d: DeadLetter, atUs: number): Promise<void> {
    await c.query('SAVEPOINT stratus_row');
    try {
      await c.query(this.sql.insertDeadLetters, deadLetterColumns([d], atUs));
    } catch (err) {
      if (!isRefusal(err)) throw err;
      await c.query('ROLLBACK TO SAVEPOINT stratus_row');
      const reason = shortReason(`dead letter refused (${causeText(err)}); its reason was: ${d.reason}`);
      archiveLog.warn({ where: this.where, topic: d.topic, partition: d.partition, offset: d.offset, item: d.item, err: this.scrub(causeText(err)) }, 'a dead letter was refused; kept without its device id and seq');
      try {
        await c.query(this.sql.insertDeadLetters, deadLetterColumns([{ ...d, deviceId: null, seq: null, reason }], atUs));
      } catch (again) {
        throw isRefusal(again)
          ? new StratusError(ErrorCode.ARCHIVE_UNAVAILABLE, `PostgreSQL at ${this.where} refused the dead letter of ${d.topic}/${d.partition}@${d.offset}#${d.item}: ${this.scrub(causeText(again))}`, { retryable: false, cause: again })
          : again;
      }
    }
    await c.query('RELEASE SAVEPOINT stratus_row');
  }

  /** One statement on a pooled connection, its failure as ARCHIVE_UNAVAILABLE. */
  private async run<R extends pg.QueryResultRow>(what: string, sql: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    let held: Held;
    try {
      held = await this.checkout();
    } catch (err) {
      throw this.failure(what, err);
    }
    try {
      const res = await held.client.query<R>(sql, values);
      held.release(false);
      return res;
    } catch (err) {
      held.release(sqlState(err) === undefined);
      throw this.failure(what, err);
    }
  }

  /**
   * body in BEGIN ... COMMIT on one connection; on any failure ROLLBACK and the error rethrown as
   * it came (the caller decides what it means). A connection whose socket failed or whose
   * ROLLBACK failed is destroyed rather than returned to the pool.
   */
  private async transaction<T>(body: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const held = await this.checkout();
    try {
      await held.client.query('BEGIN');
      const out = await body(held.client);
      await held.client.query('COMMIT');
      held.release(false);
      return out;
    } catch (err) {
      let destroy = sqlState(err) === undefined && !(err instanceof StratusError);
      if (!destroy) {
        try {
          await held.client.query('ROLLBACK');
        } catch (rollbackErr) {
          // The transaction's error is the one reported; this connection is dropped so the pool
          // never hands out one stuck in a transaction.
          archiveLog.debug({ where: this.where, err: this.scrub(causeText(rollbackErr)) }, 'ROLLBACK failed; the connection is dropped');
          destroy = true;
        }
      }
      // A destroyed connection ends its transaction on the server: nothing of it is committed.
      held.release(destroy);
      throw err;
    }
  }

  private async checkout(): Promise<Held> {
    const client = await this.pool.connect();
    // While held, pg-pool does not listen for the client's errors; one between two statements
    // (the socket dropped) would otherwise be an unhandled 'error' event. The statement in flight,
    // if any, fails with it too, and that failure is what the caller reports.
    const onError = (err: Error) => this.idleErrors.warn('held-error', { where: this.where, err: this.scrub(causeText(err)) }, 'a PostgreSQL connection of the archive failed while in use');
    client.on('error', onError);
    return {
      client,
      release: (destroy) => {
        // A destroyed client keeps the listener: its socket may still report an error while closing.
        if (!destroy) client.off('error', onError);
        client.release(destroy);
      },
    };
  }

  /**
   * Any failure as a StratusError: those already one pass through (ARCHIVE_SCHEMA_UNKNOWN);
   * everything else is ARCHIVE_UNAVAILABLE in one line naming the server and the cause. Retryable
   * but for a refused login (class 28), which stays refused until the configuration changes.
   */
  private failure(what: string, err: unknown): StratusError {
    if (err instanceof StratusError) return err;
    const state = sqlState(err);
    const auth = state?.startsWith('28') === true;
    const fix = state === undefined
      ? '; start it (`npx stratus stack up --postgres` runs one locally) or set archive.postgresUrl (STRATUS_ARCHIVE_POSTGRES_URL)'
      : auth ? '; set the user and password of archive.postgresUrl (STRATUS_ARCHIVE_POSTGRES_URL)' : '';
    return new StratusError(ErrorCode.ARCHIVE_UNAVAILABLE, `PostgreSQL at ${this.where} ${what}: ${this.scrub(causeText(err))}${fix}`, { retryable: !auth, cause: err });
  }

  /** Text with the URL's password, should a driver message ever quote it, masked. */
  private scrub(text: string): string {
    return this.password === '' ? text : text.split(this.password).join('***');
  }
}
