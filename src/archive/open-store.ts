/**
 * Opens the store archive.store names: the module of the one chosen is imported only then, so a
 * process without an archive never loads better-sqlite3 or pg. Opening creates or migrates the
 * schema (schema.ts).
 */
import type { Config } from '../config.js';
import { ErrorCode, StratusError } from '../errors.js';
import type { ArchiveStore } from './store.js';

export async function openStore(config: Config): Promise<ArchiveStore> {
  switch (config.archive.store) {
    case 'off':
      throw new StratusError(ErrorCode.ARCHIVE_OFF, 'archive.store is off: set it to sqlite (a file under dataDir, no server) or postgres (archive.postgresUrl) with --archive-store or STRATUS_ARCHIVE_STORE');
    case 'sqlite':
      return (await import('./sqlite-store.js')).SqliteStore.open(config);
    case 'postgres':
      return (await import('./postgres-store.js')).PostgresStore.open(config);
  }
}
