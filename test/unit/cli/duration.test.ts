/**
 * src/cli/duration.ts: Go's time.ParseDuration grammar, and the one-line refusals of a duration flag.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDuration, parseDurationFlagS } from '../../../src/cli/duration.js';
import { ErrorCode, StratusError } from '../../../src/errors.js';

/**
 * Each input and what Go 1.26's time.ParseDuration answers for it, in nanoseconds (null: an
 * error). The right-hand column was produced by running Go on the left-hand one, not typed in.
 */
const GO: readonly [string, bigint | null][] = [
  ["250ms", 250000000n],
  ["90s", 90000000000n],
  ["2m", 120000000000n],
  ["1h30m", 5400000000000n],
  ["1m30.5s", 90500000000n],
  ["1.5s", 1500000000n],
  [".5s", 500000000n],
  ["1.s", 1000000000n],
  ["500us", 500000n],
  ["500µs", 500000n],
  ["500μs", 500000n],
  ["1ns", 1n],
  ["0", 0n],
  ["0s", 0n],
  ["-0", 0n],
  ["+0", 0n],
  ["+5s", 5000000000n],
  ["-1.5h", -5400000000000n],
  ["30s1h", 3630000000000n],
  ["1s1s", 2000000000n],
  ["2h45m30.5s", 9930500000000n],
  ["0.000000001s", 1n],
  ["0.0000000001s", 0n],
  ["1.0000000001s", 1000000000n],
  ["9223372036s", 9223372036000000000n],
  ["9223372037s", null],
  ["2562047h", 9223369200000000000n],
  ["2562048h", null],
  ["2562047h47m16.854775807s", 9223372036854775807n],
  ["2562047h47m16.854775808s", null],
  ["-2562047h47m16.854775808s", -9223372036854775808n],
  ["1.123456789123456789123s", 1123456789n],
  ["0.1h", 360000000000n],
  ["0.3333333333333333333h", 1200000000000n],
  ["90", null],
  ["1.5", null],
  [".5", null],
  ["-", null],
  ["+", null],
  [".", null],
  [".s", null],
  ["s", null],
  ["ms", null],
  ["1", null],
  ["5 s", null],
  [" 5s", null],
  ["5s ", null],
  ["1d", null],
  ["1H", null],
  ["1S", null],
  ["1sec", null],
  ["1m1", null],
  ["5weeks", null],
  ["1h-30m", null],
  ["1h+30m", null],
  ["--1s", null],
  ["1e3s", null],
  ["0x10s", null],
  ["١s", null],
  ["abc", null],
  ["", null],
];

test('parseDuration answers as Go\'s time.ParseDuration for every input of the table', () => {
  for (const [input, ns] of GO) {
    const p = parseDuration(input);
    assert.deepEqual(p.ok ? p.ns : null, ns, JSON.stringify(input));
  }
});

test('what a refusal says is wrong: no unit, an unknown unit, or not a duration at all', () => {
  assert.deepEqual(parseDuration('90'), { ok: false, problem: 'missing unit' });
  assert.deepEqual(parseDuration('1d'), { ok: false, problem: 'unknown unit', unit: 'd' });
  assert.deepEqual(parseDuration('1sec'), { ok: false, problem: 'unknown unit', unit: 'sec' });
  assert.deepEqual(parseDuration('abc'), { ok: false, problem: 'invalid' });
  assert.deepEqual(parseDuration(''), { ok: false, problem: 'invalid' });
  assert.deepEqual(parseDuration('2562048h'), { ok: false, problem: 'invalid' });
});

test('a duration flag in seconds: the forms ghz and k6 users type', () => {
  const cases: [string, number][] = [
    ['250ms', 0.25],
    ['90s', 90],
    ['2m', 120],
    ['1h30m', 5400],
    ['1m30.5s', 90.5],
    ['1.5s', 1.5],
    ['500us', 0.0005],
    ['720h', 2_592_000],
  ];
  for (const [raw, s] of cases) assert.equal(parseDurationFlagS('--duration', raw, false), s, raw);
  assert.equal(parseDurationFlagS('--warmup', '0', true), 0);
  assert.equal(parseDurationFlagS('--warmup', '0s', true), 0);
});

test('a refused duration flag: StratusError(USAGE), one line naming the flag, the value and the fix', () => {
  const cases: [string, boolean, string][] = [
    ['90', false, '--duration must be a duration like 30s, 2m or 500ms above 0 (got "90"): a number needs a unit, e.g. 90s or 90ms'],
    ['1.5', true, '--duration must be a duration like 30s, 2m or 500ms (got "1.5"): a number needs a unit, e.g. 1.5s or 1.5ms'],
    ['5weeks', true, '--duration must be a duration like 30s, 2m or 500ms (got "5weeks"): "weeks" is not a unit; use h, m, s, ms, us or ns, combined as in 1h30m or 1m30.5s'],
    ['1d', true, '--duration must be a duration like 30s, 2m or 500ms (got "1d"): "d" is not a unit (no days: 1d is 24h); use h, m, s, ms, us or ns, combined as in 1h30m or 1m30.5s'],
    ['abc', true, '--duration must be a duration like 30s, 2m or 500ms (got "abc"); Go\'s format: 250ms, 90s, 1h30m, 1m30.5s'],
    ['', true, '--duration must be a duration like 30s, 2m or 500ms (got ""); Go\'s format: 250ms, 90s, 1h30m, 1m30.5s'],
    ['0', false, '--duration must be a duration like 30s, 2m or 500ms above 0 (got "0")'],
    ['0s', false, '--duration must be a duration like 30s, 2m or 500ms above 0 (got "0s")'],
    ['-1s', true, '--duration must be a duration like 30s, 2m or 500ms (got "-1s")'],
  ];
  for (const [raw, allowZero, message] of cases) {
    assert.throws(
      () => parseDurationFlagS('--duration', raw, allowZero),
      (err: unknown) => err instanceof StratusError && err.code === ErrorCode.USAGE && err.message === message && !err.message.includes('\n'),
      `${JSON.stringify(raw)}: ${message}`,
    );
  }
});
