import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryBudget } from '../../src/memory-budget.js';

const MiB = 1024 * 1024;

test('refuses past 85% of rssMaxMb and takes work again only below 75% (hysteresis)', () => {
  let rss = 0;
  const b = new MemoryBudget(100, () => rss);
  const seen: boolean[] = [];
  for (const mb of [50, 84, 86, 80, 76, 74, 80, 90]) {
    rss = mb * MiB;
    b.check();
    seen.push(b.refusing);
  }
  assert.deepEqual(seen, [false, false, true, true, true, false, false, true]);
  assert.match(b.message(), /RSS 90 MiB of rssMaxMb 100 MiB/);
});

test('rssMaxMb 0: no budget, never refuses and never samples', () => {
  let samples = 0;
  const b = new MemoryBudget(0, () => (samples++, 1e12)).start();
  assert.equal(b.refusing, false);
  assert.equal(samples, 0);
  b.stop();
});
