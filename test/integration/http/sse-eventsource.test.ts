/**
 * The SSE routes driven by the npm `eventsource` client (the WHATWG EventSource, as pages use it):
 * results reach `onmessage` (default "message" events), on GET /v1/devices/{id}/events and on the
 * old Spring demo's GET /sse?clientId={id}, one per event with the right seq and value; the
 * control event `end` keeps its name (onmessage never sees it); with auth on, the alias refuses a
 * missing or wrong token with the main route's status, and the client's `fetch` option carries the
 * Authorization header.
 *
 * Real engine: gateway, processor and forwarder in this process on real Kafka and Redis, an SSE hub
 * and the HTTP surface on port 0. Events go in from the device over gRPC (Ingest, a client stream).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { EventSource, type ErrorEvent } from 'eventsource';
import { issueToken } from '../../../src/auth/token.js';
import type { Config } from '../../../src/config.js';
import { codecs, type Event, type IngestSummary } from '../../../src/gateway/protocol.js';
import { HttpSurface } from '../../../src/http/server.js';
import { SseHub } from '../../../src/http/sse.js';
import { testConfig } from '../../helpers/config.js';
import { TestDevice } from '../../helpers/device.js';
import { startPipeline, type TestPipeline } from '../../helpers/pipeline.js';
import { SseClient } from '../../helpers/sse-client.js';

interface Engine {
  pipeline: TestPipeline;
  hub: SseHub;
  surface: HttpSurface;
  grpc: string;
  base: string;
  stop(): Promise<void>;
}

async function startEngine(config: Config, name: string): Promise<Engine> {
  const pipeline = await startPipeline(config, [`gw-${name}`]);
  const hub = await SseHub.start(config, `sse-${name}`);
  const surface = await HttpSurface.start(config, { check: async () => null }, { port: 0, routes: [hub.route()] });
  return {
    pipeline,
    hub,
    surface,
    grpc: `127.0.0.1:${pipeline.gateways[0]!.port}`,
    base: `http://127.0.0.1:${surface.port}`,
    async stop() {
      await surface.close();
      await hub.stop();
      await pipeline.stop();
    },
  };
}

/** Sends `sq` events seq from..to (value = seq, or `value`) as the device, over DeviceGateway/Ingest; resolves when all are accepted. */
async function ingest(grpc: string, deviceId: string, from: number, to: number, token?: string, value?: number): Promise<void> {
  const client = new Client(grpc, credentials.createInsecure());
  const md = new Metadata();
  if (token !== undefined) md.set('authorization', `Bearer ${token}`);
  try {
    const summary = await new Promise<IngestSummary>((resolve, reject) => {
      const call = client.makeClientStreamRequest('/stratus.v1.DeviceGateway/Ingest', codecs.Event.serialize, codecs.IngestSummary.deserialize, md, (err: ServiceError | null, res?: IngestSummary) => (err ? reject(err) : resolve(res!)));
      for (let seq = from; seq <= to; seq++) call.write({ deviceId, seq, type: 'sq', value: value ?? seq, payload: Buffer.alloc(0), sentAtUs: 0 } satisfies Event);
      call.end();
    });
    assert.deepEqual(summary, { accepted: to - from + 1, rejected: 0 }, `${deviceId} ${from}..${to}`);
  } finally {
    client.close();
  }
}

/** One EventSource and everything it received, kept for the asserts. */
class Reader {
  readonly es: EventSource;
  /** What onmessage got: a result is `{ seq, value, ... }` and its lastEventId is the seq. */
  readonly messages: { type: string; lastEventId: string; data: { seq: number; value: number | string; type: string; payload: string; sentAtUs: number; processedAtUs: number } }[] = [];
  readonly ends: { code: string; details: string }[] = [];
  readonly errors: { code: number | undefined; message: string | undefined }[] = [];
  opened = false;

  constructor(url: string, init?: ConstructorParameters<typeof EventSource>[1]) {
    this.es = new EventSource(url, init);
    this.es.onopen = () => (this.opened = true);
    this.es.onmessage = (e) => this.messages.push({ type: e.type, lastEventId: e.lastEventId, data: JSON.parse(e.data as string) });
    this.es.onerror = (e: ErrorEvent) => this.errors.push({ code: e.code, message: e.message });
    this.es.addEventListener('end', (e) => {
      this.ends.push(JSON.parse(e.data as string));
      // The server ended this stream (e.g. another reader took the device over): stop here instead
      // of letting EventSource reconnect after `retry` and take it back.
      this.es.close();
    });
  }

  seqs(): number[] {
    return this.messages.map((m) => m.data.seq);
  }

