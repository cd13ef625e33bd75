/**
 * Durations on the command line, in Go's time.ParseDuration format: what ghz (a Go program) takes
 * and what k6 takes for its duration options, so `--duration 1h30m` means what a ghz or k6 user
 * expects.
 *
 * Grammar (Go's, src/time/format.go): `[-+]?([0-9]*(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h))+`, each
 * number with at least one digit, or a lone `0` (optionally signed). So `250ms`, `90s`, `2m`,
 * `1h30m`, `1m30.5s`, `1.5s`, `.5s`, `500us`, `0` and `0s` are durations; `90` (no unit), `5 s`,
 * `1d`, `1H`, `s` and `` are not. Like Go, components may come in any order and repeat (`30s1h`).
 *
 * A bare number other than 0 is refused, as Go does: `--duration 30` is ambiguous. k6's
 * ParseExtendedDuration (lib/types) reads it as 30 ms, this command read it as 30 s before, and a
 * load test that silently runs 1000x too long or too short is worse than a one-line error naming
 * both readings. k6's days (`1d12h`) are not taken either (Go has none): the refusal says 1d = 24h.
 */
import { ErrorCode, StratusError } from '../errors.js';

/** Nanoseconds per unit (Go's unitMap). */
const UNIT_NS: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  'µs': 1_000n, // U+00B5 micro sign
  'μs': 1_000n, // U+03BC Greek small letter mu
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

/** Go's Duration is an int64 of nanoseconds: about 292 years. */
const NS_MAX = (1n << 63n) - 1n;

export type DurationParse =
  | { ok: true; ns: bigint }
  | { ok: false; problem: 'invalid' | 'missing unit' | 'unknown unit'; unit?: string };

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';

/** Go's time.ParseDuration, step for step; the result in nanoseconds (negative when signed so). */
export function parseDuration(text: string): DurationParse {
  let s = text;
  let neg = false;
  if (s !== '' && (s[0] === '-' || s[0] === '+')) {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return { ok: true, ns: 0n };
  if (s === '') return { ok: false, problem: 'invalid' };
  let total = 0n;
  while (s !== '') {
    if (!(s[0] === '.' || isDigit(s[0]))) return { ok: false, problem: 'invalid' };
    // [0-9]*
    let i = 0;
    let v = 0n;
    while (isDigit(s[i])) {
      v = v * 10n + BigInt(s.charCodeAt(i) - 48);
      if (v > 1n << 63n) return { ok: false, problem: 'invalid' };
      i++;
    }
    const pre = i > 0;
    s = s.slice(i);
    // (\.[0-9]*)?  The fraction stops gaining precision where Go's uint64 would overflow.
    let post = false;
    let f = 0n;
    let scale = 1;
    if (s[0] === '.') {
      let j = 1;
      let overflow = false;
      while (isDigit(s[j])) {
        if (!overflow) {
          const y = f * 10n + BigInt(s.charCodeAt(j) - 48);
          if (f > ((1n << 63n) - 1n) / 10n || y > 1n << 63n) overflow = true;
          else {
            f = y;
            scale *= 10;
          }
        }
        j++;
      }
      post = j > 1;
      s = s.slice(j);
    }
    if (!pre && !post) return { ok: false, problem: 'invalid' };
    // The unit: everything up to the next digit or '.'.
    let u = 0;
    while (u < s.length && s[u] !== '.' && !isDigit(s[u])) u++;
    if (u === 0) return { ok: false, problem: 'missing unit' };
    const unitName = s.slice(0, u);
    s = s.slice(u);
    const unit = UNIT_NS[unitName];
    if (unit === undefined) return { ok: false, problem: 'unknown unit', unit: unitName };
    if (v > (1n << 63n) / unit) return { ok: false, problem: 'invalid' };
    v *= unit;
    // As in Go, the fraction goes through a float64: exact to the nanosecond for fractions of hours.
    if (f > 0n) v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)));
    if (v > 1n << 63n) return { ok: false, problem: 'invalid' };
    total += v;
    if (total > 1n << 63n) return { ok: false, problem: 'invalid' };
  }
  if (neg) return { ok: true, ns: -total };
  if (total > NS_MAX) return { ok: false, problem: 'invalid' };
  return { ok: true, ns: total };
}

/** The examples every refusal carries (kept compatible with the messages before Go's grammar). */
const LIKE = 'a duration like 30s, 2m or 500ms';

/**
 * A flag's duration in seconds, refusing with StratusError(USAGE) and one line that names the flag,
 * the value and the fix: a missing unit, an unknown unit, a negative or (unless allowZero) zero value.
 */
export function parseDurationFlagS(flag: string, raw: string, allowZero: boolean): number {
  const refuse = (hint: string) => new StratusError(ErrorCode.USAGE, `${flag} must be ${LIKE}${allowZero ? '' : ' above 0'} (got ${JSON.stringify(raw)})${hint}`);
  const p = parseDuration(raw);
  if (!p.ok) {
    if (p.problem === 'missing unit' && /^\+?(\d+\.?\d*|\.\d+)$/.test(raw)) throw refuse(`: a number needs a unit, e.g. ${raw.replace(/^\+/, '')}s or ${raw.replace(/^\+/, '')}ms`);
    if (p.problem === 'unknown unit') {
      const days = p.unit === 'd' ? ' (no days: 1d is 24h)' : '';
      throw refuse(`: ${JSON.stringify(p.unit)} is not a unit${days}; use h, m, s, ms, us or ns, combined as in 1h30m or 1m30.5s`);
    }
    throw refuse('; Go\'s format: 250ms, 90s, 1h30m, 1m30.5s');
  }
  if (p.ns < 0n || (p.ns === 0n && !allowZero)) throw refuse('');
  return Number(p.ns) / 1e9;
}
