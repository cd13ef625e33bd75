/**
 * DeviceSession's downlink (src/gateway/session.ts) with a fake host, link and transport: Downlinks
 * split under DOWNLINK_BYTES_MAX, sentSeq, write()/'drain' back-pressure, live entries taken in
 * index order and a gap read from the (fake) buffer, the cursor's dedupe and start().
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testConfig } from '../../helpers/config.js';
import { DeviceSession, type SessionHost } from '../../../src/gateway/session.js';
import { encodeResult } from '../../../src/wire/result-record.js';
import type { BufferEntry, DeliveryLink } from '../../../src/gateway/delivery.js';
import type { Downlink } from '../../../src/gateway/protocol.js';

const MIB = 1024 * 1024;

interface Fake {
  session: DeviceSession;
  writes: Downlink[];
  ends: unknown[];
  /** What write() returns next. */
  transport: { writable: boolean };
  dirty: number;
  /** The fake device buffer (index n -> result bytes) and the link calls seen. */
  buffer: Map<number, Buffer>;
  reads: [afterN: number, count: number][];
  trims: number[];
  claims: [string, boolean][];
}

function fake(overrides: Record<string, string> = {}, delivered = 0): Fake {
  const config = testConfig(overrides);
  const buffer = new Map<number, Buffer>();
  const reads: [number, number][] = [];
  const trims: number[] = [];
  const claims: [string, boolean][] = [];
  const link = {
    claim: async (deviceId: string, awaitHandoff: boolean) => void claims.push([deviceId, awaitHandoff]),
    deliveredSeq: async () => delivered,
    noteSent: () => {},
    readBuffer: async (_d: string, afterN: number, count: number): Promise<BufferEntry[]> => {
      reads.push([afterN, count]);
      return [...buffer.entries()]
        .filter(([n]) => n > afterN)
        .sort((a, b) => a[0] - b[0])
        .slice(0, count)
        .map(([n, result]) => ({ n, result }));
    },
    trimBuffer: async (_d: string, n: number) => void trims.push(n),
  } as unknown as DeliveryLink;
  const f = { writes: [] as Downlink[], ends: [] as unknown[], transport: { writable: true }, dirty: 0, buffer, reads, trims, claims } as Fake;
  const host: SessionHost = {
    config,
    link,
    markDirty: () => void f.dirty++,
    closed: () => {},
  };
  f.session = new DeviceSession(host, 'dev-1', {
    write: (msg) => {
      f.writes.push({ ...msg, ...(msg.results ? { results: [...msg.results] } : {}) });
      return f.transport.writable;
    },
    end: (st) => void f.ends.push(st),
  });
  return f;
}

/** A session past start() (cursor 0, an empty buffer read): live entries are taken from here on. */
async function started(overrides: Record<string, string> = {}): Promise<Fake> {
  const f = fake(overrides);
  await f.session.start(0);
  f.reads.length = 0;
  f.claims.length = 0;
  return f;
}

const result = (seq: number, payloadBytes = 0): Buffer =>
  encodeResult({ deviceId: 'd', seq, value: seq * 2, sentAtUs: 1, receivedAtUs: 2, processedAtUs: 3, type: 'echo', payload: Buffer.alloc(payloadBytes, 7) });

