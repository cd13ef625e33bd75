/**
 * The limits at the gRPC doors (call-limits.ts, connection-guard.ts, memory-budget.ts), against a
 * real gateway with small limits: calls in progress per service group, connections per process,
 * PING / SETTINGS / rapid-reset floods per connection, the memory budget. Each refusal is the one
 * documented (status, GOAWAY code, metric), and a slot is given back when its call ends.
 */
import assert from 'node:assert/strict';
import { connect, constants, type ClientHttp2Session, type Http2Session } from 'node:http2';
import { Socket } from 'node:net';
import { after, before, test } from 'node:test';
import type { Server } from '@grpc/grpc-js';
import { grpcHttp2Servers } from '../../../src/gateway/http2-servers.js';
import { registry } from '../../../src/http/metrics.js';
import { grpcHeaderBlock, headers, openH2, rstStream } from '../../helpers/abuse/h2-frames.js';
import { testConfig } from '../../helpers/config.js';
import { TestDevice } from '../../helpers/device.js';
import { deleteKeys, eventClient, events, queueRedis, streamEvents } from '../../helpers/event-client.js';
import { metricsClient } from '../../helpers/metrics-client.js';
import { startPipeline, type TestPipeline } from '../../helpers/pipeline.js';
import { doubleField, lenField, RawSession, type RawCall } from '../../helpers/raw-grpc.js';

const config = testConfig({
  'kafka-partitions': '1',
  'streams-calls-max': '2',
  'gateway-ingest-calls-max': '2',
  'queue-calls-max': '2',
  'grpc-connections-max': '40',
  'grpc-control-frames-per-second-max': '20',
  'grpc-reset-streams-max': '20',
  'grpc-abuse-penalty-ms': '1500',
  'streams-metrics-per-second-max': '1000',
  'queue-events-per-second-max': '1000',
});
let pipeline: TestPipeline;
let address: string;
before(async () => {
  pipeline = await startPipeline(config, ['gw-doors']);
  address = `127.0.0.1:${pipeline.gateways[0]!.port}`;
});
after(() => pipeline.stop());

