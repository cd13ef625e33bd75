/**
 * Device tokens (auth.tokenSecret) on the real pipeline: gRPC calls without a valid token are
 * UNAUTHENTICATED, a device sends only as itself and reads only its own results (gRPC and SSE),
 * health stays open, and the load generator mints working tokens.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { loadPackageDefinition } from '@grpc/grpc-js';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { issueToken } from '../../../src/auth/token.js';
import { codecs, type BatchAck, type Event } from '../../../src/gateway/protocol.js';
import { registry } from '../../../src/http/metrics.js';
import { HttpSurface } from '../../../src/http/server.js';
import { SseHub } from '../../../src/http/sse.js';
import { runLoadgen } from '../../../loadgen/loadgen.js';
import { resolveOptions } from '../../../loadgen/options.js';
import { testConfig } from '../../helpers/config.js';
import { TestDevice } from '../../helpers/device.js';
import { startPipeline, type TestPipeline } from '../../helpers/pipeline.js';
import { RawCall, RawSession, type RawOutcome } from '../../helpers/raw-grpc.js';
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

/** stratus_auth_failures_total by `surface/reason`, read from this process's registry (the gateway and the hub run here). */
async function authFailures(): Promise<Record<string, number>> {
  const m = await registry.getSingleMetric('stratus_auth_failures_total')!.get();
  return Object.fromEntries(m.values.map((v) => [`${v.labels.surface}/${v.labels.reason}`, v.value]));
}
const REASONS = ['missing', 'malformed', 'forged', 'expired', 'duplicate'];

/** What `run` added to stratus_auth_failures_total, the unchanged series left out. */
async function failuresDuring(run: () => Promise<void>): Promise<Record<string, number>> {
  const before = await authFailures();
  await run();
  const after = await authFailures();
  return Object.fromEntries(Object.entries(after).filter(([k, v]) => v !== before[k]).map(([k, v]) => [k, v - (before[k] ?? 0)]));
}

/** Lines the process writes to stderr while `run` runs (grpc-js logs there too). */
async function stderrDuring(run: () => Promise<void>): Promise<{ lines: string[]; ms: number }> {
  const lines: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
    lines.push(String(chunk));
    return write.call(process.stderr, chunk, ...rest);
  }) as typeof process.stderr.write;
  const started = Date.now();
  try {
    await run();
  } finally {
    process.stderr.write = write;
  }
  return { lines, ms: Date.now() - started };
}

test('stratus_auth_failures_total is exported for every surface and reason, at 0, before any failure', async () => {
  const text = await (await fetch(`http://127.0.0.1:${surface.port}/metrics`)).text();
  const series = text.split('\n').filter((l) => l.startsWith('stratus_auth_failures_total{'));
  assert.deepEqual(series.sort(), ['grpc', 'sse'].flatMap((s) => REASONS.map((r) => `stratus_auth_failures_total{surface="${s}",reason="${r}"} 0`)).sort());
});

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
  await own.until(() => own.resultEvents().length === 2, 30_000, 'two results');
  assert.deepEqual(own.resultEvents().map((e) => JSON.parse(e.data).value), [36, 49]);
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

// --- hostile authorization headers ----------------------------------------------------------

/** HPACK "literal header field without indexing, new name", no Huffman: any name, any bytes. */
function hpackLiteral(name: string, value: string): Buffer {
  const int7 = (n: number): number[] => {
    if (n < 127) return [n];
    const out = [127];
    for (n -= 127; n >= 128; n >>= 7) out.push((n & 127) | 128);
    out.push(n);
    return out;
  };
  const nb = Buffer.from(name, 'latin1');
  const vb = Buffer.from(value, 'latin1');
  return Buffer.concat([Buffer.from([0x00, ...int7(nb.length)]), nb, Buffer.from(int7(vb.length)), vb]);
}

/**
 * An HTTP/2 session whose first request carries exactly `headers` (besides the gRPC ones), in the
 * given order, duplicates included. Node's http2 client refuses to send two `authorization`
 * headers (ERR_HTTP2_HEADER_SINGLE_VALUE), so the session's first HEADERS frame is replaced on its
 * way to the socket by one encoded here. Only the first request: the server's HPACK table then
 * lacks what Node's encoder thinks it added.
 */
