/**
 * The archiver (src/archive/archiver.ts) on the real path: events acknowledged by a gateway, turned
 * into results by the processor, archived from both topics into a SQLite store (the PostgreSQL
 * store passes the same contract suite; the fault suite runs the archiver on it). Every acked
 * (device, seq) is checked: one event row, joined to its result, and nothing else. Also: a payload
 * over archive.payloadBytesMax and an undecodable record dead-lettered with their reasons, and
 * GET /v1/devices/{id}/history with auth as for SSE.
 */
import assert from 'node:assert/strict';
import { Client, credentials, type ServiceError } from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startArchiver, type ArchiverStats } from '../../../src/archive/archiver.js';
import { openStore } from '../../../src/archive/open-store.js';
import type { ArchiveStore } from '../../../src/archive/store.js';
import { issueToken } from '../../../src/auth/token.js';
import { loadConfig } from '../../../src/config.js';
import { codecs, type BatchAck, type Event } from '../../../src/gateway/protocol.js';
import { historyOffRoute, historyRoute } from '../../../src/http/history-route.js';
import { HttpSurface } from '../../../src/http/server.js';
import { kafkaClients } from '../../../src/kafka/factory.js';
import type { RunningStage } from '../../../src/processor/processor.js';
import { topology } from '../../../src/topology.js';
import { testConfig } from '../../helpers/config.js';
import { startPipeline, type TestPipeline } from '../../helpers/pipeline.js';

const dir = mkdtempSync(join(tmpdir(), 'stratus-archiver-'));
const SECRET = 'x'.repeat(40);
const config = testConfig({
  'kafka-partitions': '3',
  'archive-store': 'sqlite',
  'archive-sqlite-path': join(dir, 'archive.sqlite'),
  'archive-payload-bytes-max': '64',
  // Small transactions, so one Kafka batch is written in several.
  'archive-batch-rows-max': '50',
});
const t = topology(config);
let pipeline: TestPipeline;
let store: ArchiveStore;
let archiver: RunningStage<ArchiverStats>;
let surface: HttpSurface;

before(async () => {
  pipeline = await startPipeline(config, ['gw-arch']);
  store = await openStore(config);
  archiver = await startArchiver(config, 'arch-test', store);
  const authed = loadConfig({ flags: { 'auth-token-secret': SECRET, 'archive-history-limit-max': '500' } });
  surface = await HttpSurface.start(config, { check: async () => null }, { port: 0, routes: [historyRoute(authed, store)] });
});
after(async () => {
  await surface.close();
  await archiver.stop();
  await store.close();
  await pipeline.stop();
  rmSync(dir, { recursive: true, force: true });
});

function ingestBatch(events: Event[]): Promise<BatchAck> {
  const client = new Client(`127.0.0.1:${pipeline.gateways[0]!.port}`, credentials.createInsecure());
  return new Promise<BatchAck>((resolve, reject) =>
    client.makeUnaryRequest('/stratus.v1.DeviceGateway/IngestBatch', codecs.EventBatch.serialize, codecs.BatchAck.deserialize, { events }, (err: ServiceError | null, res?: BatchAck) => {
      client.close();
      if (err) reject(err);
      else resolve(res!);
    }),
  );
}

