import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WaitClock } from '../../../src/kafka/wait-clock.js';

test('the oldest waiting produce, through wrap-around and growth', () => {
  const c = new WaitClock(3);
  assert.equal(c.oldestWaitMs(100), 0);
  c.produced(10);
  c.produced(20);
  assert.equal(c.oldestWaitMs(100), 90);
  c.reported();
  assert.equal(c.oldestWaitMs(100), 80);
  c.produced(30);
  c.produced(40); // wraps
  assert.equal(c.oldestWaitMs(100), 80);
  c.produced(50); // grows, keeping order
  c.produced(60);
  assert.equal(c.count, 5);
  for (const t of [20, 30, 40, 50, 60]) {
    assert.equal(c.oldestWaitMs(100), 100 - t);
    c.reported();
  }
  assert.equal(c.oldestWaitMs(100), 0);
  c.reported(); // a report with nothing recorded is ignored
  assert.equal(c.count, 0);
});
