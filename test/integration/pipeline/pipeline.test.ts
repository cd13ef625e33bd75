/**
 * The whole pipeline through real Kafka, Redis and gRPC: two gateways, a processor and a forwarder,
 * devices split across the gateways. Every (device, seq) is accounted for.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { testConfig } from '../../helpers/config.js';
import { TestDevice } from '../../helpers/device.js';
import { startPipeline, type TestPipeline } from '../../helpers/pipeline.js';
import { TcpProxy } from '../../helpers/tcp-proxy.js';
import { Client, credentials, type ServiceError } from '@grpc/grpc-js';
import { codecs, type BatchAck, type Event } from '../../../src/gateway/protocol.js';
import type { Gateway } from '../../../src/gateway/gateway.js';

// 100,000 events are sent at once below: on a 2-core machine that is far more than
// gateway.ackWaitMaxMs of Kafka work, which the gateway would (rightly) shed. This file is about
// exactly-once delivery of what was accepted, so the shedding limit is set out of the way.
// Keepalive far out: the stalled device below could not answer a ping, and on a loaded machine a
// keepalive close (30 s by default) can come before the gateway sees it stalled.
const config = testConfig({ 'kafka-partitions': '4', 'grpc-keepalive-time-ms': '600000', 'gateway-ack-wait-max-ms': '300000', 'gateway-drain-grace-ms': '1000', 'gateway-outbound-max': '300', 'gateway-stall-timeout-ms': '2000', 'redis-device-buffer-max': '5000' });
let pipeline: TestPipeline;
let gateways: Gateway[] = [];
before(async () => {
  pipeline = await startPipeline(config, ['gw-a', 'gw-b']);
  gateways = pipeline.gateways;
});
after(() => pipeline.stop());

const address = (i: number) => `127.0.0.1:${gateways[i % gateways.length]!.port}`;

function events(from: number, to: number) {
  const out = [];
  for (let seq = from; seq <= to; seq++) out.push({ seq, type: 'sq', value: seq, sentAtUs: Date.now() * 1000 });
  return out;
}

function assertExactlyOnce(d: TestDevice, n: number): void {
  assert.equal(d.results.length, n, `${d.deviceId}: ${d.results.length} results for ${n} events`);
  d.results.forEach((r, i) => {
    assert.equal(r.seq, i + 1, `${d.deviceId}: result ${i} has seq ${r.seq}`);
    assert.equal(r.value, (i + 1) * (i + 1));
    assert.equal(r.type, 'sq');
  });
}

test('200 devices over two gateways, 500 sq events each: every event acked, exactly one correct result each, in order', { timeout: 180_000 }, async () => {
  const devices = Array.from({ length: 200 }, (_, i) => new TestDevice(`dev-${i}`).connect(address(i)));
  const perDevice = 500;
  await Promise.all(
    devices.map(async (d) => {
      for (let s = 1; s <= perDevice; s += 50) d.send(events(s, s + 49));
      await d.until(() => d.ackedSeq === perDevice, 120_000, 'acks');
      await d.until(() => d.results.length >= perDevice, 120_000, 'results');
    }),
  );
  // Nothing more arrives after the last expected result (no duplicates trickling in).
  await new Promise((r) => setTimeout(r, 500));
  for (const d of devices) {
    assertExactlyOnce(d, perDevice);
    assert.deepEqual(d.rejects, []);
    d.close();
  }
});

test('devices that reconnect to the other gateway mid-run get every result once, resending unacked events', { timeout: 120_000 }, async () => {
  const perDevice = 300;
  const devices = Array.from({ length: 40 }, (_, i) => new TestDevice(`move-${i}`).connect(address(i)));
  await Promise.all(
    devices.map(async (d, i) => {
      d.send(events(1, 150));
      await d.until(() => d.ackedSeq >= 100, 60_000, 'first acks');
      d.close();
      // The device resends everything after what it knows is durable, on the other gateway,
      // telling it the last result it has.
      d.connect(address(i + 1), { cursor: d.lastResultSeq });
      d.send(events(d.ackedSeq + 1, perDevice));
      await d.until(() => d.ackedSeq === perDevice && d.results.length >= perDevice, 90_000, 'all results after the move');
    }),
  );
  await new Promise((r) => setTimeout(r, 500));
  for (const d of devices) {
    assertExactlyOnce(d, perDevice);
    d.close();
  }
});

test('a second stream for the same device takes over; the first ends with ABORTED and cannot deregister the second', { timeout: 60_000 }, async () => {
  const first = new TestDevice('takeover-1').connect(address(0));
  first.send(events(1, 5));
  await first.until(() => first.results.length === 5, 30_000, 'first results');
  const second = new TestDevice('takeover-1').connect(address(0), { cursor: 5 });
  await first.until(() => first.ended, 10_000, 'the first stream to end');
  assert.equal(first.status?.code, 10 /* ABORTED */);
  assert.match(first.status!.details, /took over/);
  second.send(events(6, 10));
  await second.until(() => second.results.length === 5, 30_000, 'second results');
  assert.deepEqual(second.results.map((r) => r.seq), [6, 7, 8, 9, 10]);
  assert.equal(gateways[0]!.sessions.size >= 1, true);
  first.close();
  second.close();
});

