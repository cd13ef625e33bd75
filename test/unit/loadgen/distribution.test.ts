import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as hdr from 'hdr-histogram-js';
import { percentileDistribution } from '../../../loadgen/distribution.js';

function histogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3, bitBucketSize: 32, useWebAssembly: false });
}

test('the .hgrm rows as [percentile, ms]: ascending, from 0 to 100, values in ms', () => {
  const h = histogram();
  for (let us = 1; us <= 10_000; us++) h.recordValue(us); // 1 us .. 10 ms, uniform
  const d = percentileDistribution(h);

  // Exactly the rows of the .hgrm written next to it (ticks per half distance 5).
  const hgrmRows = h.outputPercentileDistribution(5, 1000).split('\n').filter((l) => /^\s*\d/.test(l));
  assert.equal(d.length, hgrmRows.length);
  hgrmRows.forEach((line, i) => {
    const [value, fraction] = line.trim().split(/\s+/).map(Number);
    assert.equal(d[i]![1], value, `row ${i} value`);
    assert.ok(Math.abs(d[i]![0] - fraction! * 100) < 1e-9, `row ${i} percentile`);
  });

  assert.deepEqual(d[0], [0, 0.001]);
  assert.equal(d[d.length - 1]![0], 100);
  assert.ok(Math.abs(d[d.length - 1]![1] - 10) <= 0.01, `max ~ 10 ms (${d[d.length - 1]![1]})`);
  for (let i = 1; i < d.length; i++) {
    assert.ok(d[i]![0] > d[i - 1]![0], `percentiles ascend at row ${i}`);
    assert.ok(d[i]![1] >= d[i - 1]![1], `values never fall at row ${i}`);
  }
  // The half-distance steps: 10% apart up to 50%, then 5%, then 2.5% ...
  assert.deepEqual(d.slice(0, 9).map(([p]) => p), [0, 10, 20, 30, 40, 50, 55, 60, 65]);
  const p50 = d.find(([p]) => p === 50)![1];
  assert.ok(Math.abs(p50 - 5) <= 0.005, `p50 ~ 5 ms (${p50})`);
});

test('microsecond exactness, and an empty histogram gives no rows', () => {
  const h = histogram();
  h.recordValue(1234);
  assert.deepEqual(percentileDistribution(h), [[0, 1.234], [100, 1.234]]);
  assert.deepEqual(percentileDistribution(histogram()), []);
});