async function sample(name: string): Promise<number> {
  const text = await registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line === undefined ? 0 : Number(line.slice(name.length + 1));
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Calls whose headers went out and whose message never comes: in progress until cancelled. */
async function holdCalls(session: RawSession, path: string, n: number, group: string): Promise<RawCall[]> {
  const before = await sample(`stratus_grpc_calls_in_progress{service="${group}"}`);
  const calls = Array.from({ length: n }, () => session.call(path, { headers: { 'x-device-id': 'held' } }));
  await until(`${n} ${group} calls in progress`, async () => (await sample(`stratus_grpc_calls_in_progress{service="${group}"}`)) === before + n);
  return calls;
}

for (const { group, path, option } of [
  { group: 'metrics', path: '/data_nexus.MetricsService/IngestMetrics', option: 'streams.callsMax' },
  { group: 'ingest', path: '/stratus.v1.DeviceGateway/Ingest', option: 'gateway.ingestCallsMax' },
  { group: 'queue', path: '/event.EventService/StreamEvents', option: 'queue.callsMax' },
]) {
  test(`${option}: a call beyond it ends RESOURCE_EXHAUSTED before it is read; a cancelled call gives its slot back`, { timeout: 30_000 }, async () => {
    const session = await RawSession.open(address);
    const held = await holdCalls(session, path, 2, group);
    const refusedBefore = await sample(`stratus_grpc_calls_refused_total{service="${group}",reason="calls_max"}`);
    const third = session.call(path, { headers: { 'x-device-id': 'third' } });
    const outcome = await third.done;
    assert.equal(outcome.grpcStatus, 8 /* RESOURCE_EXHAUSTED */);
    assert.match(outcome.grpcMessage, new RegExp(`2 ${group} calls in progress \\(${option.replace('.', '\\.')}\\)`));
    assert.equal(await sample(`stratus_grpc_calls_refused_total{service="${group}",reason="calls_max"}`), refusedBefore + 1);
    held[0]!.cancel();
    await until('the slot given back', async () => (await sample(`stratus_grpc_calls_in_progress{service="${group}"}`)) === 1);
    held[1]!.cancel();
    await until('no call in progress', async () => (await sample(`stratus_grpc_calls_in_progress{service="${group}"}`)) === 0);
    await session.shutdown();
  });
}

test('streams.callsActiveMax (1): a metrics call waiting its turn is not read until the active one ends', { timeout: 30_000 }, async () => {
  const session = await RawSession.open(address);
  const [first, second] = await holdCalls(session, '/data_nexus.MetricsService/IngestMetric', 2, 'metrics');
  // data_nexus.Metric: name = 1, value = 2, type = 3.
  second!.send(Buffer.concat([lenField(1, 'doors_turn'), doubleField(2, 1), lenField(3, 'gauge')]), true);
  let answered = false;
  void second!.done.then(() => (answered = true));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(answered, false, 'the waiting call was answered while the active one was still running');
  first!.cancel();
  const outcome = await second!.done;
  assert.equal(outcome.grpcStatus, 0);
  assert.equal(second!.messages.length, 1);
  await until('no call in progress', async () => (await sample('stratus_grpc_calls_in_progress{service="metrics"}')) === 0);
  await session.shutdown();
});

test('streams.callsMax: calls that completed leave no slot taken (10 sequential IngestMetrics through a limit of 2)', { timeout: 30_000 }, async () => {
  const client = metricsClient(address);
  for (let i = 0; i < 10; i++) {
    const r = await client.ingestMetrics([{ name: 'doors_test', value: i, type: 'gauge' }]);
    assert.equal(r.eventIds.length, 1);
  }
  assert.equal(await sample('stratus_grpc_calls_in_progress{service="metrics"}'), 0);
  client.close();
});

test('streams.metricsPerSecondMax: a call that spends the budget goes through, the next is refused RESOURCE_EXHAUSTED before it is read, and the budget refills', { timeout: 30_000 }, async () => {
  const client = metricsClient(address);
  const big = Array.from({ length: 1500 }, (_, i) => ({ name: 'doors_rate', value: i, type: 'gauge' }));
  assert.equal((await client.ingestMetrics(big)).eventIds.length, 1500);
  const before = await sample('stratus_grpc_calls_refused_total{service="metrics",reason="rate"}');
  await assert.rejects(client.ingestMetrics([{ name: 'doors_rate', value: 1, type: 'gauge' }]), (e: { code: number; details: string }) => e.code === 8 && /streams\.metricsPerSecondMax/.test(e.details));
  assert.equal(await sample('stratus_grpc_calls_refused_total{service="metrics",reason="rate"}'), before + 1);
  await until('the budget refilled', async () => {
    try {
      return (await client.ingestMetrics([{ name: 'doors_rate', value: 2, type: 'gauge' }])).eventIds.length === 1;
    } catch {
      return false;
    }
  });
  client.close();
});

test('queue.eventsPerSecondMax: a call is read no faster than the budget (flow control, nothing refused or lost)', { timeout: 30_000 }, async () => {
  const client = eventClient(address);
  const redis = await queueRedis(config);
  const started = Date.now();
  const r = await streamEvents(client, events(3000, 'rate-'), 'doors-rate');
  const tookMs = Date.now() - started;
  assert.equal(r.error, null);
  assert.deepEqual(r.summary, { success: true, events_received: 3000 });
  // One second's worth at once, then 1,000/s: 3,000 events cannot all be read in under 2 s.
  assert.ok(tookMs >= 1900, `3,000 events read in ${tookMs} ms at 1,000/s`);
  await deleteKeys(redis, config);
  redis.disconnect();
  client.close();
});

async function h2(): Promise<ClientHttp2Session> {
  const s = connect(`http://${address}`);
  s.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('close', () => reject(new Error('closed before connect')));
  });
  return s;
}