  async until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`EventSource: timed out waiting for ${what} (${this.messages.length} messages, errors ${JSON.stringify(this.errors)})`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.es.close();
  }
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** Every result once, in order, with value seq² and lastEventId = seq. */
function assertResults(r: Reader, from: number, to: number, what: string): void {
  assert.deepEqual(r.seqs(), range(from, to), `${what}: seqs`);
  assert.deepEqual(r.messages.map((m) => m.data.value), range(from, to).map((s) => s * s), `${what}: values`);
  assert.deepEqual(r.messages.map((m) => m.lastEventId), range(from, to).map(String), `${what}: lastEventId`);
  assert.ok(r.messages.every((m) => m.type === 'message' && m.data.type === 'sq'), `${what}: default message events of type sq`);
}

// --- auth off: what a page does ----------------------------------------------------------------

let open: Engine;
before(async () => {
  open = await startEngine(testConfig({ 'kafka-partitions': '2', 'http-sse-heartbeat-ms': '200' }), 'es');
});
after(async () => {
  await open?.stop();
});

test('onmessage gets one result per event on /v1/devices/{id}/events and on /sse?clientId={id}, both open at once', { timeout: 90_000 }, async () => {
  const idMain = 'es-main/1';
  const idAlias = 'es-alias 1/x';
  const main = new Reader(`${open.base}/v1/devices/${encodeURIComponent(idMain)}/events`);
  const alias = new Reader(`${open.base}/sse?clientId=${encodeURIComponent(idAlias)}`);
  await main.until(() => main.opened, 15_000, 'open');
  await alias.until(() => alias.opened, 15_000, 'open');
  await Promise.all([ingest(open.grpc, idMain, 1, 30), ingest(open.grpc, idAlias, 1, 30)]);
  await main.until(() => main.messages.length >= 30, 30_000, '30 results on the main route');
  await alias.until(() => alias.messages.length >= 30, 30_000, '30 results on the alias');
  // A sentinel after the checked events: once it is in, nothing of 1..30 can still come twice.
  await Promise.all([ingest(open.grpc, idMain, 31, 31), ingest(open.grpc, idAlias, 31, 31)]);
  await main.until(() => main.seqs().includes(31), 30_000, 'the sentinel on the main route');
  await alias.until(() => alias.seqs().includes(31), 30_000, 'the sentinel on the alias');
  assertResults(main, 1, 31, 'main route');
  assertResults(alias, 1, 31, 'alias');
  // Heartbeats (every 200 ms here) are comments: they never reach onmessage, and no error fired.
  assert.deepEqual([main.errors, alias.errors, main.ends, alias.ends], [[], [], [], []]);
  main.close();
  alias.close();
});

test('/sse?clientId= is the same device stream: it resumes after what /v1/devices/{id}/events was sent, and takes over from it', { timeout: 90_000 }, async () => {
  const id = 'es-same';
  const first = new Reader(`${open.base}/v1/devices/${id}/events`);
  await first.until(() => first.opened, 15_000, 'open');
  await ingest(open.grpc, id, 1, 10);
  await first.until(() => first.messages.length >= 10, 30_000, 'results 1..10');
  first.close();
  // While nobody reads, results wait in the device's buffer; the alias, opened without a cursor,
  // starts after the last result the server wrote (10).
  await ingest(open.grpc, id, 11, 20);
  const second = new Reader(`${open.base}/sse?clientId=${id}`);
  await second.until(() => second.messages.length >= 10, 30_000, 'results 11..20 on the alias');
  // A stream on the main route takes the device over: the alias gets the named `end` event
  // (ABORTED), which onmessage does not see.
  const third = new Reader(`${open.base}/v1/devices/${id}/events`);
  await second.until(() => second.ends.length === 1, 15_000, 'the end event');
  assert.equal(second.ends[0]!.code, 'ABORTED');
  await ingest(open.grpc, id, 21, 25);
  await third.until(() => third.seqs().includes(25), 30_000, 'results 21..25 on the new stream');
  assertResults(first, 1, 10, 'first');
  assertResults(second, 11, 20, 'second');
  assertResults(third, 21, 25, 'third');
  third.close();
});

test('a gRPC Connect takeover ends an EventSource with `end` (a named event): onmessage saw only results', { timeout: 60_000 }, async () => {
  const id = 'es-grpc-takeover';
  const r = new Reader(`${open.base}/sse?clientId=${id}`);
  await r.until(() => r.opened, 15_000, 'open');
  await ingest(open.grpc, id, 1, 3);
  await r.until(() => r.messages.length >= 3, 30_000, 'results 1..3');
  const device = new TestDevice(id).connect(open.grpc, { cursor: 3 });
  await r.until(() => r.ends.length === 1, 15_000, 'the end event');
  assert.equal(r.ends[0]!.code, 'ABORTED');
  assertResults(r, 1, 3, 'before the takeover');
  device.close();
});

