import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decode, IntervalRecorder, newHistogram, recordMs } from '../../../loadgen/recorder.js';
import { MinHeap } from '../../../loadgen/min-heap.js';

test('histograms shipped encoded and added give exactly the histogram of all values', () => {
  const whole = newHistogram();
  const parts = [new IntervalRecorder(), new IntervalRecorder(), new IntervalRecorder()];
  let x = 12345;
  for (let i = 0; i < 30_000; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const ms = (x % 5_000_000) / 1000; // 0..5 s
    recordMs(whole, ms);
    parts[i % 3]!.record('ack', ms);
  }
  const merged = newHistogram();
  for (const p of parts) merged.add(decode(p.drain().ack!));
  assert.equal(merged.totalCount, whole.totalCount);
  for (const p of [0, 50, 90, 99, 99.9, 99.99, 100]) assert.equal(merged.getValueAtPercentile(p), whole.getValueAtPercentile(p), `p${p}`);
  // Every row of the .hgrm is the same. (The footer's "Max" is not: the wire format carries
  // buckets, so a decoded max is its bucket's top, within the 3 significant digits; the summary
  // reports p100 for that reason.)
  const rows = (h: typeof whole) => h.outputPercentileDistribution(5, 1000).split('\n').filter((l) => !l.startsWith('#[Max'));
  assert.deepEqual(rows(merged), rows(whole));
  assert.deepEqual(parts[0]!.drain(), {}, 'drained histograms are reset and not shipped empty');
});

test('values below 1 us and above an hour are clamped, not lost', () => {
  const h = newHistogram();
  recordMs(h, 0);
  recordMs(h, 7_200_000);
  assert.equal(h.totalCount, 2);
});

test('MinHeap pops in key order', () => {
  const h = new MinHeap<number>();
  const keys = Array.from({ length: 1000 }, (_, i) => (i * 7919) % 1009);
  for (const k of keys) h.push(k, k);
  const out: number[] = [];
  while (h.size > 0) out.push(h.pop()!);
  assert.deepEqual(out, [...keys].sort((a, b) => a - b));
  assert.equal(h.pop(), undefined);
  assert.equal(h.peekKey(), Infinity);
});
