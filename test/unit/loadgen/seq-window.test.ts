import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ACKED, REJECTED, RESULT, SENT, SeqWindow } from '../../../loadgen/seq-window.js';

test('settled seqs leave the window from the bottom; a late result below it is a duplicate', () => {
  const w = new SeqWindow(RESULT);
  for (let s = 1; s <= 100; s++) w.sent(s, s * 10);
  assert.equal(w.intendedMs(37), 370);
  assert.equal(w.mark(2, RESULT), SENT);
  assert.equal(w.base, 1, 'seq 1 is still open');
  assert.equal(w.mark(2, RESULT) & RESULT, RESULT, 'a second result for 2 is seen as one');
  w.mark(1, ACKED);
  assert.equal(w.base, 1, 'an ack does not settle where results are expected');
  w.mark(1, RESULT);
  assert.equal(w.base, 3);
  assert.equal(w.mark(1, RESULT), -1, 'below the window');
  w.mark(3, REJECTED);
  assert.equal(w.base, 4);
  assert.equal(w.mark(500, RESULT), 0, 'never sent');
  assert.deepEqual([...w.outstanding()].slice(0, 2), [[4, SENT], [5, SENT]]);
});

test('ack and result both expected: a result before its ack keeps the seq (and its intended time) until the ack', () => {
  const w = new SeqWindow(ACKED | RESULT);
  w.sent(1, 100);
  w.sent(2, 200);
  w.mark(1, RESULT);
  assert.equal(w.base, 1);
  assert.equal(w.intendedMs(1), 100, 'the ack latency can still be measured');
  assert.equal(w.settled(w.flagsOf(1)), false);
  w.mark(1, ACKED);
  assert.equal(w.base, 2);
  w.mark(2, ACKED);
  w.mark(2, REJECTED);
  assert.equal(w.base, 3);
});

test('the window grows past its capacity and keeps every intended time', () => {
  const w = new SeqWindow(ACKED);
  for (let s = 1; s <= 10_000; s++) w.sent(s, s + 0.5);
  for (let s = 1; s <= 10_000; s += 997) assert.equal(w.intendedMs(s), s + 0.5);
  for (let s = 1; s <= 9_999; s++) w.mark(s, ACKED);
  assert.equal(w.base, 10_000);
  assert.deepEqual([...w.outstanding()], [[10_000, SENT]]);
  // A resend keeps the first intended time.
  w.sent(10_000, 1);
  assert.equal(w.intendedMs(10_000), 10_000.5);
});
