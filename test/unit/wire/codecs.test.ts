import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ErrorCode, StratusError } from '../../../src/errors.js';
import { decodeFrame } from '../../../src/wire/delivery-frame.js';
import { decodeEvent, encodeEvent, type WireEvent } from '../../../src/wire/event-codec.js';
import { decodeResultV1, encodeResultV1, type WireResult } from '../../../src/wire/result-codec.js';

const isCorrupt = (err: unknown) => err instanceof StratusError && err.code === ErrorCode.WIRE_CORRUPT;

test('events round-trip exactly, edge values included', () => {
  const cases: WireEvent[] = [
    { seq: 1, value: 0, sentAtUs: 0, receivedAtUs: 0, type: 'sq', payload: new Uint8Array(0) },
    { seq: Number.MAX_SAFE_INTEGER, value: -0, sentAtUs: -1, receivedAtUs: 1_795_000_000_000_000, type: 'échø-型', payload: Buffer.alloc(1 << 20, 0xab) },
    { seq: 42, value: -1.5e300, sentAtUs: 123, receivedAtUs: 456, type: 'x'.repeat(255), payload: Buffer.from([0, 255, 1]) },
  ];
  for (const e of cases) {
    const d = decodeEvent(encodeEvent(e));
    assert.equal(d.seq, e.seq);
    assert.ok(Object.is(d.value, e.value));
    assert.equal(d.sentAtUs, e.sentAtUs);
    assert.equal(d.receivedAtUs, e.receivedAtUs);
    assert.equal(d.type, e.type);
    assert.deepEqual(Buffer.from(d.payload), Buffer.from(e.payload));
  }
});

test('results of the earlier layout round-trip exactly', () => {
  const r: WireResult = { seq: 9_007_199_254_740_991, value: 81, sentAtUs: 1, receivedAtUs: 2, processedAtUs: 3, type: 'sq', payload: Buffer.from('hi') };
  const buf = encodeResultV1(r);
  const d = decodeResultV1(buf);
  assert.deepEqual({ ...d, payload: Buffer.from(d.payload) }, { ...r, payload: Buffer.from('hi') });
});

test('truncated, padded or foreign values throw WIRE_CORRUPT', () => {
  const ev = encodeEvent({ seq: 1, value: 1, sentAtUs: 1, receivedAtUs: 1, type: 'sq', payload: Buffer.from('abc') });
  for (const bad of [ev.subarray(0, 10), ev.subarray(0, ev.length - 1), Buffer.concat([ev, Buffer.from([0])]), Buffer.from([2, ...ev.subarray(1)]), Buffer.alloc(0)]) {
    assert.throws(() => decodeEvent(bad), isCorrupt);
  }
  const res = encodeResultV1({ seq: 1, value: 1, sentAtUs: 1, receivedAtUs: 1, processedAtUs: 1, type: 'sq', payload: Buffer.alloc(0) });
  assert.throws(() => decodeResultV1(res.subarray(0, res.length - 2)), isCorrupt);
  assert.throws(() => decodeResultV1(Buffer.from([1, 2, 3])), isCorrupt);
});

function entry(device: string, n: number, result: Buffer): Buffer {
  const d = Buffer.from(device);
  const head = Buffer.alloc(14 + d.length);
  head.writeUInt16LE(d.length, 0);
  d.copy(head, 2);
  head.writeDoubleLE(n, 2 + d.length);
  head.writeUInt32LE(result.length, 10 + d.length);
  return Buffer.concat([head, result]);
}

test('delivery frames (as the forwarder script packs them) decode to their entries', () => {
  assert.deepEqual(decodeFrame(Buffer.alloc(0)), []);
  const r1 = Buffer.from([1, 2, 3]);
  const r2 = Buffer.alloc(0);
  const frame = Buffer.concat([entry('dev-ü', 7, r1), entry('d2', 2 ** 40, r2)]);
  const got = decodeFrame(frame);
  assert.deepEqual(got.map((e) => [e.deviceId, e.n, [...e.result]]), [['dev-ü', 7, [1, 2, 3]], ['d2', 2 ** 40, []]]);
  assert.throws(() => decodeFrame(frame.subarray(0, frame.length - 1)), isCorrupt);
});
