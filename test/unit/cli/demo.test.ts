/**
 * The demo's judgement (src/demo/demo.ts): when latency counts as settled, and how offered and
 * achieved rates are put in words. The whole command against the real stack is
 * test/integration/cli/demo.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LoadgenSummary } from '../../../loadgen/summary.js';
import { SETTLE, settledAt, sliceSeconds, throughputSentence, windowRates, type Seconds } from '../../../src/demo/demo.js';

/** Seconds with the given p99s (ack and result alike) and `acked`/`results` as a share of 2,500 sent per second. */
function seconds(p99: (number | null)[], share: number | number[] = 1): Seconds {
  const shares = typeof share === 'number' ? p99.map(() => share) : share;
  return {
    ack: p99,
    result: p99.map((v) => (v === null ? null : v * 1.5)),
    sent: p99.map(() => 2500),
    acked: shares.map((s) => Math.round(2500 * s)),
    results: shares.map((s) => Math.round(2500 * s)),
  };
}

test('settled: three successive seconds with steady p99s while the engine answers what is sent', () => {
  assert.equal(SETTLE.windows, 3);
  assert.equal(settledAt(seconds([20, 21, 19])), 2);
  // The connect's seconds first, then steady: settled at the third steady second.
  assert.equal(settledAt(seconds([950, 400, 22, 25, 21, 23])), 4);
  // Under the floor, a doubling is noise.
  assert.equal(settledAt(seconds([1.2, 4.1, 2.3])), 2);
});

test('not settled: a p99 that climbs with a growing queue, even slowly', () => {
  // The demo's first version took these (ack p99 2.1 s, 3.1 s, 4.0 s, each within a factor of 2 of the
  // next) for settled, with the engine acknowledging 60% of what was sent.
  assert.equal(settledAt(seconds([2118, 3109, 4041], 0.6)), null);
  // Steady p99s, but the engine answers only 80% of what is sent: a queue grows.
  assert.equal(settledAt(seconds([30, 31, 30], 0.8)), null);
  // Answering 150% of what is sent: a backlog is draining, the p99 is on its way down.
  assert.equal(settledAt(seconds([300, 250, 200], 1.5)), null);
  // p99s that jump by more than the ratio.
  assert.equal(settledAt(seconds([20, 90, 20])), null);
});

test('not settled: a second with no sample, or fewer seconds than the window', () => {
  assert.equal(settledAt(seconds([20, null, 20])), null);
  assert.equal(settledAt(seconds([20, 20])), null);
  assert.equal(settledAt(seconds([])), null);
});

test('settled is judged on acks and results alike', () => {
  const s = seconds([20, 21, 19]);
  s.result = [40, 400, 40];
  assert.equal(settledAt(s), null);
});

test('sliceSeconds keeps the metrics and counts aligned', () => {
  const s = seconds([1, 2, 3, 4], [1, 0.5, 1, 1]);
  assert.deepEqual(sliceSeconds(s, 1, 3), { ack: [2, 3], result: [3, 4.5], sent: [2500, 2500], acked: [1250, 2500], results: [1250, 2500] });
});

test('throughput in words: kept up, fell behind, or worked off a backlog, judged against what was sent', () => {
  assert.match(throughputSentence(2500, { sent: 2498, acked: 2497, results: 2490 }), /^Throughput: the fleet offered 2,500 events\/s and sent 2,498\/s; the engine made 2,497 events\/s durable .* 2,490 results\/s .*: it kept up with the load \(.*not the engine's limit/);
  assert.match(throughputSentence(2500, { sent: 2500, acked: 1503, results: 1455 }), /it fell behind by 1,045 events\/s, so events queued up, and the latencies below include that queue\.$/);
  assert.match(throughputSentence(2500, { sent: 2500, acked: 3382, results: 3300 }), /more than was sent, so it was still working off events sent before the window/);
  // A load generator that could send only 2,000/s on a busy machine: the engine kept up with that.
  assert.match(throughputSentence(2500, { sent: 2000, acked: 1990, results: 1985 }), /offered 2,500 events\/s and sent 2,000\/s; .*: it kept up/);
});

test('window rates leave out a second in which nothing was sent', () => {
  // Window [3, 7): second 5 is a gap in the series (its counts went to second 7).
  const summary = {
    options: { warmupS: 3 },
    measuredS: 4,
    series: { tS: [0, 1, 2, 3, 4, 5, 6, 7], sentPerS: [9, 9, 9, 100, 100, 0, 100, 100], ackedPerS: [9, 9, 9, 100, 98, 0, 102, 100], resultsPerS: [9, 9, 9, 90, 100, 0, 110, 100] },
  } as unknown as LoadgenSummary;
  assert.deepEqual(windowRates(summary), { sent: 100, acked: 100, results: 100 });
});
