/**
 * A device's archived history as `stratus query` and GET /v1/devices/{id}/history give it: the
 * same `since` and `limit` rules, the same JSON, so a script can switch between the two.
 *
 *   since   an ISO 8601 time (`2026-12-05T10:00:00Z`; a date alone is midnight UTC) or a Go
 *           duration meaning that long ago (`15m`, `2h`, `168h`): events received at or after it,
 *           oldest first. Absent: the device's latest `limit` events, oldest first.
 *   limit   1..archive.historyLimitMax events (default 100); `more: true` when that many came back
 *           (ask again with a later since).
 *
 * JSON: { deviceId, store, events: [ { seq, type, value, payload (base64), sentAtUs, receivedAtUs,
 * receivedAt (ISO), result: { type, value, payload, processedAtUs } | null, latencyMs: { uplink,
 * processing } } ], more }. uplink = device send -> gateway receive (device clocks drift: can be
 * negative; null when the device sent no sentAtUs); processing = gateway receive -> result computed. Non-finite values are the strings
 * "Infinity", "-Infinity", "NaN" (as on SSE), which Number() reads back.
 */
import { ErrorCode, StratusError } from '../errors.js';
import { parseDuration } from '../cli/duration.js';
import type { HistoryEntry } from './store.js';

export const HISTORY_LIMIT_DEFAULT = 100;

/** `since` as µs since the epoch; throws REQUEST_INVALID naming what is taken. */
export function parseSince(text: string, nowMs: number = Date.now()): number {
  const t = text.trim();
  const d = parseDuration(t);
  if (d.ok) {
    if (d.ns < 0n) throw new StratusError(ErrorCode.REQUEST_INVALID, `since: a duration means that long ago and must not be negative (got ${JSON.stringify(text)})`);
    return nowMs * 1000 - Number(d.ns / 1000n);
  }
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(t)) {
    // A date alone, or a time without a zone, is read as UTC (Date reads the latter as local time).
    const iso = t.length === 10 ? `${t}T00:00:00Z` : /(Z|[+-]\d{2}:?\d{2})$/.test(t) ? t.replace(' ', 'T') : `${t.replace(' ', 'T')}Z`;
    const ms = Date.parse(iso);
    if (Number.isFinite(ms)) return ms * 1000;
  }
  throw new StratusError(ErrorCode.REQUEST_INVALID, `since must be an ISO 8601 time (2026-12-05T10:00:00Z) or a duration ago (15m, 2h, 168h) (got ${JSON.stringify(text.slice(0, 64))})`);
}

export function parseLimit(text: string | undefined, limitMax: number): number {
  if (text === undefined) return Math.min(HISTORY_LIMIT_DEFAULT, limitMax);
  const n = /^\d{1,9}$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > limitMax) throw new StratusError(ErrorCode.REQUEST_INVALID, `limit must be a whole number from 1 to ${limitMax} (archive.historyLimitMax) (got ${JSON.stringify(text.slice(0, 32))})`);
  return n;
}

/** Device send -> gateway receive; null when the device did not say when it sent (sentAtUs 0). */
const uplinkMs = (e: HistoryEntry): number | null => (e.sentAtUs === 0 ? null : (e.receivedAtUs - e.sentAtUs) / 1000);
const jsonNumber = (v: number): number | string => (Number.isFinite(v) ? v : String(v));
const base64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');

export function historyJson(deviceId: string, store: string, entries: readonly HistoryEntry[], limit: number): object {
  return {
    deviceId,
    store,
    events: entries.map((e) => ({
      seq: e.seq,
      type: e.type,
      value: jsonNumber(e.value),
      payload: base64(e.payload),
      sentAtUs: e.sentAtUs,
      receivedAtUs: e.receivedAtUs,
      receivedAt: new Date(e.receivedAtUs / 1000).toISOString(),
      result: e.result === null ? null : { type: e.result.type, value: jsonNumber(e.result.value), payload: base64(e.result.payload), processedAtUs: e.result.processedAtUs },
      latencyMs: { uplink: uplinkMs(e), processing: e.result === null ? null : (e.result.processedAtUs - e.receivedAtUs) / 1000 },
    })),
    more: entries.length === limit,
  };
}

/** The table `stratus query` prints. */
export function historyTable(deviceId: string, entries: readonly HistoryEntry[], limit: number): string {
  if (entries.length === 0) return `no archived events for device ${JSON.stringify(deviceId)}\n`;
  const rows = entries.map((e) => [
    String(e.seq),
    new Date(e.receivedAtUs / 1000).toISOString().replace('T', ' ').replace('Z', ''),
    e.type,
    String(e.value),
    e.result === null ? '(none yet)' : String(e.result.value),
    e.sentAtUs === 0 ? '' : uplinkMs(e)!.toFixed(1),
    e.result === null ? '' : `${((e.result.processedAtUs - e.receivedAtUs) / 1000).toFixed(1)}`,
  ]);
  const head = ['seq', 'received (UTC)', 'type', 'value', 'result', 'uplink ms', 'processing ms'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const more = entries.length === limit ? `\n(${limit} shown: the limit; ask with --since or a larger --limit for more)\n` : '\n';
  return [line(head), ...rows.map(line)].join('\n') + more;
}
