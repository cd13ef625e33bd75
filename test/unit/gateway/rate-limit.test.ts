import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RateLimiter } from '../../../src/gateway/rate-limit.js';

test('a bucket allows its burst, then refills at the rate, never above the burst', () => {
  let now = 0;
  const r = new RateLimiter(10, 5, 100, () => now);
  const takes = (n: number) => Array.from({ length: n }, () => r.take('d')).filter(Boolean).length;
  assert.equal(takes(8), 5);
  now += 300; // 3 tokens
  assert.equal(takes(8), 3);
  now += 10_000; // long idle: back to the burst, not 100
  assert.equal(takes(200), 5);
  // Another device has its own bucket.
  assert.equal(Array.from({ length: 8 }, () => r.take('e')).filter(Boolean).length, 5);
});

test('burst 0 means one second of rate', () => {
  assert.equal(new RateLimiter(50, 0, 10).burstMax, 50);
  assert.equal(new RateLimiter(0.5, 0, 10).burstMax, 1);
});

test('the bucket map is bounded: full buckets go first, then the oldest', () => {
  let now = 0;
  const r = new RateLimiter(1, 2, 3, () => now);
  for (const d of ['a', 'b', 'c']) r.take(d);
  assert.equal(r.size, 3);
  r.take('d'); // none full yet: the oldest (a) goes
  assert.equal(r.size, 3);
  now += 5_000; // all refilled: a sweep clears them
  r.take('e');
  assert.equal(r.size, 1);
  // e has 1 of 2 tokens left. Sweeps are at most one per refill time, so the next newcomer evicts
  // the oldest, e, whose device then starts again from a full bucket (generous, never stricter).
  for (const d of ['f', 'g', 'h']) r.take(d);
  assert.equal(r.size, 3);
  assert.deepEqual([r.take('e'), r.take('e'), r.take('e')], [true, true, false]);
});
