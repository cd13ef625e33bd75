/** Per-device token bucket (gateway.deviceRatePerS, gateway.deviceBurstMax) on the real pipeline. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Client, credentials, type ServiceError } from '@grpc/grpc-js';
import { codecs, type BatchAck } from '../../../src/gateway/protocol.js';
import { testConfig } from '../../helpers/config.js';
import { TestDevice } from '../../helpers/device.js';
import { startPipeline, type TestPipeline } from '../../helpers/pipeline.js';

// 1 event/s after a burst of 5: within this test's few hundred ms, at most one token comes back.
const config = testConfig({ 'kafka-partitions': '2', 'gateway-device-rate-per-s': '1', 'gateway-device-burst-max': '5' });
let pipeline: TestPipeline;
let address = '';
before(async () => {
  pipeline = await startPipeline(config, ['gw-rate']);
  address = `127.0.0.1:${pipeline.gateways[0]!.port}`;
});
after(() => pipeline.stop());

test('events over a device\'s rate are rejected RATE_LIMITED; the rest go through; the bucket is shared by its calls', { timeout: 60_000 }, async () => {
  const d = new TestDevice('rl-1').connect(address);
  const t0 = performance.now();
  d.send(Array.from({ length: 8 }, (_, i) => ({ seq: i + 1, type: 'sq', value: i + 1 })));
  await d.until(() => d.rejects.length + d.ackedSeq >= 8 && d.ackedSeq >= 5 && d.results.length >= 5, 30_000, 'acks and rejects');
  const refilled = Math.floor(((performance.now() - t0) / 1000) * 1);
  assert.deepEqual(d.results.slice(0, 5).map((r) => r.seq), [1, 2, 3, 4, 5]);
  assert.equal(d.rejects.length, 3 - Math.min(3, d.results.length - 5));
  assert.ok(d.rejects.every((r) => r.code === 'RATE_LIMITED' && /gateway\.deviceRatePerS/.test(r.message)), JSON.stringify(d.rejects));
  assert.ok(d.results.length - 5 <= refilled, 'no more than the burst plus what refilled went through');

  // Another call of the same device draws from the same (empty) bucket; another device has its own.
  const client = new Client(address, credentials.createInsecure());
  const batch = (deviceId: string, from: number) =>
    new Promise<BatchAck>((resolve, reject) =>
      client.makeUnaryRequest('/stratus.v1.DeviceGateway/IngestBatch', codecs.EventBatch.serialize, codecs.BatchAck.deserialize, {
        events: Array.from({ length: 4 }, (_, i) => ({ deviceId, seq: from + i, type: 'sq', value: 1, payload: Buffer.alloc(0), sentAtUs: 0 })),
      }, (e: ServiceError | null, r?: BatchAck) => (e ? reject(e) : resolve(r!))),
    );
  const t1 = performance.now();
  const same = await batch('rl-1', 100);
  const other = await batch('rl-2', 1);
  const refilledSince = Math.floor(((performance.now() - t0) / 1000) * 1) + 1;
  assert.ok(same.accepted <= refilledSince, `rl-1 over its rate: ${JSON.stringify(same)} after ${Math.round(performance.now() - t1)} ms`);
  assert.ok(same.rejects.filter((r) => r.code === 'RATE_LIMITED').length >= 4 - refilledSince);
  assert.deepEqual({ accepted: other.accepted, rejects: other.rejects }, { accepted: 4, rejects: [] });
  client.close();
  d.close();
});
