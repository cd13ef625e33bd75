/**
 * The per-second percentiles of summary.series (ackLatency, resultLatency): each second's interval
 * histograms, as the workers shipped them (encoded), merged and read at p50/p90/p99/p99.9; a second
 * with no sample is null. Checked against exact values: every sample is placed so that the
 * percentile is known, and HdrHistogram's 3 significant digits are within the rounding.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { percentileSeries, type SecondStats } from '../../../loadgen/loadgen.js';
import { IntervalRecorder, type Metric } from '../../../loadgen/recorder.js';

/** One second as the main thread holds it: each worker's samples recorded and encoded apart. */
function second(byWorker: Partial<Record<Metric, number[]>>[]): SecondStats {
  const encoded = new Map<Metric, string[]>();
  for (const samples of byWorker) {
    const rec = new IntervalRecorder();
    for (const [m, values] of Object.entries(samples) as [Metric, number[]][]) for (const v of values) rec.record(m, v);
    for (const [m, enc] of Object.entries(rec.drain()) as [Metric, string][]) {
      const parts = encoded.get(m);
      if (parts === undefined) encoded.set(m, [enc]);
      else parts.push(enc);
    }
  }
  return { sent: 0, acked: 0, results: 0, errors: 0, connectedBy: [], encoded, live: encoded };
}

/** 1000 samples: 1 ms .. 1000 ms, one each, so pN is N% of the way. */
const ramp = (from: number) => Array.from({ length: 1000 }, (_, i) => from + i);

/** Within HdrHistogram's 3 significant digits (0.1%), then rounded to the microsecond. */
function near(actual: number | null, want: number, what: string): void {
  assert.ok(actual !== null && Math.abs(actual - want) <= want * 0.001 + 0.001, `${what}: ${actual} ~ ${want}`);
}

test('p50/p90/p99/p99.9 of each second, null where a second has none', () => {
  const seconds = [
    second([{}]), // the fleet connecting: nothing acked yet
    second([{ ack: ramp(1), result: ramp(101) }]),
    second([{ result: [7] }]), // results only: the ack line has a gap
    second([{ ack: [2, 2, 2, 2] }]),
  ];
  const ack = percentileSeries(seconds, 'ack');
  const result = percentileSeries(seconds, 'result');
  assert.deepEqual([ack.p50Ms[0], ack.p90Ms[0], ack.p99Ms[0], ack.p999Ms[0]], [null, null, null, null]);
  near(ack.p50Ms[1]!, 500, 'ack p50');
  near(ack.p90Ms[1]!, 900, 'ack p90');
  near(ack.p99Ms[1]!, 990, 'ack p99');
  near(ack.p999Ms[1]!, 999, 'ack p99.9');
  near(result.p50Ms[1]!, 600, 'result p50');
  near(result.p999Ms[1]!, 1099, 'result p99.9');
  assert.deepEqual([ack.p50Ms[2], ack.p999Ms[2]], [null, null]);
  for (const v of [result.p50Ms[2], result.p90Ms[2], result.p99Ms[2], result.p999Ms[2]]) near(v!, 7, 'a lone result'); // 7.003: the bucket's top
  assert.deepEqual([ack.p50Ms[3], ack.p999Ms[3]], [2, 2]);
  assert.deepEqual([result.p50Ms[3], result.p999Ms[3]], [null, null]);
  // One value per second, in every array.
  for (const p of [ack, result]) for (const a of [p.p50Ms, p.p90Ms, p.p99Ms, p.p999Ms]) assert.equal(a.length, 4);
  // Milliseconds rounded to the microsecond.
  const fine = percentileSeries([second([{ ack: [1.23456] }])], 'ack');
  assert.equal(fine.p50Ms[0], 1.235);
});

test('a second split over workers gives the percentiles of all its samples together', () => {
  // Worker 0 holds the fast half, worker 1 the slow half: p50 sits at their boundary, p99 in worker 1.
  const split = [second([{ ack: ramp(1).slice(0, 500) }, { ack: ramp(1).slice(500) }])];
  const whole = [second([{ ack: ramp(1) }])];
  assert.deepEqual(percentileSeries(split, 'ack'), percentileSeries(whole, 'ack'));
  near(percentileSeries(split, 'ack').p99Ms[0]!, 990, 'p99 over both workers');
});

test('no seconds: empty arrays', () => {
  assert.deepEqual(percentileSeries([], 'result'), { p50Ms: [], p90Ms: [], p99Ms: [], p999Ms: [] });
});