async function callWithRawHeaders(path: string, headers: [string, string][]): Promise<RawOutcome> {
  const [host, port] = address.split(':') as [string, string];
  const socket = netConnect(Number(port), host);
  const block = Buffer.concat(
    [[':method', 'POST'], [':scheme', 'http'], [':path', path], [':authority', address], ['content-type', 'application/grpc'], ['te', 'trailers'], ...headers].map(([n, v]) => hpackLiteral(n!, v!)),
  );
  let pending = Buffer.alloc(0);
  let prefaceLeft = 24;
  let replaced = false;
  const wire = new Duplex({
    write(chunk: Buffer, _enc, cb) {
      pending = Buffer.concat([pending, chunk]);
      const out: Buffer[] = [];
      if (prefaceLeft > 0) {
        const n = Math.min(prefaceLeft, pending.length);
        out.push(pending.subarray(0, n));
        pending = pending.subarray(n);
        prefaceLeft -= n;
      }
      while (prefaceLeft === 0 && pending.length >= 9 && pending.length >= 9 + pending.readUIntBE(0, 3)) {
        const frame = pending.subarray(0, 9 + pending.readUIntBE(0, 3));
        pending = pending.subarray(frame.length);
        if (frame[3] !== 0x1 || replaced) {
          out.push(frame);
          continue;
        }
        replaced = true;
        const head = Buffer.alloc(9);
        head.writeUIntBE(block.length, 0, 3);
        head[3] = 0x1; // HEADERS
        head[4] = (frame[4]! & 0x1) | 0x4; // its END_STREAM, END_HEADERS; no padding or priority
        frame.copy(head, 5, 5, 9); // the stream id
        out.push(head, block);
      }
      if (out.length === 0) cb();
      else socket.write(Buffer.concat(out), cb);
    },
    read() {},
    final(cb) {
      socket.end();
      cb();
    },
    destroy(err, cb) {
      socket.destroy();
      cb(err);
    },
  });
  socket.on('data', (d: Buffer) => wire.push(d));
  socket.on('end', () => wire.push(null));
  socket.on('error', (e) => wire.destroy(e));
  const session: ClientHttp2Session = http2Connect(`http://${address}`, { createConnection: () => wire });
  session.on('error', () => {});
  const call = new RawCall(session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' }, { endStream: false }), true);
  call.send(codecs.EventBatch.serialize({ events: [] }), true);
  const outcome = await call.done;
  session.close();
  return outcome;
}

test('two authorization headers are UNAUTHENTICATED (duplicate) whatever they hold; the grpc-js client itself refuses to send them (INTERNAL)', { timeout: 60_000 }, async () => {
  const valid = `Bearer ${token('h-1')}`;
  const path = '/stratus.v1.DeviceGateway/IngestBatch';
  // The control: one valid header on this same raw path is accepted.
  assert.deepEqual(await callWithRawHeaders(path, [['authorization', valid]]), { grpcStatus: status.OK, grpcMessage: 'OK', httpStatus: 200, rstCode: null });

  const outcomes: RawOutcome[] = [];
  const added = await failuresDuring(async () => {
    for (const pair of [[valid, valid], [valid, 'Bearer junk'], ['Bearer junk', valid], [valid, valid, valid]]) {
      outcomes.push(await callWithRawHeaders(path, pair.map((v) => ['authorization', v])));
    }
  });
  assert.deepEqual(
    outcomes.map((o) => [o.grpcStatus, o.grpcMessage]),
    [2, 2, 2, 3].map((n) => [status.UNAUTHENTICATED, `${n} authorization headers; send exactly one "authorization: Bearer <token>"`]),
  );
  assert.deepEqual(added, { 'grpc/duplicate': 4 });

  // What was seen from outside as INTERNAL: grpc-js's client ends such a call itself
  // (load-balancing-call.ts) and nothing reaches the server.
  const client = new Client(address, credentials.createInsecure());
  const md = new Metadata();
  md.add('authorization', valid);
  md.add('authorization', valid);
  let err: ServiceError | null = null;
  const none = await failuresDuring(async () => {
    err = await new Promise<ServiceError>((resolve) =>
      client.makeUnaryRequest(path, codecs.EventBatch.serialize, codecs.BatchAck.deserialize, { events: [] }, md, (e: ServiceError | null) => resolve(e!)),
    );
  });
  client.close();
  assert.equal(err!.code, status.INTERNAL);
  assert.equal(err!.details, '"authorization" metadata cannot have multiple values');
  assert.deepEqual(none, {});
});

test('malformed authorization headers are UNAUTHENTICATED (malformed), counted by reason, logged at most once per 10 s and never echoed', { timeout: 60_000 }, async () => {
  const tok = token('h-2');
  const path = '/stratus.v1.DeviceGateway/IngestBatch';
  const raw: [string, [string, string][], string][] = [
    ['not ASCII', [['authorization', `Bearer ${tok}\u00e9`]], 'malformed'],
    ['"Bearer" and no token', [['authorization', 'Bearer']], 'malformed'],
    ['a 15,000-byte header', [['authorization', `Bearer ${'a'.repeat(15_000)}`]], 'malformed'],
    ['junk after the signature', [['authorization', `Bearer ${tok}==junk!`]], 'malformed'],
    ['a padded signature', [['authorization', `Bearer ${tok}=`]], 'malformed'],
    ['authorization-bin only', [['authorization-bin', Buffer.from(`Bearer ${tok}`).toString('base64')]], 'malformed'],
    ['authorization-bin beside a valid authorization', [['authorization', `Bearer ${tok}`], ['authorization-bin', 'AAAA']], 'malformed'],
    ['no header', [], 'missing'],
    ['forged', [['authorization', `Bearer ${issueToken('z'.repeat(64), 'h-2', inAnHour())}`]], 'forged'],
    ['expired', [['authorization', `Bearer ${token('h-2', Math.floor(Date.now() / 1000) - 1)}`]], 'expired'],
  ];
  const want: Record<string, number> = {};
  for (const [, , reason] of raw) want[`grpc/${reason}`] = (want[`grpc/${reason}`] ?? 0) + 1;
  let added: Record<string, number> = {};
  const logged = await stderrDuring(async () => {
    added = await failuresDuring(async () => {
      for (const [what, headers] of raw) {
        const o = await callWithRawHeaders(path, headers);
        assert.equal(o.grpcStatus, status.UNAUTHENTICATED, what);
        assert.ok(!o.grpcMessage.includes(tok.slice(3)), `${what}: token echoed`);
      }
      // The same through a plain HTTP/2 client (one valid header: accepted).
      const s = await RawSession.open(address);
      const ok = s.call(path, { headers: { authorization: `Bearer ${tok}` } });
      ok.send(codecs.EventBatch.serialize({ events: [] }), true);
      assert.equal((await ok.done).grpcStatus, status.OK);
      await s.shutdown();
    });
  });
  assert.deepEqual(added, want);
  // grpc-js logged the whole value of a non-ASCII header (token included) once per call before
  // the guard replaced it; the engine's own lines are at least 10 s apart.
  for (const line of logged.lines) assert.ok(!line.includes(tok.slice(3, 40)), `token in the log: ${line}`);
  // The engine's own lines are JSON (src/log.ts); grpc-js's are not.
  const ours = logged.lines
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { role?: string; msg?: string; failures?: number })
    .filter((l) => l.role === 'gateway' && l.msg?.includes('failed authentication') === true);
  assert.ok(ours.length <= Math.floor(logged.ms / 10_000) + 1, `${ours.length} lines in ${logged.ms} ms`);
  for (const line of ours) {
    assert.match(line.msg!, /^\d+ failed authentications? in the last 10 s \(((missing|malformed|forged|expired|duplicate) \d+(, )?)+\); last from 127\.0\.0\.1:\d+$/);
    assert.ok(line.failures! >= 1);
  }
});

