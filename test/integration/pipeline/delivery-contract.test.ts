/**
 * The delivery contract (README "Delivery contract"), one named regression test per way it broke
 * in ordinary device behaviour (issue 14). Each failed on the engine before the contract was built.
 * Real Kafka, Redis and gRPC: two gateway instances, a processor and a forwarder in this process,
 * an SSE hub beside them.
 */
import assert from 'node:assert/strict';
import { Client, credentials, Metadata, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeliveryLink } from '../../../src/gateway/delivery.js';
import { codecs, type BatchAck, type Event, type EventResponse, type IngestSummary } from '../../../src/gateway/protocol.js';
import { HttpSurface } from '../../../src/http/server.js';
import { SseHub } from '../../../src/http/sse.js';
import { createRedis, type RedisClient } from '../../../src/redis/client.js';
import { topology } from '../../../src/topology.js';
import { testConfig } from '../../helpers/config.js';
import { TestDevice } from '../../helpers/device.js';
import { startPipeline, type TestPipeline } from '../../helpers/pipeline.js';
import { SseClient } from '../../helpers/sse-client.js';

// A short presence lease, so an SSE stream outlives several of them within the test.
const config = testConfig({ 'kafka-partitions': '4', 'gateway-presence-lease-ms': '1500', 'http-sse-heartbeat-ms': '200' });
const t = topology(config);
let pipeline: TestPipeline;
let hub: SseHub;
let surface: HttpSurface;
let redis: RedisClient;
const address = (i: number) => `127.0.0.1:${pipeline.gateways[i]!.port}`;

before(async () => {
  pipeline = await startPipeline(config, ['gw-a', 'gw-b']);
  hub = await SseHub.start(config, 'gw-a');
  surface = await HttpSurface.start(config, { check: async () => null }, { port: 0, routes: [hub.route()] });
  redis = createRedis(config, 'contract-test', { offlineQueue: true });
  await redis.connect();
});
after(async () => {
  redis.disconnect();
  await surface.close();
  await hub.stop();
  await pipeline.stop();
});

const ev = (deviceId: string, seq: number, value = seq): Event => ({ deviceId, seq, type: 'sq', value, payload: Buffer.alloc(0), sentAtUs: 0 });

function ingestBatch(addr: string, events: Event[]): Promise<BatchAck> {
  const client = new Client(addr, credentials.createInsecure());
  return new Promise<BatchAck>((resolve, reject) =>
    client.makeUnaryRequest('/stratus.v1.DeviceGateway/IngestBatch', codecs.EventBatch.serialize, codecs.BatchAck.deserialize, { events }, (err: ServiceError | null, res?: BatchAck) => {
      client.close();
      if (err) reject(err);
      else resolve(res!);
    }),
  );
}

function ingest(addr: string, events: Event[]): Promise<IngestSummary> {
  const client = new Client(addr, credentials.createInsecure());
  return new Promise<IngestSummary>((resolve, reject) => {
    const call = client.makeClientStreamRequest('/stratus.v1.DeviceGateway/Ingest', codecs.Event.serialize, codecs.IngestSummary.deserialize, (err: ServiceError | null, res?: IngestSummary) => {
      client.close();
      if (err) reject(err);
      else resolve(res!);
    });
    for (const e of events) call.write(e);
    call.end();
  });
}

/** Every result a fresh stream of the device gets (cursor 0), once the result for `sentinel` came. */
async function resultsOf(deviceId: string, sentinel: number, addr = address(0)): Promise<Map<number, number[]>> {
  const d = new TestDevice(deviceId).connect(addr, { cursor: 0 });
  await d.until(() => d.results.some((r) => r.seq === sentinel), 30_000, `the sentinel ${sentinel}`);
  d.close();
  const bySeq = new Map<number, number[]>();
  for (const r of d.results) bySeq.set(r.seq, [...(bySeq.get(r.seq) ?? []), r.value]);
  return bySeq;
}

test('1a. IngestBatch seq 10, then IngestBatch seq 5 for the same device: 5 is refused OUT_OF_ORDER, not acked without a result', { timeout: 60_000 }, async () => {
  const first = await ingestBatch(address(0), [ev('two-calls', 10)]);
  assert.deepEqual(first.eventIds, ['two-calls/10']);
  const second = await ingestBatch(address(1), [ev('two-calls', 5)]);
  assert.equal(second.accepted, 0);
  assert.deepEqual(second.rejects.map((r) => [r.seq, r.code, r.lastSeq]), [[5, 'OUT_OF_ORDER', 10]]);
  await ingestBatch(address(0), [ev('two-calls', 11)]);
  const got = await resultsOf('two-calls', 11);
  assert.deepEqual([...got.entries()], [[10, [100]], [11, [121]]]);
});

