import assert from 'node:assert/strict';
import { test } from 'node:test';
import { evaluateThresholds, parseThreshold } from '../../../loadgen/thresholds.js';
import type { LoadgenSummary } from '../../../loadgen/summary.js';

const lat = (p99Ms: number) => ({ count: 10, minMs: 1, meanMs: 2, p50Ms: 2, p90Ms: 3, p99Ms, p999Ms: p99Ms * 2, p9999Ms: p99Ms * 3, maxMs: p99Ms * 4, distribution: [] });
const summary = {
  counts: { sent: 2000, acked: 1990, results: 1985, rejected: { OVERLOADED: 4 }, errors: { RESET: 1, REFUSED: 1 }, missing: 5, duplicates: 0, wrong: 0, unacked: 10, heldUnsent: 0, reconnects: 0 },
  latency: { ack: lat(12.5), result: lat(40) },
  throughput: { sentPerS: 1000, ackedPerS: 995, resultsPerS: 990 },
} as unknown as LoadgenSummary;

test('units: latencies in us/ms/s, rates in % or as fractions', () => {
  assert.equal(parseThreshold('ack.p99<20ms').limit, 20);
  assert.equal(parseThreshold('ack.p99<20000us').limit, 20);
  assert.equal(parseThreshold('ack.p99<0.02s').limit, 20);
  assert.equal(parseThreshold('ack.p99<20').limit, 20);
  assert.equal(parseThreshold('errors.rate<0.1%').limit, 0.1);
  assert.equal(parseThreshold('errors.rate<0.001').limit, 0.1);
  assert.equal(parseThreshold(' result.p999 <= 100ms ').op, '<=');
});

test('evaluation against a summary', () => {
  const r = evaluateThresholds(
    ['ack.p99<20ms', 'ack.p99<10ms', 'result.max<=160ms', 'errors.rate<0.1%', 'errors.rate<=0.1%', 'rejects.count==4', 'missing.count==0', 'throughput.acked>=995', 'throughput.results>995/s', 'reconnect.p99<1s'].map(parseThreshold),
    summary,
  );
  assert.deepEqual(
    r.map((t) => [t.expr, t.actual, t.ok]),
    [
      ['ack.p99<20ms', 12.5, true],
      ['ack.p99<10ms', 12.5, false],
      ['result.max<=160ms', 160, true],
      ['errors.rate<0.1%', 0.1, false],
      ['errors.rate<=0.1%', 0.1, true],
      ['rejects.count==4', 4, true],
      ['missing.count==0', 5, false],
      ['throughput.acked>=995', 995, true],
      ['throughput.results>995/s', 990, false],
      // No samples: a latency threshold on nothing fails rather than passing vacuously.
      ['reconnect.p99<1s', NaN, false],
    ],
  );
});

test('bad expressions say what is wrong and show examples', () => {
  for (const [e, re] of [
    ['ack.p99', /not of the form/],
    ['ack.p98<1ms', /latency stat must be one of min, mean, p50/],
    ['ack.p99<1%', /a latency takes us, ms or s/],
    ['errors.rate<1ms', /a rate takes % or no unit/],
    ['errors.p99<1', /errors takes \.rate or \.count/],
    ['missing.count<1%', /a count takes no unit/],
    ['throughput.lost>1', /throughput takes/],
    ['cpu.p99<1ms', /unknown metric "cpu"/],
  ] as const) {
    assert.throws(() => parseThreshold(e), (err: Error) => re.test(err.message) && err.message.includes(`--threshold "${e}"`) && /e\.g\. ack\.p99<20ms/.test(err.message), e);
  }
});
