/** Limits on what one gateway instance holds: beyond them, RESOURCE_EXHAUSTED, never silent growth. */
import assert from 'node:assert/strict';
import { Client, credentials, type ServiceError } from '@grpc/grpc-js';
import { after, before, test } from 'node:test';
import { codecs, type IngestSummary } from '../../../src/gateway/protocol.js';
import { testConfig } from '../../helpers/config.js';
import { TestDevice } from '../../helpers/device.js';
import { startPipeline, type TestPipeline } from '../../helpers/pipeline.js';

const config = testConfig({ 'kafka-partitions': '1', 'gateway-devices-max': '3' });
let pipeline: TestPipeline;
before(async () => {
  pipeline = await startPipeline(config, ['gw-limits']);
});
after(() => pipeline.stop());

test('a gateway holds at most gateway.devicesMax streams; a takeover of a held device still works', { timeout: 30_000 }, async () => {
  const address = `127.0.0.1:${pipeline.gateways[0]!.port}`;
  const held = [1, 2, 3].map((i) => new TestDevice(`lim-${i}`).connect(address));
  for (const d of held) d.send([{ seq: 1, type: 'sq', value: 2 }]);
  await Promise.all(held.map((d) => d.until(() => d.results.length === 1, 20_000, 'a result')));
  const fourth = new TestDevice('lim-4').connect(address);
  await fourth.until(() => fourth.ended, 10_000, 'refusal');
  assert.equal(fourth.status?.code, 8 /* RESOURCE_EXHAUSTED */);
  assert.match(fourth.status!.details, /gateway\.devicesMax/);
  const again = new TestDevice('lim-1').connect(address, { cursor: 1 });
  again.send([{ seq: 2, type: 'sq', value: 3 }]);
  await again.until(() => again.results.length === 1, 20_000, 'a result after takeover');
  assert.equal(again.results[0]!.value, 9);
  for (const d of [...held, fourth, again]) d.close();
});

test('one Ingest call may name at most gateway.devicesMax devices', { timeout: 30_000 }, async () => {
  const client = new Client(`127.0.0.1:${pipeline.gateways[0]!.port}`, credentials.createInsecure());
  const err = await new Promise<ServiceError | null>((resolve) => {
    const call = client.makeClientStreamRequest('/stratus.v1.DeviceGateway/Ingest', codecs.Event.serialize, codecs.IngestSummary.deserialize, (e: ServiceError | null, _r?: IngestSummary) => resolve(e));
    for (let i = 0; i < 5; i++) call.write({ deviceId: `ing-lim-${i}`, seq: 1, type: 'sq', value: 1, payload: Buffer.alloc(0), sentAtUs: 0 });
    call.end();
  });
  assert.equal(err?.code, 8);
  assert.match(err!.details, /at most 3 devices/);
  client.close();
});