test('1b. two concurrent IngestBatch calls per device (odd and even seqs, 20 devices, both instances): every acked event has exactly one result, every other one a Reject', { timeout: 120_000 }, async () => {
  const devices = Array.from({ length: 20 }, (_, i) => `conc-${i}`);
  const calls: Promise<BatchAck>[] = [];
  for (const dev of devices) {
    for (const parity of [1, 0]) {
      const events: Event[] = [];
      for (let seq = 1; seq <= 200; seq++) if (seq % 2 === parity) events.push(ev(dev, seq));
      // Ten batches of ten per call direction, interleaved in time across both instances.
      for (let b = 0; b < 10; b++) calls.push(ingestBatch(address(parity), events.slice(b * 10, b * 10 + 10)));
    }
  }
  const acks = await Promise.all(calls);
  const acked = new Map<string, Set<number>>(devices.map((d) => [d, new Set<number>()]));
  let rejected = 0;
  for (const a of acks) {
    for (const id of a.eventIds) {
      const [dev, seq] = id.split('/') as [string, string];
      acked.get(dev)!.add(Number(seq));
    }
    rejected += a.rejects.length;
    for (const r of a.rejects) assert.ok(['OUT_OF_ORDER', 'BUSY', 'DUPLICATE'].includes(r.code), r.code);
  }
  const total = [...acked.values()].reduce((n, s) => n + s.size, 0);
  assert.equal(total + rejected, 4000, 'every event acked or rejected');
  for (const dev of devices) {
    await ingestBatch(address(0), [ev(dev, 1000)]);
    const got = await resultsOf(dev, 1000);
    got.delete(1000);
    assert.deepEqual([...got.keys()].sort((a, b) => a - b), [...acked.get(dev)!].sort((a, b) => a - b), `${dev}: results are exactly the acked seqs`);
    for (const [seq, values] of got) assert.deepEqual(values, [seq * seq], `${dev} seq ${seq}: one correct result`);
  }
  process.stdout.write(`# 1b: ${total} acked (each with one result), ${rejected} rejected, of 4000\n`);
});

test('1c. a Connect stream (odd seqs) and an Ingest call (even seqs) for the same device: every acked event of both has exactly one result', { timeout: 60_000 }, async () => {
  const d = new TestDevice('mixed').connect(address(0));
  const odd: Partial<Event>[] = [];
  const even: Event[] = [];
  for (let seq = 1; seq <= 400; seq++) (seq % 2 === 1 ? odd : even).push(seq % 2 === 1 ? { seq, type: 'sq', value: seq } : ev('mixed', seq));
  // The stream is up (its response headers came) before the call starts, so the two race event
  // by event; started together, the call could take all its events before the stream was set up,
  // and every odd one would be OUT_OF_ORDER (right, but not the interleaving this checks).
  await d.until(() => d.headers !== null, 10_000, 'response headers');
  const call = ingest(address(1), even);
  for (let i = 0; i < odd.length; i += 20) d.send(odd.slice(i, i + 20));
  const summary = await call;
  await d.until(() => d.ackedSeq > 0 && d.rejects.length + [...new Set(d.results.map((r) => r.seq))].filter((s) => s % 2 === 1).length >= 200, 30_000, 'every odd event settled');
  d.send([{ seq: 1001, type: 'sq', value: 1001 }]);
  await d.until(() => d.results.some((r) => r.seq === 1001), 30_000, 'the sentinel');
  const seqs = d.results.map((r) => r.seq);
  assert.equal(new Set(seqs).size, seqs.length, 'no result twice');
  for (const r of d.results) assert.equal(r.value, r.seq * r.seq);
  const oddResults = seqs.filter((s) => s % 2 === 1 && s !== 1001).length;
  const evenResults = seqs.filter((s) => s % 2 === 0).length;
  assert.equal(oddResults + d.rejects.length, 200, 'every odd event: a result or a Reject');
  assert.equal(evenResults, summary.accepted, 'every acked even event has its result');
  assert.equal(summary.accepted + summary.rejected, 200);
  d.close();
});