/** A new TCP connection from this address: true when the server closes it without a byte of HTTP/2. */
function closedAtAccept(): Promise<boolean> {
  const socket = new Socket();
  return new Promise<boolean>((resolve) => {
    let got = 0;
    socket.on('data', (b) => (got += b.length));
    socket.on('error', () => {});
    socket.on('close', () => resolve(got === 0));
    socket.connect(pipeline.gateways[0]!.port, '127.0.0.1', () => socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'));
    // A connection the server keeps: it sends its SETTINGS; end it.
    socket.once('data', () => socket.destroy());
  });
}

/** After a cut: this address is in the penalty box (a new connection is closed at accept), then it is out again. */
async function penaltyServed(): Promise<void> {
  const before = await sample('stratus_grpc_connections_closed_total{reason="penalized"}');
  assert.equal(await closedAtAccept(), true);
  assert.equal(await sample('stratus_grpc_connections_closed_total{reason="penalized"}'), before + 1);
  await new Promise((r) => setTimeout(r, 1600));
  assert.equal(await closedAtAccept(), false);
}

function goaway(s: ClientHttp2Session): Promise<number> {
  return new Promise((resolve) => {
    s.once('goaway', (code: number) => resolve(code));
    s.once('close', () => resolve(-1));
  });
}

test('grpc.controlFramesPerSecondMax: a PING flood gets GOAWAY ENHANCE_YOUR_CALM', { timeout: 20_000 }, async () => {
  const before = await sample('stratus_grpc_connections_closed_total{reason="pings"}');
  const s = await h2();
  const gone = goaway(s);
  let sent = 0;
  // One at a time: Node's client keeps at most 10 of its own PINGs unanswered.
  while (!s.closed && !s.destroyed && sent < 1000) {
    const ok = await new Promise<boolean>((resolve) => {
      if (!s.ping((err) => resolve(err === null))) resolve(false);
    });
    if (!ok) break;
    sent++;
  }
  assert.equal(await gone, constants.NGHTTP2_ENHANCE_YOUR_CALM);
  assert.ok(sent >= 20 && sent < 1000, `cut after ${sent} pings`);
  assert.equal(await sample('stratus_grpc_connections_closed_total{reason="pings"}'), before + 1);
  s.destroy();
  await penaltyServed();
});

test('grpc.controlFramesPerSecondMax: a SETTINGS flood gets GOAWAY ENHANCE_YOUR_CALM', { timeout: 20_000 }, async () => {
  const before = await sample('stratus_grpc_connections_closed_total{reason="settings"}');
  const s = await h2();
  const gone = goaway(s);
  let sent = 0;
  // The server's GOAWAY comes instead of the last ack: the close settles the wait too.
  let settle: ((ok: boolean) => void) | null = null;
  s.once('close', () => settle?.(false));
  while (!s.closed && !s.destroyed && sent < 1000) {
    const ok = await new Promise<boolean>((resolve) => {
      settle = resolve;
      try {
        s.settings({ initialWindowSize: 65535 + (sent % 2) }, (err) => resolve(err === null));
      } catch {
        resolve(false);
      }
    });
    if (!ok) break;
    sent++;
  }
  assert.equal(await gone, constants.NGHTTP2_ENHANCE_YOUR_CALM);
  assert.ok(sent >= 19 && sent < 1000, `cut after ${sent} settings`);
  assert.equal(await sample('stratus_grpc_connections_closed_total{reason="settings"}'), before + 1);
  s.destroy();
  await penaltyServed();
});

test('grpc.resetStreamsMax: a rapid reset (streams opened and cancelled at once) gets GOAWAY ENHANCE_YOUR_CALM, no device session is started, and the address waits out grpc.abusePenaltyMs', { timeout: 20_000 }, async () => {
  const before = await sample('stratus_grpc_connections_closed_total{reason="resets"}');
  const s = await h2();
  const gone = goaway(s);
  for (let i = 0; i < 200 && !s.closed && !s.destroyed; i++) {
    const st = s.request({ ':method': 'POST', ':path': '/stratus.v1.DeviceGateway/Connect', 'content-type': 'application/grpc', te: 'trailers', 'x-device-id': `rr-${i}` });
    st.on('error', () => {});
    st.close(constants.NGHTTP2_CANCEL);
    if (i % 10 === 9) await new Promise((r) => setImmediate(r));
  }
  assert.equal(await gone, constants.NGHTTP2_ENHANCE_YOUR_CALM);
  assert.equal(await sample('stratus_grpc_connections_closed_total{reason="resets"}'), before + 1);
  assert.equal(await sample('stratus_devices_connected'), 0);
  s.destroy();
  await penaltyServed();
});

test('grpc.resetStreamsMax: a rapid reset sent in one burst costs the streams before the cut, not the rest of the burst', { timeout: 20_000 }, async () => {
  // 3,000 HEADERS + RST_STREAM pairs in one write (~150 KiB: several 64 KiB socket reads). Each
  // HEADERS the server turns into a stream costs it a stream object and a 'stream' event; after
  // the cut (past grpc.resetStreamsMax) the rest of the read in hand is refused without one, and
  // the later reads are never parsed. (Without that: every HEADERS of the burst up to the GOAWAY's
  // write, hundreds.)
  const server = (pipeline.gateways[0] as unknown as { server: Server }).server;
  let streams = 0;
  const count = (session: Http2Session) => session.on('stream', () => streams++);
  const h2s = grpcHttp2Servers(server, 'the test');
  for (const h of h2s) h.on('session', count);
  try {
    const sock = await openH2('127.0.0.1', pipeline.gateways[0]!.port);
    const block = grpcHeaderBlock('/stratus.v1.DeviceGateway/Connect', address, { 'x-device-id': 'rr-burst' });
    const burst: Buffer[] = [];
    for (let i = 0, id = 1; i < 3000; i++, id += 2) burst.push(headers(id, block), rstStream(id));
    const bytes = Buffer.concat(burst);
    assert.ok(bytes.length > 3 * 64 * 1024, `the burst is ${bytes.length} bytes`);
    sock.socket.write(bytes);
    await sock.closed;
    // 21: the cut comes with the 21st reset (grpc.resetStreamsMax 20). Without the fix: ~500.
    assert.ok(streams > 20 && streams < 60, `the server made ${streams} streams of the 3,000 sent`);
  } finally {
    for (const h of h2s) h.off('session', count);
  }
  await penaltyServed();
});

test('streams reset with an error code before they reach a handler end nothing but themselves (no unhandled stream error)', { timeout: 20_000 }, async () => {
  const s = await h2();
  for (const code of [constants.NGHTTP2_INTERNAL_ERROR, constants.NGHTTP2_PROTOCOL_ERROR, constants.NGHTTP2_STREAM_CLOSED, constants.NGHTTP2_CANCEL]) {
    const st = s.request({ ':method': 'POST', ':path': '/stratus.v1.DeviceGateway/Connect', 'content-type': 'application/grpc', te: 'trailers', 'x-device-id': `err-${code}` });
    st.on('error', () => {});
    st.close(code);
  }
  await new Promise((r) => setTimeout(r, 200));
  s.destroy();
  // The gateway is still here and serves a device.
  const d = new TestDevice('doors-after-errors').connect(address);
  d.send([{ seq: 1, type: 'sq', value: 6 }]);
  await d.until(() => d.results.length === 1, 20_000, 'a result');
  d.close();
});

test('a call half-closed before it reached its handler (an Ingest of no events) is answered', { timeout: 20_000 }, async () => {
  const session = await RawSession.open(address);
  // One at a time: this file's gateway.ingestCallsMax is 2.
  for (let i = 0; i < 5; i++) {
    const c = session.call('/stratus.v1.DeviceGateway/Ingest');
    c.end();
    const outcome = await c.done;
    assert.equal(outcome.grpcStatus, 0, outcome.grpcMessage);
    assert.equal(c.messages.length, 1);
  }
  await session.shutdown();
});

test('a client cancelling many calls among more that complete is not cut (ghz ending a timed run)', { timeout: 30_000 }, async () => {
  const session = await RawSession.open(address);
  // 60 completed calls (refused at once for a missing device id: they end with a status), then 40 cancelled.
  for (let i = 0; i < 60; i++) {
    const outcome = await session.call('/stratus.v1.DeviceGateway/Connect').done;
    assert.equal(outcome.grpcStatus, 3 /* INVALID_ARGUMENT */);
  }
  const held = await holdCalls(session, '/data_nexus.MetricsService/IngestMetrics', 2, 'metrics');
  for (const c of held) c.cancel();
  for (let i = 0; i < 38; i++) session.call('/stratus.v1.DeviceGateway/Connect', { headers: { 'x-device-id': `c-${i}` } }).cancel();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(session.session.closed || session.session.destroyed, false);
  await session.shutdown();
});

test('a fleet sharing one connection that ends streams which ran a while is not cut (a load generator stopping)', { timeout: 30_000 }, async () => {
  const session = await RawSession.open(address);
  const calls = Array.from({ length: 40 }, (_, i) => session.call('/stratus.v1.DeviceGateway/Connect', { headers: { 'x-device-id': `fleet-${i}` } }));
  await until('40 devices connected', async () => (await sample('stratus_devices_connected')) >= 40);
  await new Promise((r) => setTimeout(r, 1100));
  for (const c of calls) c.cancel();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(session.session.closed || session.session.destroyed, false);
  // And a new connection from this address is taken (no penalty).
  assert.equal(await closedAtAccept(), false);
  await session.shutdown();
  await until('the fleet gone', async () => (await sample('stratus_devices_connected')) === 0);
});

test('grpc.connectionsMax: connections beyond it are closed as they are accepted; a freed slot is taken again', { timeout: 30_000 }, async () => {
  await until('no connection left from earlier tests', async () => (await sample('stratus_grpc_connections')) === 0);
  const refusedBefore = await sample('stratus_grpc_connections_closed_total{reason="connections_max"}');
  const held: ClientHttp2Session[] = [];
  for (let i = 0; i < 40; i++) held.push(await h2());
  await until('40 connections open', async () => (await sample('stratus_grpc_connections')) === 40);
  // The 41st: the server closes the TCP connection without a byte of HTTP/2.
  assert.equal(await closedAtAccept(), true);
  assert.equal(await sample('stratus_grpc_connections_closed_total{reason="connections_max"}'), refusedBefore + 1);
  held.pop()!.destroy();
  await until('39 connections open', async () => (await sample('stratus_grpc_connections')) === 39);
  const again = await h2();
  assert.equal(again.closed, false);
  for (const s of [...held, again]) s.destroy();
  await until('every connection closed', async () => (await sample('stratus_grpc_connections')) === 0);
});

test('the memory budget: past 85% of rssMaxMb a new device stream and a new metrics call end RESOURCE_EXHAUSTED, and events on an open stream get OVERLOADED', { timeout: 30_000 }, async () => {
  const gw = pipeline.gateways[0]!;
  const d = new TestDevice('doors-mem').connect(address);
  d.send([{ seq: 1, type: 'sq', value: 2 }]);
  await d.until(() => d.results.length === 1, 20_000, 'a result');
  // Make the budget the process's RSS: the next sample is past 85% of it.
  const budget = gw.memory as unknown as { budgetBytes: number; check(): void };
  const saved = budget.budgetBytes;
  Object.defineProperty(budget, 'budgetBytes', { value: Math.floor(process.memoryUsage.rss() * 0.9), configurable: true });
  budget.check();
  try {
    assert.equal(gw.memory.refusing, true);
    d.send([{ seq: 2, type: 'sq', value: 3 }]);
    await d.until(() => d.rejects.length === 1, 10_000, 'a reject');
    assert.equal(d.rejects[0]!.code, 'OVERLOADED');
    const late = new TestDevice('doors-mem-2').connect(address);
    await late.until(() => late.ended, 10_000, 'refusal');
    assert.equal(late.status?.code, 8);
    assert.match(late.status!.details, /memory budget/);
    const client = metricsClient(address);
    await assert.rejects(client.ingestMetrics([{ name: 'doors_mem', value: 1, type: 'gauge' }]), (e: { code: number; details: string }) => e.code === 8 && /rssMaxMb/.test(e.details));
    client.close();
    late.close();
  } finally {
    Object.defineProperty(budget, 'budgetBytes', { value: saved, configurable: true });
    budget.check();
  }
  assert.equal(gw.memory.refusing, false);
  d.send([{ seq: 3, type: 'sq', value: 5 }]);
  await d.until(() => d.results.length === 2, 20_000, 'a result after the budget');
  d.close();
});

test('gateway.inflightBytesMax bookkeeping: after traffic settles, no byte is left counted', { timeout: 30_000 }, async () => {
  const d = new TestDevice('doors-bytes').connect(address);
  d.send(Array.from({ length: 50 }, (_, i) => ({ seq: i + 1, type: 'sq', value: i, payload: Buffer.alloc(1000) })));
  await d.until(() => d.results.length === 50, 20_000, '50 results');
  await until('in-flight bytes back to 0', async () => (await sample('stratus_gateway_inflight_bytes')) === 0);
  d.close();
});
