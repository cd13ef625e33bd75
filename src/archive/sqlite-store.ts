/**
 * The embedded store: SQLite in one file (archive.sqlitePath; empty: <dataDir>/archive.sqlite),
 * no server. The connection lives on a worker thread (sqlite-worker.ts), so a batch write never
 * holds the engine's event loop; this class posts each call there and waits for its reply.
 *
 * Calls in flight: the archiver has one at a time; history reads one per HTTP connection at most
 * (http.connectionsMax), so the worker's queue is bounded by those. A worker that dies (it should
 * not) fails the calls it held with ARCHIVE_UNAVAILABLE; the next call starts a new one.
 */
import { Worker } from 'node:worker_threads';
import type { Config } from '../config.js';
import { ErrorCode, StratusError, type ErrorCode as Code } from '../errors.js';
import { sqlitePath } from './store-where.js';
import type { SqliteCall, SqliteFailure, SqliteOp, SqliteReply, SqliteWorkerData } from './sqlite-worker.js';
import type { ArchiveStore, DeadLetter, HistoryEntry, HistoryQuery, StoreCounts, WriteBatch, WriteOutcome } from './store.js';


function errorOf(f: SqliteFailure): Error {
  if (f.code.startsWith('STRATUS_')) return new StratusError(f.code as Code, f.message, { retryable: f.retryable });
  return new Error(`SQLite archive worker: ${f.message}`);
}

export class SqliteStore implements ArchiveStore {
  readonly kind = 'sqlite' as const;
  private worker: Worker | null;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private closed = false;

  private constructor(
    readonly where: string,
    private readonly data: SqliteWorkerData,
    worker: Worker,
  ) {
    this.worker = worker;
    this.watch(worker);
  }

  static async open(config: Config): Promise<SqliteStore> {
    const data: SqliteWorkerData = { path: sqlitePath(config), busyTimeoutMs: config.archive.statementTimeoutMs };
    return new SqliteStore(data.path, data, await SqliteStore.spawn(data));
  }

  /** A worker that has opened (and migrated) the file; rejects with what the open failed on. */
  private static spawn(data: SqliteWorkerData): Promise<Worker> {
    const worker = new Worker(new URL('./sqlite-worker.js', import.meta.url), { workerData: data });
    return new Promise<Worker>((resolve, reject) => {
      const onExit = (code: number) => reject(new StratusError(ErrorCode.ARCHIVE_UNAVAILABLE, `SQLite at ${data.path}: the archive's thread exited (code ${code}) while opening`, { retryable: true }));
      worker.once('error', (err) => reject(new StratusError(ErrorCode.ARCHIVE_UNAVAILABLE, `SQLite at ${data.path}: the archive's thread failed while opening: ${err.message}`, { retryable: true, cause: err })));
      worker.once('exit', onExit);
      worker.once('message', (m: { ready: boolean; error?: SqliteFailure }) => {
        worker.off('exit', onExit);
        if (m.ready) resolve(worker);
        else {
          void worker.terminate();
          reject(errorOf(m.error!));
        }
      });
    });
  }

  private watch(worker: Worker): void {
    worker.on('message', (reply: SqliteReply) => {
      const p = this.pending.get(reply.id);
      if (p === undefined) return;
      this.pending.delete(reply.id);
      if (reply.ok) p.resolve(reply.value);
      else p.reject(errorOf(reply.error));
    });
    const lost = (why: string) => {
      if (this.worker === worker) this.worker = null;
      for (const [id, p] of this.pending) {
        this.pending.delete(id);
        p.reject(new StratusError(ErrorCode.ARCHIVE_UNAVAILABLE, `SQLite at ${this.where}: ${why}`, { retryable: true }));
      }
    };
    worker.on('error', (err) => lost(`the archive's thread failed: ${err.message}`));
    worker.on('exit', (code) => lost(`the archive's thread exited (code ${code})`));
  }

  private async call<T>(op: SqliteOp | 'close', args: unknown[]): Promise<T> {
    if (this.closed && op !== 'close') throw new StratusError(ErrorCode.ARCHIVE_UNAVAILABLE, `SQLite at ${this.where}: the store is closed`);
    if (this.worker === null) {
      this.worker = await SqliteStore.spawn(this.data);
      this.watch(this.worker);
    }
    const id = this.nextId++;
    const worker = this.worker;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      worker.postMessage({ id, op, args } satisfies SqliteCall);
    });
  }

  write(batch: WriteBatch): Promise<WriteOutcome> {
    return this.call('write', [batch]);
  }

  async history(query: HistoryQuery): Promise<HistoryEntry[]> {
    return this.call('history', [query]);
  }

  expire(beforeUs: number, rowsMax: number): Promise<number> {
    return this.call('expire', [beforeUs, rowsMax]);
  }

  counts(): Promise<StoreCounts> {
    return this.call('counts', []);
  }

  deadLetters(limit: number): Promise<DeadLetter[]> {
    return this.call('deadLetters', [limit]);
  }

  schemaVersion(): Promise<number> {
    return this.call('schemaVersion', []);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const worker = this.worker;
    if (worker === null) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    await this.call('close', []).catch(() => {
      // The thread is gone already: nothing of it to close.
    });
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000).unref())]);
    await worker.terminate();
  }
}