/** One HTTP/1.1 request written byte for byte; resolves with the status and the body. */
function rawHttp(port: number, head: string[]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
    socket.end(Buffer.from([...head, 'connection: close', '', ''].join('\r\n'), 'latin1'));
  });
}

test('SSE: two authorization headers and malformed ones are 401, counted under surface sse', { timeout: 60_000 }, async () => {
  const tok = token('s-9');
  const get = `GET /v1/devices/s-9/events HTTP/1.1`;
  const host = `host: 127.0.0.1:${surface.port}`;
  const cases: [string, string[], string, RegExp][] = [
    ['two valid headers', [`authorization: Bearer ${tok}`, `authorization: Bearer ${tok}`], 'duplicate', /\n2 authorization headers; send exactly one/],
    ['a valid and a junk header', [`authorization: Bearer ${tok}`, 'authorization: Bearer junk'], 'duplicate', /\n2 authorization headers; send exactly one/],
    ['not ASCII', [`authorization: Bearer ${tok}\u00c3\u00a9`], 'malformed', /malformed/],
    ['junk after the signature', [`authorization: Bearer ${tok}==junk!`], 'malformed', /malformed/],
    ['"Bearer" and no token', ['authorization: Bearer'], 'malformed', /must be "Bearer <token>"/],
    ['no header', [], 'missing', /no "authorization/],
  ];
  const added = await failuresDuring(async () => {
    for (const [what, lines, , why] of cases) {
      const r = await rawHttp(surface.port, [get, host, ...lines]);
      assert.equal(r.status, 401, what);
      assert.match(r.body, why, what);
    }
  });
  assert.deepEqual(added, { 'sse/duplicate': 2, 'sse/malformed': 3, 'sse/missing': 1 });
  // One valid header on the same raw path: the stream opens.
  const one = await new SseClient().open(`http://127.0.0.1:${surface.port}/v1/devices/s-9/events`, { authorization: `Bearer ${tok}` });
  assert.equal(one.status, 200);
  one.close();
});
