/**
 * An EventSource page in a real browser (Debian's Chromium through playwright-core), served from
 * another origin than the engine's HTTP port, as the old Spring demo's client page and most
 * dashboards are: `new EventSource('http://<engine>/sse?clientId=ID')` with `onmessage`. The
 * engine's CORS header (http.corsOrigin, `*` by default) is what lets the page read the stream;
 * with http.corsOrigin empty the browser refuses it (the page's onerror, no message).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { chromium, type Browser } from 'playwright-core';
import type { Config } from '../../../src/config.js';
import { codecs, type Event, type IngestSummary } from '../../../src/gateway/protocol.js';
import { HttpSurface } from '../../../src/http/server.js';
import { SseHub } from '../../../src/http/sse.js';
import { CHROMIUM_PATH } from '../../helpers/browser.js';
import { testConfig } from '../../helpers/config.js';
import { startPipeline, type TestPipeline } from '../../helpers/pipeline.js';

// The page's script runs in the browser; this project compiles without lib.dom.
declare const window: { received: { seq: number; value: number; lastEventId: string }[]; errors: number; opened: boolean };

const PAGE = `<!doctype html><meta charset="utf-8"><title>results</title>
<script>
window.received = []; window.errors = 0; window.opened = false;
const es = new EventSource(new URLSearchParams(location.search).get('src'));
es.onopen = () => { window.opened = true; };
es.onmessage = (e) => { const r = JSON.parse(e.data); window.received.push({ seq: r.seq, value: r.value, lastEventId: e.lastEventId }); };
es.onerror = () => { window.errors++; };
</script>`;

let pipeline: TestPipeline;
let hub: SseHub;
let browser: Browser;
let pageServer: Server;
let pageOrigin: string;
const surfaces: HttpSurface[] = [];

async function surface(config: Config): Promise<string> {
  const s = await HttpSurface.start(config, { check: async () => null }, { port: 0, routes: [hub.route()] });
  surfaces.push(s);
  return `http://127.0.0.1:${s.port}`;
}

async function ingest(deviceId: string, from: number, to: number): Promise<void> {
  const client = new Client(`127.0.0.1:${pipeline.gateways[0]!.port}`, credentials.createInsecure());
  try {
    const summary = await new Promise<IngestSummary>((resolve, reject) => {
      const call = client.makeClientStreamRequest('/stratus.v1.DeviceGateway/Ingest', codecs.Event.serialize, codecs.IngestSummary.deserialize, new Metadata(), (err: ServiceError | null, res?: IngestSummary) => (err ? reject(err) : resolve(res!)));
      for (let seq = from; seq <= to; seq++) call.write({ deviceId, seq, type: 'sq', value: seq, payload: Buffer.alloc(0), sentAtUs: 0 } satisfies Event);
      call.end();
    });
    assert.deepEqual(summary, { accepted: to - from + 1, rejected: 0 });
  } finally {
    client.close();
  }
}

let config: Config;

before(async () => {
  assert.ok(existsSync(CHROMIUM_PATH), `${CHROMIUM_PATH} is missing: run \`npm run setup\``);
  config = testConfig();
  pipeline = await startPipeline(config, ['gw-browser']);
  hub = await SseHub.start(config, 'sse-browser');
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: ['--no-sandbox'], headless: true });
  // The page's own origin: another port than the engine's, so every SSE read is cross-origin.
  pageServer = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE));
  await new Promise<void>((resolve) => pageServer.listen(0, '127.0.0.1', resolve));
  pageOrigin = `http://127.0.0.1:${(pageServer.address() as { port: number }).port}`;
});

after(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (pageServer ? pageServer.close(() => resolve()) : resolve()));
  for (const s of surfaces) await s.close();
  await hub?.stop();
  await pipeline?.stop();
});

async function openPage(src: string) {
  const page = await browser.newPage();
  await page.goto(`${pageOrigin}/?src=${encodeURIComponent(src)}`, { waitUntil: 'load' });
  return page;
}

test('a page from another origin reads /sse?clientId=ID with EventSource.onmessage: one result per event, in order', { timeout: 60_000 }, async () => {
  const base = await surface(config);
  const device = `browser-${randomBytes(4).toString('hex')}`;
  const page = await openPage(`${base}/sse?clientId=${device}`);
  try {
    await page.waitForFunction(() => window.opened, undefined, { timeout: 15_000 });
    await ingest(device, 1, 20);
    await page.waitForFunction(() => window.received.length >= 20, undefined, { timeout: 30_000 });
    await new Promise((r) => setTimeout(r, 300));
    const got = await page.evaluate(() => window.received);
    assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => ({ seq: i + 1, value: (i + 1) ** 2, lastEventId: String(i + 1) })));
  } finally {
    await page.close();
  }
});

test('with http.corsOrigin empty the browser refuses the cross-origin stream: onerror, no message', { timeout: 60_000 }, async () => {
  const base = await surface({ ...config, http: { ...config.http, corsOrigin: '' } });
  const device = `browser-${randomBytes(4).toString('hex')}`;
  await ingest(device, 1, 3);
  const page = await openPage(`${base}/sse?clientId=${device}`);
  try {
    await page.waitForFunction(() => window.errors > 0, undefined, { timeout: 15_000 });
    assert.deepEqual(await page.evaluate(() => ({ opened: window.opened, received: window.received.length })), { opened: false, received: 0 });
  } finally {
    await page.close();
  }
});

test('CORS preflight: OPTIONS answers 204 allowing Authorization and Last-Event-ID', async () => {
  const base = await surface(config);
  const res = await fetch(`${base}/v1/devices/d1/events`, { method: 'OPTIONS', headers: { origin: 'http://example.test', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' } });
  assert.equal(res.status, 204);
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  assert.match(res.headers.get('access-control-allow-headers') ?? '', /authorization/);
  assert.match(res.headers.get('access-control-allow-headers') ?? '', /last-event-id/);
  const plain = await surface({ ...config, http: { ...config.http, corsOrigin: '' } });
  assert.equal((await fetch(`${plain}/v1/devices/d1/events`, { method: 'OPTIONS' })).status, 405);
});
