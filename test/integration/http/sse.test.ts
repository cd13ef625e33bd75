/** GET /v1/devices/{id}/events: results over Server-Sent Events, routed like a gRPC session, resumable with Last-Event-ID. */
import assert from 'node:assert/strict';
import { Client, credentials, type ServiceError } from '@grpc/grpc-js';
import { after, before, test } from 'node:test';
import { codecs, type BatchAck, type Event } from '../../../src/gateway/protocol.js';
import { HttpSurface } from '../../../src/http/server.js';
import { SseHub } from '../../../src/http/sse.js';
import { testConfig } from '../../helpers/config.js';
import { TestDevice } from '../../helpers/device.js';
import { startPipeline, type TestPipeline } from '../../helpers/pipeline.js';
import { SseClient } from '../../helpers/sse-client.js';

// Small per-connection limits so a client that stops reading reaches them quickly.
const config = testConfig({ 'kafka-partitions': '2', 'http-sse-heartbeat-ms': '300', 'gateway-outbound-max': '200', 'gateway-stall-timeout-ms': '2000', 'redis-device-buffer-max': '5000' });
let pipeline: TestPipeline;
let hub: SseHub;
let surface: HttpSurface;
let grpcAddress: string;
let base: string;
before(async () => {
  pipeline = await startPipeline(config, ['gw-sse']);
  grpcAddress = `127.0.0.1:${pipeline.gateways[0]!.port}`;
  hub = await SseHub.start(config, 'sse-test');
  surface = await HttpSurface.start(config, { check: async () => null }, { port: 0, routes: [hub.route()] });
  base = `http://127.0.0.1:${surface.port}`;
});
after(async () => {
  await surface.close();
  await hub.stop();
  await pipeline.stop();
});