async function until(what: string, cond: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const DEVICES = 6;
const PER_DEVICE = 150;

test('every acknowledged event is archived once, joined to its result; nothing else is', async () => {
  for (let round = 0; round < PER_DEVICE / 50; round++) {
    const events: Event[] = [];
    for (let d = 0; d < DEVICES; d++) {
      for (let i = 1; i <= 50; i++) {
        const seq = round * 50 + i;
        events.push({ deviceId: `arch-${d}`, seq, type: 'sq', value: seq + d, payload: Buffer.from(`p${seq}`), sentAtUs: Date.now() * 1000 });
      }
    }
    const ack = await ingestBatch(events);
    assert.equal(ack.accepted, events.length, JSON.stringify(ack.rejects.slice(0, 3)));
  }
  const total = DEVICES * PER_DEVICE;
  await until('every event and result archived', async () => {
    const c = await store.counts();
    return c.events >= total && c.results >= total;
  });
  // A sentinel after the checked events, archived: nothing of the checked ones can still be on its way.
  await ingestBatch([{ deviceId: 'arch-sentinel', seq: 1, type: 'sq', value: 1, payload: Buffer.alloc(0), sentAtUs: 0 }]);
  await until('the sentinel archived with its result', async () => (await store.history({ deviceId: 'arch-sentinel', limit: 1 }))[0]?.result != null);
  assert.deepEqual(await store.counts(), { events: total + 1, results: total + 1, deadLetters: 0 });
  for (let d = 0; d < DEVICES; d++) {
    const h = await store.history({ deviceId: `arch-${d}`, limit: 1000 });
    assert.deepEqual(h.map((e) => e.seq), Array.from({ length: PER_DEVICE }, (_, i) => i + 1), `device arch-${d}`);
    for (const e of h) {
      assert.equal(e.value, e.seq + d);
      assert.equal(e.result?.value, (e.seq + d) ** 2, `arch-${d}/${e.seq} joined to its result`);
      assert.equal(Buffer.from(e.payload).toString(), `p${e.seq}`);
      assert.ok(e.result!.processedAtUs >= e.receivedAtUs);
    }
  }
  assert.ok(archiver.stats.batches > 0);
  assert.equal(archiver.stats.writeFailures, 0);
});

test('a payload over archive.payloadBytesMax and an undecodable record are dead-lettered with their reasons; the rest is archived', async () => {
  const before = await store.counts();
  const ack = await ingestBatch([
    { deviceId: 'arch-big', seq: 1, type: 'sq', value: 2, payload: Buffer.alloc(100, 1), sentAtUs: 0 },
    { deviceId: 'arch-big', seq: 2, type: 'sq', value: 3, payload: Buffer.alloc(10, 1), sentAtUs: 0 },
  ]);
  assert.equal(ack.accepted, 2);
  // A record no version of the gateway writes, straight onto the events topic.
  const kafka = await kafkaClients(config);
  let reported: (err: Error | null) => void = () => {};
  const delivered = new Promise<Error | null>((r) => (reported = r));
  const producer = await kafka.producer(config, 'arch-test-garbage', (err) => reported(err));
  assert.ok(producer.produce(t.topics.events, 0, null, Buffer.from([0x0a, 0xff, 0xff, 0xff]), null));
  assert.equal(await delivered, null);
  await producer.disconnect();
  // Event 1 and its result (the same payload back) over the limit; the record undecodable.
  await until('three dead letters', async () => (await store.counts()).deadLetters >= 3);
  await until('event 2 archived with its result', async () => (await store.history({ deviceId: 'arch-big', limit: 10 }))[0]?.result != null);
  const dead = await store.deadLetters(100);
  assert.equal(dead.length, 3, JSON.stringify(dead));
  const big = dead.filter((d) => d.deviceId === 'arch-big');
  assert.deepEqual(big.map((d) => [d.topic, d.seq]).sort(), [[t.topics.events, 1], [t.topics.results, 1]]);
  for (const d of big) assert.match(d.reason, /payload of 100 bytes is over archive\.payloadBytesMax \(64\)/);
  const garbage = dead.find((d) => d.deviceId === null)!;
  assert.equal(garbage.topic, t.topics.events);
  assert.equal(garbage.partition, 0);
  assert.match(garbage.reason, /^undecodable event record: /);
  const after = await store.counts();
  assert.deepEqual({ events: after.events - before.events, results: after.results - before.results }, { events: 1, results: 1 });
  assert.deepEqual((await store.history({ deviceId: 'arch-big', limit: 10 })).map((e) => e.seq), [2]);
});

test('GET /v1/devices/{id}/history: the JSON of the archived events, with auth as for SSE', async () => {
  const url = (id: string, q = '') => `http://${surface.address}/v1/devices/${encodeURIComponent(id)}/history${q}`;
  const token = issueToken(SECRET, 'arch-1', Math.floor(Date.now() / 1000) + 60);
  assert.equal((await fetch(url('arch-1'))).status, 401);
  assert.equal((await fetch(url('arch-1'), { headers: { authorization: `Bearer ${issueToken(SECRET, 'arch-2', Math.floor(Date.now() / 1000) + 60)}` } })).status, 403);
  const res = await fetch(url('arch-1', '?limit=5'), { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const body = (await res.json()) as { deviceId: string; store: string; more: boolean; events: { seq: number; value: number; payload: string; result: { value: number } | null; latencyMs: { processing: number } }[] };
  assert.equal(body.deviceId, 'arch-1');
  assert.equal(body.store, 'sqlite');
  assert.equal(body.more, true);
  assert.deepEqual(body.events.map((e) => e.seq), [146, 147, 148, 149, 150]);
  assert.equal(body.events[0]!.result!.value, 147 ** 2);
  assert.equal(Buffer.from(body.events[0]!.payload, 'base64').toString(), 'p146');
  assert.ok(body.events[0]!.latencyMs.processing >= 0);
  const since = await fetch(url('arch-1', '?since=1h&limit=500'), { headers: { authorization: `Bearer ${token}` } });
  assert.equal(((await since.json()) as { events: unknown[] }).events.length, PER_DEVICE);
  for (const [q, what] of [['?limit=0', /limit must be a whole number from 1 to 500/], ['?limit=501', /archive\.historyLimitMax/], ['?since=yesterday', /since must be an ISO 8601 time/]] as const) {
    const bad = await fetch(url('arch-1', q), { headers: { authorization: `Bearer ${token}` } });
    assert.equal(bad.status, 400, q);
    assert.match(await bad.text(), what);
  }
});

test('with archive.store off, the history path answers 404 saying so (not SSE\'s not-found)', async (t) => {
  const off = await HttpSurface.start(config, { check: async () => null }, { port: 0, routes: [historyOffRoute()] });
  t.after(() => off.close());
  const res = await fetch(`http://${off.address}/v1/devices/dev-1/history`);
  assert.equal(res.status, 404);
  assert.match(await res.text(), /^no archive here: archive\.store is off; set it to sqlite or postgres/);
});
