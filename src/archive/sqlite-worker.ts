/**
 * The SQLite archive's thread: owns the one connection (sqlite-db.ts) and runs the calls
 * sqlite-store.ts posts, one at a time, in order. A write of thousands of rows holds this thread
 * for tens of milliseconds, never the engine's event loop.
 *
 *   in:  { id, op, args }                      op: a SqliteDb method
 *   out: { id, ok: true, value }  |  { id, ok: false, error: { code, message, retryable } }
 *   first message out: { ready: true } or { ready: false, error } (the open failed)
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isStratusError } from '../errors.js';
import { SqliteDb } from './sqlite-db.js';

export interface SqliteWorkerData {
  path: string;
  busyTimeoutMs: number;
}

export type SqliteOp = 'write' | 'history' | 'expire' | 'counts' | 'deadLetters' | 'schemaVersion';

export interface SqliteCall {
  id: number;
  op: SqliteOp | 'close';
  args: unknown[];
}

export interface SqliteFailure {
  code: string;
  message: string;
  retryable: boolean;
}

export type SqliteReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: SqliteFailure };

function failureOf(err: unknown): SqliteFailure {
  if (isStratusError(err)) return { code: err.code, message: err.message, retryable: err.retryable };
  // A programmer error (a bad argument): said as it is, not retried.
  return { code: 'INTERNAL', message: err instanceof Error ? (err.stack ?? err.message) : String(err), retryable: false };
}

const port = parentPort!;
const data = workerData as SqliteWorkerData;
let db: SqliteDb;
try {
  db = new SqliteDb(data.path, data.busyTimeoutMs);
  port.postMessage({ ready: true });
} catch (err) {
  port.postMessage({ ready: false, error: failureOf(err) });
  process.exit(0);
}

port.on('message', (call: SqliteCall) => {
  if (call.op === 'close') {
    db.close();
    port.postMessage({ id: call.id, ok: true, value: null } satisfies SqliteReply);
    port.close();
    return;
  }
  try {
    const value = (db[call.op] as (...a: unknown[]) => unknown).apply(db, call.args);
    port.postMessage({ id: call.id, ok: true, value } satisfies SqliteReply);
  } catch (err) {
    port.postMessage({ id: call.id, ok: false, error: failureOf(err) } satisfies SqliteReply);
  }
});
