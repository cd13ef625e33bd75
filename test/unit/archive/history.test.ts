import assert from 'node:assert/strict';
import { test } from 'node:test';
import { historyJson, historyTable, parseLimit, parseSince } from '../../../src/archive/history.js';
import { ErrorCode, StratusError } from '../../../src/errors.js';

const NOW_MS = Date.parse('2026-12-05T12:00:00Z');

test('since: ISO 8601 times (UTC without a zone, a date alone at midnight) and Go durations ago', () => {
  assert.equal(parseSince('2026-12-05T10:00:00Z', NOW_MS), Date.parse('2026-12-05T10:00:00Z') * 1000);
  assert.equal(parseSince('2026-12-05T10:00:00', NOW_MS), Date.parse('2026-12-05T10:00:00Z') * 1000);
  assert.equal(parseSince('2026-12-05 10:00:00.250', NOW_MS), Date.parse('2026-12-05T10:00:00.250Z') * 1000);
  assert.equal(parseSince('2026-12-05T11:00:00+01:00', NOW_MS), Date.parse('2026-12-05T10:00:00Z') * 1000);
  assert.equal(parseSince('2026-12-05', NOW_MS), Date.parse('2026-12-05T00:00:00Z') * 1000);
  assert.equal(parseSince('15m', NOW_MS), (NOW_MS - 15 * 60_000) * 1000);
  assert.equal(parseSince('1h30m', NOW_MS), (NOW_MS - 90 * 60_000) * 1000);
  assert.equal(parseSince('0', NOW_MS), NOW_MS * 1000);
  for (const bad of ['yesterday', '15', '1d', '2026-13-45T99:00:00Z', '-5m', '']) {
    assert.throws(() => parseSince(bad, NOW_MS), (err: unknown) => err instanceof StratusError && err.code === ErrorCode.REQUEST_INVALID, bad);
  }
});

test('limit: 1..historyLimitMax, default 100 (or the max when lower)', () => {
  assert.equal(parseLimit(undefined, 1000), 100);
  assert.equal(parseLimit(undefined, 10), 10);
  assert.equal(parseLimit('1', 1000), 1);
  assert.equal(parseLimit('1000', 1000), 1000);
  for (const bad of ['0', '1001', '-1', '1.5', 'ten', '']) assert.throws(() => parseLimit(bad, 1000), /limit must be a whole number from 1 to 1000/, bad);
});

const entries = [
  { seq: 1, type: 'sq', value: 3, payload: Buffer.from('ab'), sentAtUs: 1_000_000, receivedAtUs: 1_002_500, result: { type: 'sq', value: 9, payload: Buffer.from('ab'), processedAtUs: 1_010_500 } },
  { seq: 2, type: 'sq', value: 1e200, payload: Buffer.alloc(0), sentAtUs: 2_000_000, receivedAtUs: 2_001_000, result: { type: 'sq', value: Infinity, payload: Buffer.alloc(0), processedAtUs: 2_002_000 } },
  { seq: 3, type: 'sq', value: 4, payload: Buffer.alloc(0), sentAtUs: 0, receivedAtUs: 3_000_000, result: null },
];

test('the JSON: base64 payloads, latencies in ms, non-finite values as strings, more when the limit was reached', () => {
  const j = historyJson('dev-1', 'sqlite', entries, 3) as { deviceId: string; store: string; more: boolean; events: Record<string, unknown>[] };
  assert.equal(j.deviceId, 'dev-1');
  assert.equal(j.store, 'sqlite');
  assert.equal(j.more, true);
  assert.deepEqual(j.events[0], {
    seq: 1, type: 'sq', value: 3, payload: 'YWI=', sentAtUs: 1_000_000, receivedAtUs: 1_002_500, receivedAt: new Date(1002.5).toISOString(),
    result: { type: 'sq', value: 9, payload: 'YWI=', processedAtUs: 1_010_500 }, latencyMs: { uplink: 2.5, processing: 8 },
  });
  assert.equal((j.events[1]!.result as { value: unknown }).value, 'Infinity');
  assert.deepEqual(j.events[2]!.result, null);
  assert.deepEqual(j.events[2]!.latencyMs, { uplink: null, processing: null }, 'a device that did not say when it sent has no uplink latency');
  assert.equal((historyJson('dev-1', 'sqlite', entries, 4) as { more: boolean }).more, false);
  // What JSON.parse gives back is what was meant.
  assert.equal(Number(JSON.parse(JSON.stringify(j)).events[1].result.value), Infinity);
});

test('the table: one line per event, results and latencies, and a note when the limit cut it', () => {
  const text = historyTable('dev-1', entries, 3);
  const lines = text.trim().split('\n');
  assert.match(lines[0]!, /^seq\s+received \(UTC\)\s+type\s+value\s+result\s+uplink ms\s+processing ms$/);
  assert.match(lines[1]!, /^1\s+1970-01-01 00:00:01\.002\s+sq\s+3\s+9\s+2\.5\s+8\.0$/);
  assert.match(lines[3]!, /^3\s.*\(none yet\)$/);
  assert.match(text, /3 shown: the limit/);
  assert.equal(historyTable('nobody', [], 10), 'no archived events for device "nobody"\n');
});
