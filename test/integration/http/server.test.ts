import assert from 'node:assert/strict';
import { test } from 'node:test';
import { get } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, type Socket } from 'node:net';
import { pingRedis } from '../../../src/redis/client.js';
import { HttpSurface } from '../../../src/http/server.js';
import { SseHub } from '../../../src/http/sse.js';
import { metrics, registry } from '../../../src/http/metrics.js';
import { testConfig } from '../../helpers/config.js';
import { unusedPort } from '../../helpers/ports.js';
import { makeCerts } from '../../helpers/certs.js';
import { SseClient } from '../../helpers/sse-client.js';

async function surfaceFor(redisPort: string) {
  const config = testConfig({ 'redis-port': redisPort });
  return HttpSurface.start(config, {
    async check() {
      return pingRedis(config, 500).then(() => null, (e: Error) => `Redis: ${e.message}`);
    },
  }, { port: 0 });
}

test('/livez answers; /readyz is 200 with Redis up, 503 naming Redis when it is not, 503 while draining', { timeout: 20_000 }, async (t) => {
  const up = await surfaceFor(String(testConfig().redis.port));
  t.after(() => up.close());
  const base = `http://127.0.0.1:${up.port}`;
  assert.equal((await fetch(`${base}/livez`)).status, 200);
  assert.equal((await fetch(`${base}/readyz`)).status, 200);
  up.draining = true;
  const draining = await fetch(`${base}/readyz`);
  assert.equal(draining.status, 503);
  assert.match(await draining.text(), /draining/);
  // stratus_ready says the same, and comes back when draining is called off.
  assert.match(await (await fetch(`${base}/metrics`)).text(), /^stratus_ready 0$/m);
  up.draining = false;
  assert.equal((await fetch(`${base}/readyz`)).status, 200);
  up.draining = true;
  assert.equal((await fetch(`${base}/nope`)).status, 404);
  assert.equal((await fetch(`${base}/livez`, { method: 'POST' })).status, 405);

  const down = await surfaceFor(String(await unusedPort()));
  t.after(() => down.close());
  const r = await fetch(`http://127.0.0.1:${down.port}/readyz`);
  assert.equal(r.status, 503);
  assert.match(await r.text(), /not ready: Redis: Redis at 127\.0\.0\.1:\d+ did not answer PING/);
});

