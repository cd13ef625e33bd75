import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RateBudget } from '../../src/rate-budget.js';

test('a bucket of a tenth of a second\'s worth: spent by a big take, available again as it refills at perSecond', () => {
  let now = 0;
  const b = new RateBudget(1000, () => now); // holds 100
  assert.equal(b.available, true);
  b.take(600); // a call's size is known after the work was taken: the bucket goes below zero (-500)
  assert.equal(b.available, false);
  now = 400; // +400 tokens: -100
  assert.equal(b.available, false);
  now = 501; // +101 more: above zero
  assert.equal(b.available, true);
  now = 10_000; // never more than a tenth of a second's worth
  b.take(100);
  assert.equal(b.available, false);
});

test('whenAvailable wakes every waiter once the bucket refills', async () => {
  const b = new RateBudget(100_000);
  b.take(10_000 + 500); // the whole bucket and 5 ms of refill more
  assert.equal(b.available, false);
  const woke: number[] = [];
  await Promise.all([1, 2, 3].map((i) => b.whenAvailable().then(() => woke.push(i))));
  assert.deepEqual(woke.sort(), [1, 2, 3]);
  assert.equal(b.available, true);
});

test('perSecond 0: no budget', () => {
  const b = new RateBudget(0);
  b.take(1e9);
  assert.equal(b.available, true);
  assert.equal(b.unlimited, true);
});
