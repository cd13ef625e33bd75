/** slices(): a consumed batch cut into bounded script calls, in order. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { slices } from '../../../src/forwarder/forwarder.js';

const item = (device: string, bytes: number) => ({ device, value: Buffer.alloc(bytes) });
// Each item costs value + device bytes + 20 (its seq and framing) against bytesMax.
const cost = (device: string, bytes: number) => bytes + Buffer.byteLength(device) + 20;

test('cut at resultsMax, every item once and in order', () => {
  const items = Array.from({ length: 1201 }, (_, i) => item(`d${i % 7}`, 10));
  const out = [...slices(items, 500, 1 << 20)];
  assert.deepEqual(out.map((s) => s.length), [500, 500, 201]);
  assert.deepEqual(out.flat(), items);
});

test('cut at bytesMax; a single item over it goes alone', () => {
  const per = cost('a', 100);
  const items = [item('a', 100), item('a', 100), item('a', 100), item('a', 5000), item('a', 100)];
  const out = [...slices(items, 500, 2 * per)];
  assert.deepEqual(out.map((s) => s.map((i) => i.value.length)), [[100, 100], [100], [5000], [100]]);
});

test('an empty batch makes no call', () => {
  assert.deepEqual([...slices([], 500, 1024)], []);
});