/** Sends `sq` events with the given seqs for one device through IngestBatch (no device stream involved). */
async function ingest(deviceId: string, from: number, to: number, payload = Buffer.alloc(0)): Promise<void> {
  const client = new Client(grpcAddress, credentials.createInsecure());
  const events: Event[] = [];
  for (let seq = from; seq <= to; seq++) events.push({ deviceId, seq, type: 'sq', value: seq, payload, sentAtUs: 0 });
  const ack = await new Promise<BatchAck>((resolve, reject) =>
    client.makeUnaryRequest('/stratus.v1.DeviceGateway/IngestBatch', codecs.EventBatch.serialize, codecs.BatchAck.deserialize, { events }, (err: ServiceError | null, res?: BatchAck) => (err ? reject(err) : resolve(res!))),
  );
  client.close();
  assert.equal(ack.accepted, to - from + 1);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

test('live results over SSE; a reconnect with Last-Event-ID resumes with no loss and no repeats; results for an offline device wait', { timeout: 90_000 }, async () => {
  const url = `${base}/v1/devices/${encodeURIComponent('sse dev/1')}/events`;
  const first = await new SseClient().open(url);
  assert.equal(first.status, 200);
  await ingest('sse dev/1', 1, 100);
  await first.until(() => first.results().length === 100, 30_000, '100 live results');
  assert.deepEqual(first.results().map((r) => r.seq), range(1, 100));
  assert.deepEqual(first.results().map((r) => r.value), range(1, 100).map((s) => s * s));
  assert.deepEqual(first.events.map((e) => e.id), range(1, 100).map(String), 'id: is the seq');
  await first.until(() => first.comments.includes('heartbeat'), 5000, 'a heartbeat comment');
  first.close();

  // Offline: the results wait in the device's buffer.
  await ingest('sse dev/1', 101, 250);
  // The client had only handled up to 60 when it dropped: it says so, and gets 61.. exactly once.
  const second = await new SseClient().open(url, { 'last-event-id': '60' });
  await second.until(() => second.results().length === 190, 30_000, 'results 61..250');
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(second.results().map((r) => r.seq), range(61, 250));
  second.close();

  // Without Last-Event-ID the server's own record (the last result written to the stream) is the cursor.
  await new Promise((r) => setTimeout(r, 300));
  const third = await new SseClient().open(url);
  await ingest('sse dev/1', 251, 260);
  await third.until(() => third.results().length === 10, 30_000, 'results 251..260');
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(third.results().map((r) => r.seq), range(251, 260));
  third.close();
});

test('a gRPC stream for the same device takes over the SSE stream (and gets what is new)', { timeout: 60_000 }, async () => {
  const sse = await new SseClient().open(`${base}/v1/devices/sse-takeover/events`);
  await ingest('sse-takeover', 1, 5);
  await sse.until(() => sse.results().length === 5, 30_000, '5 results');
  const device = new TestDevice('sse-takeover').connect(grpcAddress, { cursor: 5 });
  await sse.until(() => sse.ended, 10_000, 'the SSE stream to end');
  const end = sse.events.find((e) => e.event === 'end');
  assert.equal(JSON.parse(end!.data).code, 'ABORTED');
  await ingest('sse-takeover', 6, 8);
  await device.until(() => device.results.length === 3, 30_000, 'results 6..8 on the gRPC stream');
  assert.deepEqual(device.results.map((r) => r.seq), [6, 7, 8]);
  device.close();
});

test('a client that stops reading: its stream ends with RESOURCE_EXHAUSTED at the connection\'s limit; the rest waits for its reconnect', { timeout: 90_000 }, async () => {
  const url = `${base}/v1/devices/sse-slow/events`;
  const slow = await new SseClient().open(url);
  slow.pause();
  // 2,000 results of ~5.5 KiB of SSE text each: far more than the socket buffers hold.
  const payload = Buffer.alloc(4096, 7);
  for (let from = 1; from <= 2000; from += 250) await ingest('sse-slow', from, from + 249, payload);
  const deadline = Date.now() + 30_000;
  while (hub.sessions.has('sse-slow') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.equal(hub.sessions.has('sse-slow'), false, 'the server ended the stream');
  slow.resume();
  await slow.until(() => slow.ended, 20_000, 'the rest of what was written, then the end');
  const end = slow.events.find((e) => e.event === 'end');
  assert.equal(JSON.parse(end!.data).code, 'RESOURCE_EXHAUSTED');
  const got = slow.results().map((r) => r.seq);
  assert.ok(got.length < 2000, `the stream ended early (${got.length} results)`);
  assert.deepEqual(got, range(1, got.length));
  const again = await new SseClient().open(url, { 'last-event-id': String(got.length) });
  await again.until(() => again.results().length === 2000 - got.length, 30_000, 'the remaining results');
  assert.deepEqual(again.results().map((r) => r.seq), range(got.length + 1, 2000));
  again.close();
});

test('bad requests get 400 naming what is wrong; nothing is claimed for them', { timeout: 20_000 }, async () => {
  const cases: [string, Record<string, string>, number, RegExp][] = [
    ['/v1/devices/d1/events', { 'last-event-id': 'abc' }, 400, /Last-Event-ID must be a whole number/],
    ['/v1/devices/d1/events', { 'last-event-id': '-1' }, 400, /Last-Event-ID/],
    ['/v1/devices/d1/events', { 'last-event-id': '99999999999999999' }, 400, /Last-Event-ID/],
    ['/v1/devices/d1/events?lastEventId=1e3', {}, 400, /Last-Event-ID/],
    ['/v1/devices/%E0%A4%A/events', {}, 400, /percent-encoding/],
    [`/v1/devices/${'x'.repeat(300)}/events`, {}, 400, /device id must be 1\.\.256 bytes/],
    ['/v1/devices/a/b/events', {}, 404, /percent-encode/],
    ['/v1/devices//events', {}, 404, /not found/],
    ['/v1/devices/d1/results', {}, 404, /not found/],
  ];
  for (const [path, headers, code, text] of cases) {
    const c = await new SseClient().open(`${base}${path}`, headers);
    assert.equal(c.status, code, path);
    assert.match(await c.text(), text, path);
  }
  assert.equal(hub.sessions.size, 0);
});
