/**
 * k6-style pass/fail criteria: `--threshold EXPR`, repeatable. A failed threshold makes the run
 * exit 99 (k6's code), after the report is written.
 *
 *   latency   <metric>.<stat> <op> <number>[us|ms|s]   ack.p99<20ms  result.p999<=100ms  connect.max<2s
 *             metric: connect ack result reconnect sendLag ackSlow resultSlow
 *             stat:   min mean p50 p90 p99 p999 p9999 max
 *   rates     <what>.rate <op> <number>[%]             errors.rate<0.1%  (no %: a fraction, 0.001)
 *             what: errors rejects missing duplicates wrong unacked   (per event sent)
 *   counts    <what>.count <op> <integer>              missing.count==0  duplicates.count<1
 *   through-  throughput.<sent|acked|results> <op> <number>[/s]        throughput.acked>=9000
 *   put
 *   op: < <= > >= ==
 */
import { ErrorCode, StratusError } from '../src/errors.js';
import type { LoadgenSummary, Threshold } from './summary.js';

export const LATENCY_METRICS = ['connect', 'ack', 'result', 'reconnect', 'sendLag', 'ackSlow', 'resultSlow'] as const;
const LATENCY_STATS = { min: 'minMs', mean: 'meanMs', p50: 'p50Ms', p90: 'p90Ms', p99: 'p99Ms', p999: 'p999Ms', p9999: 'p9999Ms', max: 'maxMs' } as const;
const COUNTED = ['errors', 'rejects', 'missing', 'duplicates', 'wrong', 'unacked'] as const;
const THROUGHPUT = { sent: 'sentPerS', acked: 'ackedPerS', results: 'resultsPerS' } as const;
type Op = '<' | '<=' | '>' | '>=' | '==';

export interface ThresholdSpec {
  expr: string;
  kind: 'latency' | 'rate' | 'count' | 'throughput';
  subject: string;
  stat: string;
  op: Op;
  /** In the expression's display unit: ms for latency, % for rates, events/s, count. */
  limit: number;
}

const fail = (expr: string, why: string) =>
  new StratusError(ErrorCode.USAGE, `--threshold ${JSON.stringify(expr)}: ${why}; e.g. ack.p99<20ms, result.p999<100ms, errors.rate<0.1%, missing.count==0, throughput.acked>=5000`);

export function parseThreshold(expr: string): ThresholdSpec {
  const m = /^\s*([A-Za-z]+)\.([A-Za-z0-9]+)\s*(<=|>=|==|<|>)\s*(-?\d+(?:\.\d+)?)\s*(us|ms|s|%|\/s)?\s*$/.exec(expr);
  if (!m) throw fail(expr, 'not of the form <metric>.<stat><op><number><unit>');
  const [, subject, stat, op, num, unit] = m as unknown as [string, string, string, Op, string, string | undefined];
  const n = Number(num);
  if ((LATENCY_METRICS as readonly string[]).includes(subject)) {
    if (!(stat in LATENCY_STATS)) throw fail(expr, `latency stat must be one of ${Object.keys(LATENCY_STATS).join(', ')}`);
    if (unit !== undefined && !['us', 'ms', 's'].includes(unit)) throw fail(expr, 'a latency takes us, ms or s');
    const limit = unit === 'us' ? n / 1000 : unit === 's' ? n * 1000 : n;
    return { expr, kind: 'latency', subject, stat, op, limit };
  }
  if ((COUNTED as readonly string[]).includes(subject)) {
    if (stat === 'rate') {
      if (unit !== undefined && unit !== '%') throw fail(expr, 'a rate takes % or no unit (a fraction)');
      return { expr, kind: 'rate', subject, stat, op, limit: unit === '%' ? n : n * 100 };
    }
    if (stat === 'count') {
      if (unit !== undefined) throw fail(expr, 'a count takes no unit');
      return { expr, kind: 'count', subject, stat, op, limit: n };
    }
    throw fail(expr, `${subject} takes .rate or .count`);
  }
  if (subject === 'throughput') {
    if (!(stat in THROUGHPUT)) throw fail(expr, `throughput takes .${Object.keys(THROUGHPUT).join(', .')}`);
    if (unit !== undefined && unit !== '/s') throw fail(expr, 'a throughput takes /s or no unit');
    return { expr, kind: 'throughput', subject, stat, op, limit: n };
  }
  throw fail(expr, `unknown metric ${JSON.stringify(subject)}; latencies: ${LATENCY_METRICS.join(', ')}; counted: ${COUNTED.join(', ')}; throughput`);
}

function countOf(s: LoadgenSummary, subject: string): number {
  const c = s.counts;
  switch (subject) {
    case 'errors':
      return Object.values(c.errors).reduce((a, b) => a + b, 0);
    case 'rejects':
      return Object.values(c.rejected).reduce((a, b) => a + b, 0);
    case 'missing':
      return c.missing;
    case 'duplicates':
      return c.duplicates;
    case 'wrong':
      return c.wrong;
    default:
      return c.unacked;
  }
}

/** The measured value, in the threshold's unit. A latency metric with no samples fails (NaN). */
export function measure(spec: ThresholdSpec, s: LoadgenSummary): number {
  switch (spec.kind) {
    case 'latency': {
      const stats = s.latency[spec.subject];
      return stats === undefined || stats.count === 0 ? NaN : stats[LATENCY_STATS[spec.stat as keyof typeof LATENCY_STATS]];
    }
    case 'rate':
      // Errors are counted per failed call or connection, the rest per event; both over events sent.
      return s.counts.sent === 0 ? (countOf(s, spec.subject) === 0 ? 0 : 100) : (countOf(s, spec.subject) / s.counts.sent) * 100;
    case 'count':
      return countOf(s, spec.subject);
    case 'throughput':
      return s.throughput[THROUGHPUT[spec.stat as keyof typeof THROUGHPUT]];
  }
}

function holds(actual: number, op: Op, limit: number): boolean {
  if (Number.isNaN(actual)) return false;
  switch (op) {
    case '<':
      return actual < limit;
    case '<=':
      return actual <= limit;
    case '>':
      return actual > limit;
    case '>=':
      return actual >= limit;
    case '==':
      return actual === limit;
  }
}

export function evaluateThresholds(specs: readonly ThresholdSpec[], s: LoadgenSummary): Threshold[] {
  return specs.map((spec) => {
    const actual = measure(spec, s);
    return { expr: spec.expr, actual: Number.isNaN(actual) ? actual : Math.round(actual * 1000) / 1000, ok: holds(actual, spec.op, spec.limit) };
  });
}
