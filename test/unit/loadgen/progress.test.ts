import assert from 'node:assert/strict';
import { test } from 'node:test';
import { phaseLabel, progressLine, type ProgressState } from '../../../loadgen/progress.js';
import { newHistogram, recordMs } from '../../../loadgen/recorder.js';

const shape = { devices: 2000, durationS: 30, acks: true, results: true };

function state(over: Partial<ProgressState>): ProgressState {
  return { connected: 2000, sent: 0, acked: 0, results: 0, errors: 0, lastAck: undefined, lastResult: undefined, windowStartMs: null, ...over };
}

test('the live line labels its p99s as the last interval, ack and result apart', () => {
  const ack = newHistogram();
  for (let i = 1; i <= 100; i++) recordMs(ack, i === 100 ? 500 : 10); // p99 = 10 ms, max 500 ms
  const result = newHistogram();
  for (let i = 0; i < 100; i++) recordMs(result, 25);
  const line = progressLine(shape, 12_400, state({ lastAck: ack, lastResult: result, windowStartMs: 7_000, errors: 3 }), { sent: 2003, acked: 2001, results: 1998 });
  assert.equal(line, '[ 12s measuring 5/30s] devices 2000/2000 | sent 2003/s acked 2001/s results 1998/s | ack p99 (last 1s) 10.0 ms | result p99 (last 1s) 25.0 ms | errors 3');
});

test('no samples in the interval: a dash, not the cumulative figure', () => {
  const line = progressLine(shape, 1_000, state({ connected: 700 }), { sent: 0, acked: 0, results: 0 });
  assert.equal(line, '[  1s warm-up] devices 700/2000 | sent 0/s acked 0/s results 0/s | ack p99 (last 1s) - | result p99 (last 1s) - | errors 0');
});

test('APIs without acks or without results leave them out', () => {
  const nimbus = progressLine({ ...shape, acks: false }, 0, state({}), { sent: 5, acked: 0, results: 4 });
  assert.doesNotMatch(nimbus, /ack/);
  assert.match(nimbus, /results 4\/s \| result p99 \(last 1s\) -/);
  const ackOnly = progressLine({ ...shape, results: false }, 0, state({}), { sent: 5, acked: 5, results: 0 });
  assert.doesNotMatch(ackOnly, /result/);
});

test('phases: warm-up while connecting, warm-up with the countdown once the window is set, measuring, drain', () => {
  assert.equal(phaseLabel(3_000, null, 30), 'warm-up');
  assert.equal(phaseLabel(3_000, 7_500, 30), 'warm-up, measuring in 5s');
  assert.equal(phaseLabel(7_500, 7_500, 30), 'measuring 0/30s');
  assert.equal(phaseLabel(37_499, 7_500, 30), 'measuring 29/30s');
  assert.equal(phaseLabel(37_500, 7_500, 30), 'drain');
});
