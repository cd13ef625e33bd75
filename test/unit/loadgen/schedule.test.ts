import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BURST_PERIOD_S, BURST_SPREAD_MS, DeviceSchedule, Rng, valueOf } from '../../../loadgen/schedule.js';
import type { Profile } from '../../../loadgen/options.js';

const times = (profile: Profile, seed: number, index: number, n: number, rate = 2, batch = 1) => {
  const s = new DeviceSchedule({ profile, ratePerDevice: rate, batch, payloadBytes: 100, seed }, index, 0);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    out.push(s.nextAtMs);
    s.advance();
  }
  return out;
};

test('the same seed gives the same schedule; another seed or device another', () => {
  for (const p of ['iot', 'mobile', 'burst'] as const) {
    assert.deepEqual(times(p, 42, 7, 500), times(p, 42, 7, 500), p);
    assert.notDeepEqual(times(p, 42, 7, 500), times(p, 43, 7, 500), p);
    assert.notDeepEqual(times(p, 42, 7, 500), times(p, 42, 8, 500), p);
  }
});

test('every profile keeps the mean rate (within 5% over many uplinks)', () => {
  for (const p of ['iot', 'mobile', 'burst'] as const) {
    let uplinks = 0;
    let spanMs = 0;
    for (let d = 0; d < 50; d++) {
      const t = times(p, 1, d, 2000, 2, 1);
      uplinks += t.length - 1;
      spanMs += t[t.length - 1]! - t[0]!;
    }
    const rate = uplinks / (spanMs / 1000);
    assert.ok(Math.abs(rate - 2) / 2 < 0.05, `${p}: ${rate} uplinks/s for a rate of 2`);
  }
  // batch 4 at 2 events/s: one uplink every 2 s.
  const t = times('iot', 1, 0, 101, 2, 4);
  assert.ok(Math.abs((t[100]! - t[0]!) / 100 - 2000) < 100);
});

test('iot: periodic within +-10% jitter', () => {
  const t = times('iot', 9, 3, 200, 5);
  for (let i = 1; i < t.length; i++) assert.ok(t[i]! - t[i - 1]! >= 180 - 1e-9 && t[i]! - t[i - 1]! <= 220 + 1e-9);
});

test('burst: every device sends in the same windows, one per period', () => {
  const windows = new Set<number>();
  for (let d = 0; d < 20; d++) {
    for (const at of times('burst', 5, d, 30, 2)) {
      const inPeriod = at % (BURST_PERIOD_S * 1000);
      assert.ok(inPeriod < BURST_SPREAD_MS, `device ${d} sends at ${at}, outside the spike`);
      windows.add(Math.floor(at / (BURST_PERIOD_S * 1000)));
    }
  }
  // 30 uplinks of 10 per spike (2 ev/s * 5 s): 3 spikes, shared by all 20 devices.
  assert.deepEqual([...windows].sort((a, b) => a - b), [0, 1, 2]);
});

test('mobile: payloads vary around the size, at most 4x; iot payloads are exact', () => {
  const m = new DeviceSchedule({ profile: 'mobile', ratePerDevice: 1, batch: 1, payloadBytes: 100, seed: 1 }, 0, 0);
  const sizes = Array.from({ length: 5000 }, () => m.payloadBytes());
  assert.ok(Math.max(...sizes) <= 400 && Math.min(...sizes) >= 1);
  assert.ok(new Set(sizes).size > 50);
  const mean = sizes.reduce((a, b) => a + b, 0) / sizes.length;
  assert.ok(Math.abs(mean - 100) < 10, `mean payload ${mean}`);
  const i = new DeviceSchedule({ profile: 'iot', ratePerDevice: 1, batch: 1, payloadBytes: 100, seed: 1 }, 0, 0);
  assert.equal(i.payloadBytes(), 100);
});

test('Rng is uniform enough, and values are deterministic small integers', () => {
  const r = new Rng(1, 2);
  const buckets = new Array(10).fill(0);
  for (let i = 0; i < 100_000; i++) buckets[Math.floor(r.next() * 10)]++;
  for (const b of buckets) assert.ok(Math.abs(b - 10_000) < 500, String(buckets));
  assert.equal(valueOf(3, 9), valueOf(3, 9));
  for (let s = 1; s < 1000; s++) assert.ok(Number.isInteger(valueOf(5, s)) && Math.abs(valueOf(5, s)) <= 1000);
});
