/**
 * Where the configured store is, for logs, errors and /readyz, worked out from the Config alone:
 * nothing here opens anything or loads a driver.
 */
import { join } from 'node:path';
import type { Config } from '../config.js';

/** The SQLite file: archive.sqlitePath, or archive.sqlite in dataDir. */
export function sqlitePath(config: Config): string {
  return config.archive.sqlitePath !== '' ? config.archive.sqlitePath : join(config.dataDir, 'archive.sqlite');
}

export interface Target {
  /** host:port/database, for messages (never the user's password). */
  where: string;
  /** The URL's password, to scrub from any message that might quote it. */
  password: string;
}

/** host:port/database of a postgres:// URL, and its password; a URL that does not parse is left to pg. */
export function targetOf(url: string): Target {
  try {
    const u = new URL(url);
    const host = u.searchParams.get('host') ?? (u.hostname === '' ? 'localhost' : u.hostname);
    const port = u.searchParams.get('port') ?? (u.port === '' ? '5432' : u.port);
    const database = decodeURIComponent(u.pathname.replace(/^\//, '')) || decodeURIComponent(u.username) || 'postgres';
    return { where: `${host}:${port}/${database}`, password: decodeURIComponent(u.password) };
  } catch {
    // Not a WHATWG URL (pg also takes `socket:` and key=value forms): named by the option instead;
    // pg itself reports whatever is wrong with it at connect.
    return { where: '(archive.postgresUrl)', password: '' };
  }
}

/** The file, or host:port/database, of the store archive.store names. */
export function storeWhere(config: Config): string {
  return config.archive.store === 'postgres' ? targetOf(config.archive.postgresUrl).where : sqlitePath(config);
}