test('/metrics is Prometheus text with HELP and TYPE, stratus_ names, and no device ids as labels', { timeout: 20_000 }, async (t) => {
  const s = await surfaceFor(String(testConfig().redis.port));
  t.after(() => s.close());
  metrics.eventsRejected.inc({ code: 'INVALID_SEQ' });
  const res = await fetch(`http://127.0.0.1:${s.port}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await res.text();
  assert.match(text, /^# HELP stratus_events_rejected_total Events refused, by reject code\.$/m);
  assert.match(text, /^# TYPE stratus_events_rejected_total counter$/m);
  assert.match(text, /^stratus_events_rejected_total\{code="INVALID_SEQ"\} [1-9]\d*$/m);
  assert.match(text, /^stratus_nodejs_eventloop_lag_seconds /m);
  for (const line of text.split('\n').filter((l) => l.startsWith('stratus_'))) {
    assert.ok(/^stratus_[a-z0-9_]+(\{[^}]*\})? /.test(line), line);
    // No label named for a device (a value such as code="DEVICE_MISMATCH" is a reject code).
    assert.doesNotMatch(line, /[{,][a-z_]*device[a-z_]*=/i, line);
  }
});

/** The value of stratus_http_connections_shed_total{reason}. */
async function shed(reason: 'evicted' | 'refused' | 'sse_full'): Promise<number> {
  const m = await registry.getSingleMetric('stratus_http_connections_shed_total')!.get();
  return m.values.find((v) => v.labels.reason === reason)?.value ?? NaN;
}

/** One GET on a connection of its own (as a load balancer's probe does); 0 when the connection failed. */
function probe(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('error', () => resolve(0));
  });
}

async function until(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Attack sockets that are opened again when the server closes them (after 50 ms, so the test does
 * not spin): `idle` ones send one keep-alive request and then nothing; `slowloris` ones send a
 * request line and then one byte a second, never completing their headers.
 */
class Flood {
  readonly sockets = new Set<Socket>();
  opened = 0;
  private running = true;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly port: number) {}

  open(kind: 'idle' | 'slowloris'): Promise<void> {
    return new Promise((resolve) => {
      const s = connect(this.port, '127.0.0.1');
      this.opened++;
      this.sockets.add(s);
      let drip: NodeJS.Timeout | undefined;
      s.on('error', () => {});
      // Read whatever comes, so a close by the server is seen (a paused socket never sees the FIN).
      s.resume();
      s.on('connect', () => {
        if (kind === 'idle') {
          s.write('GET /livez HTTP/1.1\r\nHost: flood\r\n\r\n');
          s.once('data', () => resolve());
        } else {
          s.write('GET /livez HTTP/1.1\r\nHost: flood\r\nX-Slow: ');
          drip = setInterval(() => s.write('x'), 1000);
          resolve();
        }
      });
      s.on('close', () => {
        clearInterval(drip);
        this.sockets.delete(s);
        resolve();
        if (!this.running) return;
        const t = setTimeout(() => {
          this.timers.delete(t);
          if (this.running) void this.open(kind);
        }, 50);
        this.timers.add(t);
      });
    });
  }

  stop(): void {
    this.running = false;
    for (const t of this.timers) clearTimeout(t);
    for (const s of this.sockets) s.destroy();
  }
}

test('under 60 idle keep-alive and 50 slowloris sockets on a 50-connection port, 100 each of /readyz, /metrics and /livez all answer 200', { timeout: 120_000 }, async (t) => {
  // Timeouts far away: only the eviction at http.connectionsMax makes room here.
  const config = testConfig({ 'http-connections-max': '50', 'http-sse-streams-max': '10', 'http-headers-timeout-ms': '60000', 'http-request-timeout-ms': '60000', 'http-keep-alive-timeout-ms': '60000' });
  const s = await HttpSurface.start(config, { check: async () => null }, { port: 0 });
  t.after(() => s.close());
  const flood = new Flood(s.port);
  t.after(() => flood.stop());
  const evictedBefore = await shed('evicted');
  const refusedBefore = await shed('refused');
  for (let i = 0; i < 60; i++) await flood.open('idle');
  for (let i = 0; i < 50; i++) await flood.open('slowloris');
  await until(() => s.connectionsOpen === 50, 'the surface to hold 50 connections');

  const answered = new Map<string, number>();
  let peak = 0;
  for (const path of ['/readyz', '/metrics', '/livez']) {
    for (let i = 0; i < 100; i++) {
      const status = await probe(s.port, path);
      if (status === 200) answered.set(path, (answered.get(path) ?? 0) + 1);
      peak = Math.max(peak, s.connectionsOpen);
    }
  }
  assert.deepEqual(Object.fromEntries(answered), { '/readyz': 100, '/metrics': 100, '/livez': 100 });
  assert.ok(peak <= 50, `the surface held ${peak} connections, above http.connectionsMax 50`);
  // Every probe's connection arrived at the limit and made room; the attackers came back meanwhile.
  const evicted = (await shed('evicted')) - evictedBefore;
  assert.ok(evicted >= 300, `evicted ${evicted}`);
  assert.equal((await shed('refused')) - refusedBefore, 0);
  t.diagnostic(`probes answered: 300/300; attack sockets opened: ${flood.opened}; evictions: ${evicted}`);
});

test('when every connection has a request in progress, a new one is refused and counted', { timeout: 60_000 }, async (t) => {
  // A route that never answers stands in for requests in progress (SSE streams are bounded below the limit).
  const config = testConfig({ 'http-connections-max': '5', 'http-sse-streams-max': '2' });
  const held: import('node:http').ServerResponse[] = [];
  const s = await HttpSurface.start(config, { check: async () => null }, { port: 0, routes: [{ path: '/hold', describe: 'GET /hold', handle: (_req, res) => void held.push(res) }] });
  t.after(() => s.close());
  const clients: Socket[] = [];
  t.after(() => clients.forEach((c) => c.destroy()));
  for (let i = 0; i < 5; i++) {
    const c = connect(s.port, '127.0.0.1');
    c.on('error', () => {});
    c.write('GET /hold HTTP/1.1\r\nHost: x\r\n\r\n');
    clients.push(c);
  }
  await until(() => held.length === 5, 'five requests in progress');
  const refusedBefore = await shed('refused');
  assert.equal(await probe(s.port, '/livez'), 0);
  assert.equal((await shed('refused')) - refusedBefore, 1);
  const answered = new Promise((resolve) => clients[0]!.once('data', resolve));
  held[0]!.end();
  await answered;
  // The finished connection is idle now: the next probe gets its place.
  assert.equal(await probe(s.port, '/livez'), 200);
});

test('a slowloris socket gets 408 and is closed after http.headersTimeoutMs; one that sends nothing too', { timeout: 60_000 }, async (t) => {
  const config = testConfig({ 'http-headers-timeout-ms': '500', 'http-request-timeout-ms': '2000' });
  const s = await HttpSurface.start(config, { check: async () => null }, { port: 0 });
  t.after(() => s.close());
  const watch = (sock: Socket) => {
    const started = Date.now();
    let text = '';
    sock.on('data', (d: Buffer) => (text += d.toString()));
    sock.on('error', () => {});
    return new Promise<{ ms: number; text: string }>((resolve) => sock.on('close', () => resolve({ ms: Date.now() - started, text })));
  };
  const slow = connect(s.port, '127.0.0.1');
  const drip = setInterval(() => slow.write('x'), 100);
  slow.write('GET /livez HTTP/1.1\r\nX-Slow: ');
  const silent = connect(s.port, '127.0.0.1');
  const [a, b] = await Promise.all([watch(slow), watch(silent)]);
  clearInterval(drip);
  for (const r of [a, b]) {
    assert.ok(r.ms >= 500, `closed after ${r.ms} ms, before http.headersTimeoutMs`);
    assert.match(r.text, /^HTTP\/1\.1 408 Request Timeout\r\n/);
  }
  t.diagnostic(`slowloris closed after ${a.ms} ms, silent socket after ${b.ms} ms (http.headersTimeoutMs 500)`);
});

test('SSE beyond http.sseStreamsMax gets 503 with Retry-After and the reason; the probes still answer', { timeout: 60_000 }, async (t) => {
  const config = testConfig({ 'http-connections-max': '10', 'http-sse-streams-max': '3' });
  const hub = await SseHub.start(config, 'sse-limit-test');
  t.after(() => hub.stop());
  const s = await HttpSurface.start(config, { check: async () => null }, { port: 0, routes: [hub.route()] });
  t.after(() => s.close());
  const base = `http://127.0.0.1:${s.port}`;
  const streams: SseClient[] = [];
  t.after(() => streams.forEach((c) => c.close()));
  for (let i = 0; i < 3; i++) {
    const c = await new SseClient().open(`${base}/v1/devices/sse-limit-${i}/events`);
    streams.push(c);
    assert.equal(c.status, 200);
  }
  const before = await shed('sse_full');
  const refused = await new Promise<{ status: number; retryAfter: string | undefined; text: string }>((resolve, reject) => {
    get(`${base}/v1/devices/sse-limit-3/events`, { agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], text }));
    }).on('error', reject);
  });
  assert.equal(refused.status, 503);
  assert.equal(refused.retryAfter, '5');
  assert.equal(refused.text, 'this process holds 3 SSE streams (http.sseStreamsMax); retry later, or on another instance\n');
  assert.equal((await shed('sse_full')) - before, 1);
  for (const path of ['/livez', '/readyz', '/metrics']) assert.equal(await probe(s.port, path), 200, path);
});

