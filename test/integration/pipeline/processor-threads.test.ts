/** Processor compute on a piscina pool: same results, same per-device order as inline. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import { testConfig } from '../../helpers/config.js';
import { TestDevice } from '../../helpers/device.js';
import { startPipeline, type TestPipeline } from '../../helpers/pipeline.js';

const config = testConfig({ 'kafka-partitions': '3', 'processor-threads': '2' });
let pipeline: TestPipeline;
before(async () => {
  pipeline = await startPipeline(config, ['gw-pool']);
});
after(() => pipeline.stop());

function chain(payload: Buffer, rounds: number): Buffer {
  let d = payload;
  for (let i = 0; i < rounds; i++) d = createHash('sha256').update(d).digest();
  return d;
}

test('sha256 on two piscina threads: every result correct, once, in per-device order', { timeout: 90_000 }, async () => {
  const devices = Array.from({ length: 20 }, (_, i) => new TestDevice(`pool-${i}`).connect(`127.0.0.1:${pipeline.gateways[0]!.port}`));
  const n = 200;
  for (const d of devices) {
    const events = [];
    for (let seq = 1; seq <= n; seq++) events.push({ seq, type: 'sha256', value: (seq % 7) + 1, payload: Buffer.from(`${d.deviceId}:${seq}`) });
    d.send(events);
  }
  await Promise.all(devices.map((d) => d.until(() => d.results.length >= n, 60_000, 'results')));
  await new Promise((r) => setTimeout(r, 300));
  for (const d of devices) {
    assert.equal(d.results.length, n);
    d.results.forEach((r, i) => {
      const seq = i + 1;
      assert.equal(r.seq, seq);
      assert.equal(r.value, (seq % 7) + 1);
      assert.deepEqual(Buffer.from(r.payload), chain(Buffer.from(`${d.deviceId}:${seq}`), (seq % 7) + 1));
    });
    d.close();
  }
});
