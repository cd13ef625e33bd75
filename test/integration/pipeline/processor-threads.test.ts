/** Processor compute on a piscina pool: same results, same per-device order as inline. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Config } from '../../../src/config.js';
import { deleteTopics, ensureTopics } from '../../../src/kafka/admin.js';
import { startForwarder } from '../../../src/forwarder/forwarder.js';
import { Gateway } from '../../../src/gateway/gateway.js';
import { startProcessor } from '../../../src/processor/processor.js';
import { topology } from '../../../src/topology.js';
import { testConfig } from '../../helpers/config.js';
import { TestDevice } from '../../helpers/device.js';

let config: Config;
let gateway: Gateway;
const stops: (() => Promise<void>)[] = [];

before(async () => {
  config = testConfig({ 'kafka-partitions': '3', 'processor-threads': '2' });
  const t = topology(config);
  await ensureTopics(config, [
    { topic: t.topics.events, partitions: 3 },
    { topic: t.topics.results, partitions: 3 },
  ]);
  gateway = await Gateway.start(config, 'gw-pool', 0);
  stops.push((await startProcessor(config, 'p-pool')).stop, (await startForwarder(config, 'f-pool')).stop);
});

after(async () => {
  await gateway.stop();
  for (const s of stops) await s();
  const t = topology(config);
  await deleteTopics(config, [t.topics.events, t.topics.results]).catch(() => {});
});

function chain(payload: Buffer, rounds: number): Buffer {
  let d = payload;
  for (let i = 0; i < rounds; i++) d = createHash('sha256').update(d).digest();
  return d;
}

test('sha256 on two piscina threads: every result correct, once, in per-device order', { timeout: 90_000 }, async () => {
  const devices = Array.from({ length: 20 }, (_, i) => new TestDevice(`pool-${i}`).connect(`127.0.0.1:${gateway.port}`));
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