test('http.sseStreamsMax set at or above http.connectionsMax fails at start naming both', async () => {
  const { loadConfig } = await import('../../../src/config.js');
  assert.throws(() => loadConfig({ envFile: null, env: {}, flags: { 'http-connections-max': '50', 'http-sse-streams-max': '50' } }), /config http\.sseStreamsMax must be below http\.connectionsMax \(50\)/);
  // Left at its default (8000), it is capped below a small http.connectionsMax instead.
  assert.equal(loadConfig({ envFile: null, env: {}, flags: { 'http-connections-max': '50' } }).http.sseStreamsMax, 8000);
});

test('a readiness check that hangs is answered 503 within about a second, and probes share one check', { timeout: 30_000 }, async (t) => {
  let calls = 0;
  const s = await HttpSurface.start(testConfig(), { check: () => (calls++, new Promise<string | null>(() => {})) }, { port: 0 });
  t.after(() => s.close());
  const answers = await Promise.all(Array.from({ length: 20 }, () => fetch(`http://127.0.0.1:${s.port}/readyz`).then(async (r) => `${r.status} ${await r.text()}`)));
  assert.deepEqual(new Set(answers), new Set(['503 not ready: the readiness check did not answer within 1000 ms\n']));
  assert.ok(calls < 20, `${calls} checks for 20 probes`);
});

test('with TLS, a request in progress keeps its connection; a TCP socket stalling its handshake is closed for room', { timeout: 60_000 }, async (t) => {
  const certs = makeCerts();
  t.after(() => certs.remove());
  const config = testConfig({ 'tls-cert': certs.serverCert, 'tls-key': certs.serverKey, 'http-connections-max': '3', 'http-sse-streams-max': '1' });
  const held: import('node:http').ServerResponse[] = [];
  const s = await HttpSurface.start(config, { check: async () => null }, { port: 0, routes: [{ path: '/hold', describe: 'GET /hold', handle: (_req, res) => void held.push(res) }] });
  t.after(() => s.close());
  const ca = certs.read(certs.caCert);
  const tlsGet = (path: string) =>
    new Promise<number>((resolve) => {
      const req = httpsRequest({ host: '127.0.0.1', port: s.port, path, ca, servername: 'localhost', agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', () => resolve(0));
      req.end();
    });
  // Two requests in progress over TLS, and one raw TCP socket that never starts its handshake.
  void tlsGet('/hold');
  void tlsGet('/hold');
  await until(() => held.length === 2, 'two requests in progress');
  const stalled = connect(s.port, '127.0.0.1');
  stalled.on('error', () => {});
  const stalledClosed = new Promise((resolve) => stalled.on('close', resolve));
  await until(() => s.connectionsOpen === 3, 'three connections');
  const evictedBefore = await shed('evicted');
  const refusedBefore = await shed('refused');
  // The probe takes the stalled socket's place, not a held request's.
  assert.equal(await tlsGet('/livez'), 200);
  await stalledClosed;
  assert.equal((await shed('evicted')) - evictedBefore, 1);
  assert.equal((await shed('refused')) - refusedBefore, 0);
  assert.equal(held.filter((r) => !r.destroyed).length, 2);
  held.forEach((r) => r.end());
});