test('2. a device that restarts its counter is told: its old seqs are refused DUPLICATE with its last seq, and a new stream says x-last-seq', { timeout: 60_000 }, async () => {
  const d = new TestDevice('reboot').connect(address(0));
  d.send([1, 2, 3].map((seq) => ({ seq, type: 'sq', value: seq })));
  await d.until(() => d.results.length === 3, 30_000, 'the first readings');
  d.close();
  // Rebooted: counter back at 1, new readings.
  const r = new TestDevice('reboot').connect(address(1));
  await r.until(() => r.headers !== null, 10_000, 'response headers');
  assert.deepEqual(r.headers!.get('x-last-seq'), ['3']);
  r.send([1, 2, 3].map((seq) => ({ seq, type: 'sq', value: 10 + seq })));
  await r.until(() => r.rejects.length === 3, 30_000, 'rejects');
  assert.deepEqual(r.rejects.map((x) => [x.seq, x.code, x.lastSeq]), [[1, 'DUPLICATE', 3], [2, 'DUPLICATE', 3], [3, 'DUPLICATE', 3]]);
  r.send([4, 5, 6].map((seq) => ({ seq, type: 'sq', value: 10 + seq })));
  await r.until(() => r.results.some((x) => x.seq === 6), 30_000, 'the renumbered readings');
  assert.deepEqual(r.results.filter((x) => x.seq > 3).map((x) => [x.seq, x.value]), [[4, 196], [5, 225], [6, 256]]);
  r.close();
});

function nimbus(addr: string, clientId: string) {
  const client = new Client(addr, credentials.createInsecure());
  const md = new Metadata();
  md.set('client_id', clientId);
  const call = client.makeBidiStreamRequest('/nimbus.NimbusService/ProcessEvent', codecs.EventRequest.serialize, codecs.EventResponse.deserialize, md);
  const responses: EventResponse[] = [];
  let status: ServiceError | null = null;
  call.on('data', (r: EventResponse) => responses.push(r));
  call.on('error', (e: ServiceError) => (status = e));
  return { client, call, responses, status: () => status };
}

async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

test('3. a Nimbus client taken over while the server still holds its old stream (a second copy, on either instance) gets no earlier result again', { timeout: 60_000 }, async () => {
  for (const [label, second] of [['other instance', 1], ['same instance', 0]] as const) {
    const id = `takeover-${second}`;
    const first = nimbus(address(0), id);
    for (let n = 1; n <= 30; n++) first.call.write({ eventName: 'a', number: n });
    await until(() => first.responses.length === 30, 30_000, `${label}: the first copy's 30 responses`);
    // The old stream is still open (never ended by the client).
    const copy = nimbus(address(second), id);
    await until(() => first.status() !== null, 10_000, `${label}: the old stream superseded`);
    for (let n = 31; n <= 35; n++) copy.call.write({ eventName: 'b', number: n });
    await until(() => copy.responses.length >= 5, 30_000, `${label}: the copy's own responses`);
    await sleep(300); // anything from before would have come first; this only makes a failure show more of it
    assert.deepEqual(copy.responses.map((r) => r.number), [31, 32, 33, 34, 35], `${label}: the copy got only its own results`);
    assert.equal(first.status()!.code, 10 /* ABORTED */);
    copy.call.end();
    first.client.close();
    copy.client.close();
  }
});

test('4. an SSE stream left open past several presence leases keeps getting results', { timeout: 60_000 }, async () => {
  const sse = await new SseClient().open(`http://127.0.0.1:${surface.port}/v1/devices/sse-long/events`);
  assert.equal(sse.status, 200);
  await ingestBatch(address(0), [ev('sse-long', 1)]);
  await until(() => sse.resultEvents().length > 0, 30_000, 'the first result');
  // The lease is 1.5 s: past three of them, a hub that does not renew is forgotten by the forwarder.
  await sleep(4500);
  const key = await redis.get(t.redis.presence('sse-long'));
  assert.equal(key, 'gw-a-sse', 'the hub still holds the device');
  await ingestBatch(address(1), [ev('sse-long', 2)]);
  await until(() => sse.resultEvents().length === 2, 5_000, 'the result sent after the leases');
  assert.deepEqual(sse.resultEvents().map((e) => e.id), ['1', '2']);
  sse.close();
});