/** Waits until `cond` holds (microtasks and timers of the fake link), failing after 2 s. */
async function until(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

const seqsOf = (writes: Downlink[]) => writes.map((w) => (w.results ?? []).map((r) => r.seq));

test('flush splits results so each Downlink stays under 1 MiB; sentSeq is the last result written', async () => {
  const f = await started({ 'gateway-outbound-max': '100' });
  // 300 000 + 64 bytes each: three fit in 1 MiB (900 192), four do not (1 200 256).
  for (let n = 1; n <= 5; n++) f.session.onLive(n, result(10 + n, 300_000));
  // One oversize result goes alone.
  f.session.onLive(6, result(16, MIB + 10));
  f.session.onLive(7, result(17, 10));
  assert.equal(f.session.sentSeq, 0, 'nothing written before a flush');
  assert.equal(f.session.cursor, 17);
  f.session.flush();
  assert.deepEqual(seqsOf(f.writes), [[11, 12, 13], [14, 15], [16], [17]]);
  assert.equal(f.session.sentSeq, 17);
  assert.deepEqual(f.writes[0]!.results![0]!, { seq: 11, type: 'echo', value: 22, payload: f.writes[0]!.results![0]!.payload, sentAtUs: 1, processedAtUs: 3 });
  assert.equal(f.writes[0]!.results![0]!.payload.length, 300_000);
});

test('blocked after write() returns false: nothing more is written until onDrain, then flush resumes', async () => {
  const f = await started({ 'gateway-outbound-max': '100' });
  for (let n = 1; n <= 5; n++) f.session.onLive(n, result(n, 300_000));
  f.transport.writable = false;
  f.session.flush();
  assert.deepEqual(seqsOf(f.writes), [[1, 2, 3]]);
  assert.equal(f.session.blocked, true);
  assert.equal(f.session.sentSeq, 3, 'what was handed to the transport counts as written');
  f.session.onLive(6, result(6));
  f.session.flush();
  assert.equal(f.writes.length, 1, 'blocked: no write');
  const dirtyBefore = f.dirty;
  f.transport.writable = true;
  f.session.onDrain();
  assert.equal(f.session.blocked, false);
  assert.equal(f.dirty, dirtyBefore + 1, 'the drain asks the host for a flush');
  f.session.flush();
  assert.deepEqual(seqsOf(f.writes), [[1, 2, 3], [4, 5, 6]]);
  assert.equal(f.session.sentSeq, 6);
});

test('onLive takes consecutive indexes once; a result at or below the cursor is skipped', async () => {
  const f = await started();
  f.session.onLive(1, result(5));
  f.session.onLive(2, result(6));
  f.session.onLive(2, result(6));
  f.session.onLive(1, result(5));
  // Index 3 carries a seq the device already has (a resend's second result): skipped, index taken.
  f.session.onLive(3, result(6));
  f.session.onLive(4, result(7));
  f.session.flush();
  assert.deepEqual(seqsOf(f.writes), [[5, 6, 7]]);
  assert.equal(f.session.lastN, 4);
  assert.deepEqual(f.reads, []);
});

test('a gap in live indexes triggers a drain from the buffer; results come in order, each once', async () => {
  const f = await started();
  f.session.onLive(1, result(1));
  f.session.onLive(2, result(2));
  f.session.flush();
  // 3 was missed; the buffer has 3 and 4.
  f.buffer.set(3, result(3));
  f.buffer.set(4, result(4));
  f.session.onLive(4, result(4));
  // Arrives while the drain runs: noted, read from the buffer.
  f.buffer.set(5, result(5));
  f.session.onLive(5, result(5));
  // The drain ends in the same turn it takes 5 (nothing awaited after its last read).
  await until('the drain read past 5', () => f.session.lastN === 5);
  assert.deepEqual(f.reads, [[2, 500], [4, 500]], 'read from the last taken index; again for the entry seen during the read');
  f.session.onLive(6, result(6));
  f.session.flush();
  assert.deepEqual(seqsOf(f.writes).flat(), [1, 2, 3, 4, 5, 6]);
  assert.equal(f.session.lastN, 6);
  assert.deepEqual(f.ends, []);
});

test('live entries past gateway.outboundMax are left in the buffer and read at the device\'s pace', async () => {
  const f = await started({ 'gateway-outbound-max': '2' });
  for (let n = 1; n <= 5; n++) f.buffer.set(n, result(n));
  f.session.onLive(1, result(1));
  f.session.onLive(2, result(2));
  // Two wait in outbound: 3 is not taken live; the drain reads it from the buffer in pages of 2.
  f.session.onLive(3, result(3));
  await until('all five written', () => f.session.sentSeq === 5);
  assert.deepEqual(seqsOf(f.writes).flat(), [1, 2, 3, 4, 5]);
  assert.ok(f.reads.every(([, count]) => count === 2), 'pages of outboundMax');
  assert.deepEqual(f.ends, []);
});

test('live entries that come before start() has the cursor wait in the buffer: nothing below the cursor is sent', async () => {
  const f = fake({}, 2);
  for (let n = 1; n <= 3; n++) f.buffer.set(n, result(n));
  // Published while the session claims the device and reads its record (d = 2).
  f.session.onLive(1, result(1));
  f.session.onLive(2, result(2));
  f.session.onLive(3, result(3));
  assert.deepEqual(f.writes, []);
  await f.session.start(null);
  assert.deepEqual(seqsOf(f.writes), [[3]]);
  assert.equal(f.session.sentSeq, 3);
});

test('start(): claims (awaiting the handoff without a client cursor), cursor from d, skips and trims what the device has', async () => {
  const f = fake({}, 2);
  for (let n = 1; n <= 4; n++) f.buffer.set(n, result(n));
  await f.session.start(null);
  assert.deepEqual(f.claims, [['dev-1', true]]);
  assert.deepEqual(seqsOf(f.writes), [[3, 4]]);
  assert.equal(f.session.sentSeq, 4);
  assert.deepEqual(f.trims, [2]);

  const c = fake({}, 99);
  for (let n = 1; n <= 3; n++) c.buffer.set(n, result(n));
  await c.session.start(1);
  assert.deepEqual(c.claims, [['dev-1', false]]);
  assert.deepEqual(seqsOf(c.writes), [[2, 3]], 'the client\'s cursor wins over d');
});

test('a hole after the last taken index (buffer cap dropped results) ends RESOURCE_EXHAUSTED, naming the count', async () => {
  const f = await started();
  f.session.onLive(1, result(1));
  f.buffer.set(4, result(4));
  f.session.onLive(4, result(4));
  await until('the session ended', () => f.ends.length === 1);
  const st = f.ends[0] as { code: number; details: string };
  assert.equal(st.code, 8 /* RESOURCE_EXHAUSTED */);
  assert.match(st.details, /2 results after the last it was sent were dropped/);
});
