/**
 * The store as a process that does not depend on it for its main job holds it: opened on first
 * use, and opened again on the next call after an open failed, so that the archive's database down
 * when the engine starts costs the history route and the archiver's progress (both say so: 503,
 * /readyz degraded, the lag), not the engine's start. ARCHIVE_SCHEMA_UNKNOWN is never retried
 * here: the caller checks the schema at start (open(), which throws it) and refuses to start.
 */
import type { Config } from '../config.js';
import { ErrorCode, StratusError } from '../errors.js';
import { openStore } from './open-store.js';
import { storeWhere } from './store-where.js';
import type { ArchiveStore, DeadLetter, HistoryEntry, HistoryQuery, StoreCounts, StoreKind, WriteBatch, WriteOutcome } from './store.js';

export class ReopeningStore implements ArchiveStore {
  readonly kind: StoreKind;
  readonly where: string;
  private store: ArchiveStore | null = null;
  /** Invariant: at most one open in flight; null when none is. */
  private opening: Promise<ArchiveStore> | null = null;
  private closed = false;

  constructor(private readonly config: Config) {
    if (config.archive.store === 'off') throw new StratusError(ErrorCode.ARCHIVE_OFF, 'archive.store is off');
    this.kind = config.archive.store;
    this.where = storeWhere(config);
  }

  /**
   * Opens it now: resolves once open; rejects with the open's error (ARCHIVE_UNAVAILABLE: the next
   * call tries again; ARCHIVE_SCHEMA_UNKNOWN: the caller must not start).
   */
  async open(): Promise<void> {
    await this.get();
  }

  private async get(): Promise<ArchiveStore> {
    if (this.closed) throw new StratusError(ErrorCode.ARCHIVE_UNAVAILABLE, `${this.kind} at ${this.where}: the store is closed`);
    if (this.store !== null) return this.store;
    this.opening ??= openStore(this.config).finally(() => (this.opening = null));
    const store = await this.opening;
    if (this.closed) {
      await store.close();
      throw new StratusError(ErrorCode.ARCHIVE_UNAVAILABLE, `${this.kind} at ${this.where}: the store is closed`);
    }
    this.store = store;
    return store;
  }

  async write(batch: WriteBatch): Promise<WriteOutcome> {
    return (await this.get()).write(batch);
  }

  async history(query: HistoryQuery): Promise<HistoryEntry[]> {
    return (await this.get()).history(query);
  }

  async expire(beforeUs: number, rowsMax: number): Promise<number> {
    return (await this.get()).expire(beforeUs, rowsMax);
  }

  async counts(): Promise<StoreCounts> {
    return (await this.get()).counts();
  }

  async deadLetters(limit: number): Promise<DeadLetter[]> {
    return (await this.get()).deadLetters(limit);
  }

  async schemaVersion(): Promise<number> {
    return (await this.get()).schemaVersion();
  }

  async close(): Promise<void> {
    this.closed = true;
    // An open in flight finishes first: what it opened is closed too.
    await this.opening?.catch(() => {
      // It failed: nothing was opened, nothing to close.
    });
    await this.store?.close();
    this.store = null;
  }
}