test("5. a device's dev: hash deleted while it streams (its buffer kept): every acked event still has exactly one result, and other devices are not held up", { timeout: 90_000 }, async () => {
  const victim = new TestDevice('lost-state').connect(address(0));
  const other = new TestDevice('bystander').connect(address(1));
  const send = (from: number, to: number) => {
    for (let seq = from; seq <= to; seq++) {
      victim.send([{ seq, type: 'sq', value: seq }]);
      other.send([{ seq, type: 'sq', value: seq }]);
    }
  };
  send(1, 150);
  // Its state goes while its buffer holds 150 results (an evicting policy, an operator's cleanup).
  await victim.until(() => victim.results.length === 150, 30_000, 'the first 150 results');
  await redis.del(t.redis.deviceState('lost-state'));
  send(151, 300);
  await other.until(() => other.results.length === 300, 30_000, "the bystander's results");
  await victim.until(() => victim.ackedSeq === 300 || victim.ended, 30_000, 'every victim event settled');
  victim.send([{ seq: 1000, type: 'sq', value: 1000 }]);
  await victim.until(() => victim.results.some((r) => r.seq === 1000), 30_000, 'the sentinel');
  const seqs = victim.results.map((r) => r.seq).filter((s) => s !== 1000);
  assert.equal(new Set(seqs).size, seqs.length, 'no result twice');
  const rejected = new Set(victim.rejects.map((r) => r.seq));
  for (let seq = 1; seq <= 300; seq++) assert.ok(seqs.includes(seq) !== rejected.has(seq), `seq ${seq}: a result or a reject, not both, not neither`);
  for (const r of victim.results) assert.equal(r.value, r.seq * r.seq);
  victim.close();
  other.close();
});

test('6. presence renewal extends only an entry this instance still holds: another instance\'s claim survives, and the stale session is ended', async () => {
  const link = await DeliveryLink.connect(config, 'renewer', { onEntries: () => {}, onTakeover: () => {} });
  try {
    const key = (d: string) => t.redis.presence(d);
    await redis.set(key('mine'), 'renewer', 'PX', 300);
    await redis.set(key('taken'), 'newer', 'PX', 60_000);
    const lost: string[] = [];
    const held = ['mine', 'taken', 'lapsed'].map((deviceId) => ({ deviceId, sentSeq: 7, lost: () => lost.push(deviceId) }));
    await link.renew(held);
    assert.deepEqual(lost, ['taken']);
    assert.equal(await redis.get(key('taken')), 'newer', "another instance's claim is left alone");
    assert.equal(await redis.get(key('mine')), 'renewer');
    assert.ok((await redis.pttl(key('mine'))) > 1000, 'extended to the lease (1.5 s)');
    assert.equal(await redis.get(key('lapsed')), 'renewer', 'a lapsed entry of a live session is taken again');
    assert.equal(await redis.hget(t.redis.deviceState('mine'), 'd'), '7', 'the written position is recorded');
    // The release of a superseded session leaves the newer holder's entry too.
    await link.release('taken', 7, true);
    assert.equal(await redis.get(key('taken')), 'newer');
  } finally {
    await link.close();
  }
});

test('7. an Ingest call refused for naming too many devices produces nothing for the device over the cap', { timeout: 60_000 }, async () => {
  const small = testConfig({ 'kafka-partitions': '2', 'gateway-devices-max': '2' });
  const p = await startPipeline(small, ['gw-cap']);
  try {
    const addr = `127.0.0.1:${p.gateways[0]!.port}`;
    const client = new Client(addr, credentials.createInsecure());
    const refused = await new Promise<ServiceError | null>((resolve) => {
      const call: ClientReadableStream<IngestSummary> = client.makeClientStreamRequest('/stratus.v1.DeviceGateway/Ingest', codecs.Event.serialize, codecs.IngestSummary.deserialize, (err: ServiceError | null) => resolve(err)) as never;
      const w = call as unknown as { write(e: Event): void; end(): void };
      w.write(ev('cap-a', 1));
      w.write(ev('cap-b', 1));
      w.write(ev('cap-c', 1, 7));
      w.end();
    });
    client.close();
    assert.equal(refused?.code, 8 /* RESOURCE_EXHAUSTED */);
    // Device c's next event is its first: one partition, in order, so a result for the refused
    // seq 1 would have come before the result for seq 2.
    const ack = await ingestBatch(addr, [ev('cap-c', 1, 5)]);
    assert.deepEqual(ack.eventIds, ['cap-c/1'], 'seq 1 of cap-c was never taken');
    await ingestBatch(addr, [ev('cap-c', 2)]);
    const got = await resultsOf('cap-c', 2, addr);
    assert.deepEqual([...got.entries()], [[1, [25]], [2, [4]]]);
  } finally {
    await p.stop();
  }
});