test('/sse without exactly one clientId: 400 naming it; the wire has no `event:` line before a result', { timeout: 30_000 }, async () => {
  for (const q of ['', '?clientId=a&clientId=b', '?client_id=a']) {
    const c = await new SseClient().open(`${open.base}/sse${q}`);
    assert.equal(c.status, 400, q);
    assert.match(await c.text(), /clientId query parameter/, q);
  }
  const empty = await new SseClient().open(`${open.base}/sse?clientId=`);
  assert.equal(empty.status, 400);
  assert.match(await empty.text(), /device id must be 1\.\.256 bytes/);
  const sub = await new SseClient().open(`${open.base}/sse/x?clientId=a`);
  assert.equal(sub.status, 404);
  assert.match(await sub.text(), /\/sse\?clientId=\{id\}/, 'the 404 names the alias');

  const c = await new SseClient().open(`${open.base}/sse?clientId=es-wire`);
  await ingest(open.grpc, 'es-wire', 1, 2);
  await c.until(() => c.resultEvents().length === 2, 30_000, 'two results');
  assert.deepEqual(c.resultEvents().map((e) => [e.event, e.id]), [['message', '1'], ['message', '2']]);
  c.close();
});

test('a square beyond the double range arrives as the string "Infinity" (JSON has no Infinity: it would be null)', { timeout: 60_000 }, async () => {
  const id = 'es-infinity';
  const r = new Reader(`${open.base}/sse?clientId=${id}`);
  await r.until(() => r.opened, 15_000, 'open');
  await ingest(open.grpc, id, 1, 1, undefined, 1e200);
  await ingest(open.grpc, id, 2, 2, undefined, -3);
  await r.until(() => r.messages.length >= 2, 30_000, 'two results');
  assert.deepEqual(r.messages.map((m) => [m.data.seq, m.data.value]), [[1, 'Infinity'], [2, 9]]);
  assert.equal(Number(r.messages[0]!.data.value), Infinity);
  r.close();
});

// --- auth on ---------------------------------------------------------------------------------

test('auth on: the alias refuses a missing, forged or foreign token with the main route\'s status; EventSource\'s fetch option sends the token', { timeout: 120_000 }, async (t) => {
  const secret = randomBytes(32).toString('hex');
  const engine = await startEngine(testConfig({ 'kafka-partitions': '2', 'auth-token-secret': secret }), 'es-auth');
  t.after(() => engine.stop());
  const inAnHour = Math.floor(Date.now() / 1000) + 3600;
  const token = (device: string) => issueToken(secret, device, inAnHour);
  const id = 'es-auth/1';
  const urls = { main: `${engine.base}/v1/devices/${encodeURIComponent(id)}/events`, alias: `${engine.base}/sse?clientId=${encodeURIComponent(id)}` };
  const cases: [string, string | null, number][] = [
    ['missing', null, 401],
    ['forged', issueToken('f'.repeat(64), id, inAnHour), 401],
    ['another device\'s', token('es-auth/2'), 403],
  ];
  for (const [what, tok, code] of cases) {
    const headers: Record<string, string> = tok === null ? {} : { authorization: `Bearer ${tok}` };
    for (const [route, url] of Object.entries(urls)) {
      // The raw answer...
      const raw = await new SseClient().open(url, headers);
      assert.equal(raw.status, code, `${what} token on ${route}: HTTP status`);
      raw.close();
      // ...and what EventSource reports: an error carrying the status, and no reconnect.
      const es = new Reader(url, { fetch: (input, init) => fetch(input, { ...init, headers: { ...init?.headers, ...headers } }) });
      await es.until(() => es.errors.length > 0, 15_000, 'the refusal');
      assert.equal(es.errors[0]!.code, code, `${what} token on ${route}: EventSource error code`);
      assert.equal(es.es.readyState, EventSource.CLOSED, `${what} token on ${route}: no reconnect`);
      es.close();
    }
  }
  assert.equal(engine.hub.sessions.size, 0, 'nothing refused was claimed');

  const auth = { fetch: (input: string | URL, init?: RequestInit) => fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), authorization: `Bearer ${token(id)}` } }) };
  const main = new Reader(urls.main, auth);
  await main.until(() => main.opened, 15_000, 'open with the token');
  await ingest(engine.grpc, id, 1, 5, token(id));
  await main.until(() => main.seqs().includes(5), 30_000, 'results 1..5 on the main route');
  main.close();
  await ingest(engine.grpc, id, 6, 10, token(id));
  const alias = new Reader(urls.alias, auth);
  await alias.until(() => alias.seqs().includes(10), 30_000, 'results 6..10 on the alias');
  assertResults(main, 1, 5, 'main route with the token');
  assertResults(alias, 6, 10, 'alias with the token');
  alias.close();
});