test('bad input: each gets its Reject code, nothing is produced for it, the stream carries on', { timeout: 60_000 }, async () => {
  const d = new TestDevice('bad-1').connect(address(1));
  d.send([
    { seq: 1, type: 'sq', value: 2 },
    { seq: 0, type: 'sq', value: 1 },
    { seq: 1, type: 'sq', value: 1 },
    { seq: 2, type: 'nope', value: 1 },
    { seq: 2, type: 'sq', value: Number.NaN },
    { seq: 2, type: 'sq', value: Number.POSITIVE_INFINITY },
    { seq: 2, type: 'echo', value: 1, payload: Buffer.alloc(config.gateway.payloadBytesMax + 1) },
    { seq: 2, type: 'sq', value: 1, deviceId: 'someone-else' },
    { seq: 2, type: 'sq', value: 3 },
  ]);
  await d.until(() => d.results.length === 2 && d.rejects.length === 7, 30_000, 'results and rejects');
  // Validation answers at once; seq 1 again is the device's order's to judge: it waits until the
  // first seq 1 is durable, then is a DUPLICATE (and seq 2 after it waits with it, never overtaking).
  assert.deepEqual(d.rejects.map((r) => r.code), ['INVALID_SEQ', 'UNKNOWN_TYPE', 'INVALID_VALUE', 'INVALID_VALUE', 'PAYLOAD_TOO_LARGE', 'DEVICE_MISMATCH', 'DUPLICATE']);
  assert.equal(d.rejects.at(-1)!.lastSeq, 2);
  assert.deepEqual(d.results.map((r) => [r.seq, r.value]), [[1, 4], [2, 9]]);
  assert.equal(d.ackedSeq, 2);
  d.close();

  const anonymous = new TestDevice('').connect(address(0));
  await anonymous.until(() => anonymous.ended, 10_000, 'refusal');
  assert.equal(anonymous.status?.code, 3 /* INVALID_ARGUMENT */);
  assert.match(anonymous.status!.details, /x-device-id/);
  anonymous.close();
});

test('a device that never reads ends with RESOURCE_EXHAUSTED at its buffer limit; another device on the same gateway is unaffected', { timeout: 90_000 }, async (t) => {
  // The slow device reaches the gateway through a proxy that stops reading its socket: a grpc-js
  // client that merely has no 'data' listener keeps draining the connection into memory.
  const proxy = await TcpProxy.start(gateways[0]!.port);
  t.after(() => proxy.close());
  const slow = new TestDevice('slow-1').connect(`127.0.0.1:${proxy.port}`);
  slow.send([{ seq: 1, type: 'sq', value: 1 }]);
  await slow.until(() => slow.results.length === 1, 30_000, 'a first result');
  const session = gateways[0]!.sessions.get('slow-1')!;
  proxy.stall();
  // Its events arrive by IngestBatch on another connection: a stalled socket would hold back the
  // device's own uplink too (HTTP/2 window updates travel the stalled direction).
  const payload = Buffer.alloc(16 * 1024, 7);
  const n = 1200; // ~19 MiB of results: more than the HTTP/2 window and socket buffers hold
  const ingest = new Client(address(1), credentials.createInsecure());
  for (let s = 2; s <= n; s += 100) {
    const batch: Event[] = [];
    for (let seq = s; seq < Math.min(n + 1, s + 100); seq++) batch.push({ deviceId: 'slow-1', seq, type: 'echo', value: seq, payload, sentAtUs: 0 });
    const ack = await new Promise<BatchAck>((resolve, reject) =>
      ingest.makeUnaryRequest('/stratus.v1.DeviceGateway/IngestBatch', codecs.EventBatch.serialize, codecs.BatchAck.deserialize, { events: batch }, (err: ServiceError | null, res?: BatchAck) => (err ? reject(err) : resolve(res!))),
    );
    assert.equal(ack.accepted, batch.length);
  }
  ingest.close();
  const other = new TestDevice('fast-1').connect(address(0));
  other.send(events(1, 200));
  await other.until(() => other.results.length === 200, 60_000, "the other device's results");
  assertExactlyOnce(other, 200);
  // The gateway gives up on the slow device once gateway.outboundMax results wait for it.
  const deadline = Date.now() + 60_000;
  while (gateways[0]!.sessions.has('slow-1') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.equal(gateways[0]!.sessions.has('slow-1'), false, 'the slow stream was not ended');
  assert.equal(session.endedWith?.code, 8 /* RESOURCE_EXHAUSTED */);
  assert.match(session.endedWith.details, /not reading/);
  // The device itself sees that status once it reads again, unless keepalive (which it could not
  // answer while stalled) closed the connection first: then UNAVAILABLE.
  proxy.resume();
  await slow.until(() => slow.ended, 60_000, 'the status');
  assert.ok(slow.status?.code === 8 || slow.status?.code === 14, `status ${slow.status?.code}`);
  // Nothing was lost: reconnecting with its cursor, it gets the rest from its buffer, once each.
  const got = slow.results.length;
  slow.close();
  slow.connect(address(1), { cursor: slow.lastResultSeq });
  await slow.until(() => slow.results.length === n, 60_000, 'the rest after reconnecting');
  assert.ok(got < n);
  assert.deepEqual(slow.results.map((r) => r.seq), Array.from({ length: n }, (_, i) => i + 1));
  slow.close();
  other.close();
});
