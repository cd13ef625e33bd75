/**
 * Device tokens (auth.tokenSecret) on the real pipeline: gRPC calls without a valid token are
 * UNAUTHENTICATED, a device sends only as itself and reads only its own results (gRPC and SSE),
 * health stays open, and the load generator mints working tokens.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { loadPackageDefinition } from '@grpc/grpc-js';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { issueToken } from '../../../src/auth/token.js';
import { codecs, type BatchAck, type Event } from '../../../src/gateway/protocol.js';
import { HttpSurface } from '../../../src/http/server.js';
import { SseHub } from '../../../src/http/sse.js';
import { runLoadgen } from '../../../loadgen/loadgen.js';
import { resolveOptions } from '../../../loadgen/options.js';
import { testConfig } from '../../helpers/config.js';
import { TestDevice } from '../../helpers/device.js';
import { startPipeline, type TestPipeline } from '../../helpers/pipeline.js';
import { SseClient } from '../../helpers/sse-client.js';

const secret = randomBytes(32).toString('hex');
const config = testConfig({ 'kafka-partitions': '2', 'auth-token-secret': secret });
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;
const token = (device: string, exp = inAnHour()) => issueToken(secret, device, exp);
let pipeline: TestPipeline;
let address = '';
let hub: SseHub;
let surface: HttpSurface;

before(async () => {
  pipeline = await startPipeline(config, ['gw-auth']);
  address = `127.0.0.1:${pipeline.gateways[0]!.port}`;
  hub = await SseHub.start(config, 'sse-auth');
  surface = await HttpSurface.start(config, { check: async () => null }, { port: 0, routes: [hub.route()] });
});
after(async () => {
  await surface?.close();
  await hub?.stop();
  await pipeline?.stop();
});

async function statusOf(d: TestDevice): Promise<ServiceError> {
  await d.until(() => d.ended, 15_000, 'the stream to end');
  d.close();
  assert.ok(d.status !== null, 'ended with a status');
  return d.status!;
}

test('Connect without a valid token is UNAUTHENTICATED, and the reason names what is wrong', { timeout: 60_000 }, async () => {
  const cases: [string, string | undefined, RegExp][] = [
    ['no token', undefined, /no "authorization: Bearer/],
    ['forged', issueToken('x'.repeat(64), 'a-1', inAnHour()), /not signed/],
    ['expired', token('a-1', Math.floor(Date.now() / 1000) - 1), /expired/],
    ['malformed', 'v1.nonsense', /malformed/],
  ];
  for (const [what, tok, why] of cases) {
    const d = new TestDevice('a-1').connect(address, tok === undefined ? {} : { token: tok });
    d.send([{ seq: 1, type: 'sq', value: 2 }]);
    const st = await statusOf(d);
    assert.equal(st.code, status.UNAUTHENTICATED, what);
    assert.match(st.details, why, what);
    assert.equal(d.ackedSeq, 0, `${what}: nothing acked`);
  }
  // Not "Bearer": a Basic header is refused too.
  const client = new Client(address, credentials.createInsecure());
  const md = new Metadata();
  md.set('authorization', `Basic ${Buffer.from('a:b').toString('base64')}`);
  const err = await new Promise<ServiceError>((resolve) =>
    client.makeUnaryRequest('/stratus.v1.DeviceGateway/IngestBatch', codecs.EventBatch.serialize, codecs.BatchAck.deserialize, { events: [] }, md, (e: ServiceError | null) => resolve(e!)),
  );
  assert.equal(err.code, status.UNAUTHENTICATED);
  client.close();
});

test('a device connects as its token\'s device only: another x-device-id is PERMISSION_DENIED, another device_id is rejected', { timeout: 60_000 }, async () => {
  const other = new TestDevice('a-2').connect(address, { token: token('a-2'), deviceHeader: 'a-3' });
  assert.equal((await statusOf(other)).code, status.PERMISSION_DENIED);

  // No x-device-id: the token names the device.
  const d = new TestDevice('a-2').connect(address, { token: token('a-2'), deviceHeader: false });
  d.send([
    { seq: 1, type: 'sq', value: 3 },
    { seq: 2, type: 'sq', value: 4, deviceId: 'a-3' },
    { seq: 3, type: 'sq', value: 5, deviceId: 'a-2' },
  ]);
  await d.until(() => d.ackedSeq === 3 && d.results.length === 2, 30_000, 'acks and results');
  assert.deepEqual(d.results.map((r) => [r.seq, r.value]), [[1, 9], [3, 25]]);
  assert.deepEqual(d.rejects.map((r) => [r.seq, r.code]), [[2, 'DEVICE_MISMATCH']]);
  d.close();
});

test('IngestBatch and Ingest with a token accept only the token\'s device; health needs no token', { timeout: 60_000 }, async () => {
  const client = new Client(address, credentials.createInsecure());
  const md = new Metadata();
  md.set('authorization', `Bearer ${token('b-1')}`);
  const ev = (deviceId: string, seq: number): Event => ({ deviceId, seq, type: 'sq', value: seq, payload: Buffer.alloc(0), sentAtUs: 0 });
  const ack = await new Promise<BatchAck>((resolve, reject) =>
    client.makeUnaryRequest('/stratus.v1.DeviceGateway/IngestBatch', codecs.EventBatch.serialize, codecs.BatchAck.deserialize, { events: [ev('b-1', 1), ev('b-2', 1), ev('', 2)] }, md, (e: ServiceError | null, r?: BatchAck) => (e ? reject(e) : resolve(r!))),
  );
  assert.deepEqual(ack.eventIds, ['b-1/1', 'b-1/2']);
  assert.deepEqual(ack.rejects.map((r) => r.code), ['DEVICE_MISMATCH']);

  const summary = await new Promise<unknown>((resolve, reject) => {
    const call = client.makeClientStreamRequest('/stratus.v1.DeviceGateway/Ingest', codecs.Event.serialize, codecs.IngestSummary.deserialize, md, (e: ServiceError | null, r?: unknown) => (e ? reject(e) : resolve(r)));
    call.write(ev('b-1', 3));
    call.write(ev('b-9', 4));
    call.end();
  });
  assert.deepEqual(summary, { accepted: 1, rejected: 1 });
  client.close();
  // b-2 never got an event through; b-1 got its three results.
  const b1 = new TestDevice('b-1').connect(address, { token: token('b-1') });
  await b1.until(() => b1.results.length === 3, 30_000, 'b-1 results');
  assert.deepEqual(b1.results.map((r) => r.seq), [1, 2, 3]);
  b1.close();

  const pkg = loadPackageDefinition(loadSync(healthProtoPath, { enums: String })) as unknown as { grpc: { health: { v1: { Health: new (a: string, c: unknown) => { check(req: object, cb: (e: ServiceError | null, r: { status: string }) => void): void; close(): void } } } } };
  const health = new pkg.grpc.health.v1.Health(address, credentials.createInsecure());
  const res = await new Promise<{ status: string }>((resolve, reject) => health.check({ service: '' }, (e, r) => (e ? reject(e) : resolve(r))));
  assert.equal(res.status, 'SERVING');
  health.close();

  // The seed-compatible services need a token too.
  const q = new Client(address, credentials.createInsecure());
  const qErr = await new Promise<ServiceError>((resolve) => {
    const call = q.makeClientStreamRequest('/event.EventService/StreamEvents', (b: Buffer) => b, (b: Buffer) => b, (e: ServiceError | null) => resolve(e!));
    call.end();
  });
  assert.equal(qErr.code, status.UNAUTHENTICATED);
  q.close();
});

test('nimbus ProcessEvent needs a token for device nimbus/<client_id>', { timeout: 60_000 }, async () => {
  const call = (clientId: string, tok: string | null) =>
    new Promise<{ code: number; responses: number }>((resolve) => {
      const client = new Client(address, credentials.createInsecure());
      const md = new Metadata();
      md.set('client_id', clientId);
      if (tok !== null) md.set('authorization', `Bearer ${tok}`);
      // EventResponse bytes are counted, not decoded: the point is who gets through.
      const c = client.makeBidiStreamRequest('/nimbus.NimbusService/ProcessEvent', (b: Buffer) => b, (b: Buffer) => b, md);
      let responses = 0;
      c.on('data', () => {
        responses++;
        c.end();
      });
      c.on('error', (e: ServiceError) => (client.close(), resolve({ code: e.code, responses })));
      c.on('status', (st: { code: number }) => (client.close(), resolve({ code: st.code, responses })));
      // EventRequest{event_name: "x", number: 3}
      c.write(Buffer.from([0x0a, 0x01, 0x78, 0x10, 0x03]));
    });
  assert.equal((await call('n-1', null)).code, status.UNAUTHENTICATED);
  assert.equal((await call('n-1', token('n-1'))).code, status.PERMISSION_DENIED);
  const ok = await call('n-1', token('nimbus/n-1'));
  assert.deepEqual(ok, { code: status.OK, responses: 1 });
});

test('SSE: 401 without a valid token, 403 for another device\'s results, the device\'s own results with its token', { timeout: 60_000 }, async () => {
  const url = (id: string) => `http://127.0.0.1:${surface.port}/v1/devices/${encodeURIComponent(id)}/events`;
  const none = await new SseClient().open(url('s-1'));
  assert.equal(none.status, 401);
  assert.match(await none.text(), /no "authorization: Bearer/);
  const forged = await new SseClient().open(url('s-1'), { authorization: `Bearer ${issueToken('y'.repeat(64), 's-1', inAnHour())}` });
  assert.equal(forged.status, 401);
  const expired = await new SseClient().open(url('s-1'), { authorization: `Bearer ${token('s-1', Math.floor(Date.now() / 1000) - 5)}` });
  assert.equal(expired.status, 401);
  const foreign = await new SseClient().open(url('s-1'), { authorization: `Bearer ${token('s-2')}` });
  assert.equal(foreign.status, 403);
  for (const c of [none, forged, expired, foreign]) c.close();

  const d = new TestDevice('s-1').connect(address, { token: token('s-1') });
  d.send([{ seq: 1, type: 'sq', value: 6 }, { seq: 2, type: 'sq', value: 7 }]);
  await d.until(() => d.ackedSeq === 2, 30_000, 'acks');
  d.close();
  const own = await new SseClient().open(url('s-1'), { authorization: `Bearer ${token('s-1')}` });
  assert.equal(own.status, 200);
  await own.until(() => own.events.filter((e) => e.event === 'result').length === 2, 30_000, 'two results');
  assert.deepEqual(own.events.filter((e) => e.event === 'result').map((e) => JSON.parse(e.data).value), [36, 49]);
  own.close();
});

test('the load generator mints tokens with --token-secret: every event acked with one correct result', { timeout: 120_000 }, async () => {
  const opts = resolveOptions({ devices: '40', connections: '2', rate: '5', duration: '2s', warmup: '1s', drain: '30s', 'connect-timeout': '15s', seed: '3', 'token-secret': secret }, address);
  const r = await runLoadgen(opts, { progress: new PassThrough().resume() });
  const c = r.summary.counts;
  assert.ok(c.sent > 0);
  assert.deepEqual({ acked: c.acked, results: c.results, missing: c.missing, duplicates: c.duplicates, errors: c.errors }, { acked: c.sent, results: c.sent, missing: 0, duplicates: 0, errors: {} });
  // Without the secret every stream is refused.
  const denied = await runLoadgen(resolveOptions({ devices: '5', connections: '1', rate: '5', duration: '1s', warmup: '0s', drain: '2s', 'connect-timeout': '5s', seed: '3' }, address), { progress: new PassThrough().resume() });
  assert.equal(denied.summary.counts.acked, 0);
  assert.ok(Object.keys(denied.summary.counts.errors).some((k) => /UNAUTHENTICATED/.test(k)), JSON.stringify(denied.summary.counts.errors));
});
