/**
 * Hostile input against a real `stratus run` in a child process: over 100,000 generated bad
 * inputs (malformed protobuf and gRPC framing, messages over the receive limit, invalid UTF-8,
 * seq 0 / backwards / 2^64-1, NaN and +-Infinity, unknown types, 10,000 concurrent streams
 * claiming one device id, metadata floods, SSE requests with bad ids, a device that floods bad
 * events and never reads). Every bad input is counted, and so is every answer (a Reject with the
 * expected code, a gRPC status, an HTTP 4xx, a stream reset): the two must match exactly. Then the
 * server still serves a good device end to end, and its peak RSS (VmHWM) is printed and bounded.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { after, before, test } from 'node:test';
import { codecs, type Downlink } from '../../src/gateway/protocol.js';
import { TestDevice } from '../helpers/device.js';
import { EngineProcess } from '../helpers/engine-process.js';
import { grpcFrame, lenField, rawEvent, rawRepeated, RawSession, tag, varint, varintField, WireType, type RawCall, type RawOutcome } from '../helpers/raw-grpc.js';

const OUTBOUND_MAX = 2000;
const PAYLOAD_BYTES_MAX = 65536;
const GIB = 1024 * 1024 * 1024;

let engine: EngineProcess;
/** Bad inputs sent, and answers counted, per group (printed at the end). */
const tally = new Map<string, { inputs: number; answers: number }>();
function count(group: string, inputs: number, answers: number): void {
  const t = tally.get(group) ?? { inputs: 0, answers: 0 };
  t.inputs += inputs;
  t.answers += answers;
  tally.set(group, t);
}

before(async () => {
  engine = await EngineProcess.start({ STRATUS_GATEWAY_OUTBOUND_MAX: String(OUTBOUND_MAX), STRATUS_GATEWAY_PAYLOAD_BYTES_MAX: String(PAYLOAD_BYTES_MAX) });
});
after(async () => {
  const rows = [...tally].map(([g, t]) => `  ${g.padEnd(34)} ${String(t.inputs).padStart(7)} bad inputs, ${String(t.answers).padStart(7)} answers`);
  const total = [...tally.values()].reduce((s, t) => s + t.inputs, 0);
  rows.push(`  ${'(malformed, let through by libraries)'.padEnd(34)} ${String(lenientTally.inputs).padStart(7)} inputs,     ${String(lenientTally.refused).padStart(7)} refused (see LENIENT)`);
  const mem = engine.exit === null ? engine.memory() : null;
  process.stderr.write(`hostile input: ${total} bad inputs in all\n${rows.join('\n')}\n` + (mem ? `  engine peak RSS (VmHWM) ${(mem.peakBytes / 2 ** 20).toFixed(1)} MiB, RSS now ${(mem.rssBytes / 2 ** 20).toFixed(1)} MiB\n` : ''));
  await engine.stop();
});

/** The engine must still be running after every group. */
function assertAlive(): void {
  assert.equal(engine.exit, null, `the engine exited (${engine.exit}): ${engine.stderr.slice(-4000)}`);
}

const CONNECT = '/stratus.v1.DeviceGateway/Connect';
const INGEST = '/stratus.v1.DeviceGateway/Ingest';
const INGEST_BATCH = '/stratus.v1.DeviceGateway/IngestBatch';
const PATHS = [CONNECT, INGEST, INGEST_BATCH, '/nimbus.NimbusService/ProcessEvent', '/event.EventService/StreamEvents', '/data_nexus.MetricsService/IngestMetric', '/data_nexus.MetricsService/IngestMetrics'];

/** An outcome is an answer when it carries a gRPC status, an HTTP status other than 200, or a reset. */
function answered(o: RawOutcome): boolean {
  return o.grpcStatus !== null || (o.httpStatus !== null && o.httpStatus !== 200) || o.rstCode !== null;
}

/** Runs calls with at most `concurrency` open at once over a few sessions (reopened if one fails). */
async function runCalls<T>(n: number, concurrency: number, start: (s: RawSession, i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  const lanes = Array.from({ length: concurrency }, async (_, lane) => {
    let session: RawSession | null = null;
    try {
      while (next < n) {
        const i = next++;
        if (session === null || session.session.destroyed || session.session.closed) session = await RawSession.open(engine.address);
        out[i] = await start(session, i);
        // A fresh connection per lane every 500 calls, so a session-level failure stays local.
        if (i % 500 === lane % 500) {
          session.close();
          session = null;
        }
      }
    } finally {
      session?.close();
    }
  });
  await Promise.all(lanes);
  return out;
}

/** Bounded wait for a call's outcome: a call the server never answers fails the test by name. */
async function outcome(call: RawCall, what: string, timeoutMs = 30_000): Promise<RawOutcome> {
  let timer!: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms to: ${what}`)), timeoutMs)));
  try {
    return await Promise.race([call.done, timeout]);
  } finally {
    clearTimeout(timer);
    call.stream.close();
  }
}

// --- per-event rejects on Connect --------------------------------------------------------------

/** Kinds of bad event on a Connect stream whose last accepted seq is GOOD_SEQ, with the Reject code each must get. */
const GOOD_SEQ = 1_000_000;
const BAD_EVENTS: { name: string; code: string; make: (deviceId: string, k: number) => Buffer }[] = [
  { name: 'seq 0', code: 'INVALID_SEQ', make: () => rawEvent({ seq: 0, type: 'sq', value: 1 }) },
  { name: 'seq absent', code: 'INVALID_SEQ', make: () => rawEvent({ type: 'sq', value: 1 }) },
  // At or below the device's last seq: the device's order refuses them (README "Delivery contract").
  // GOOD_SEQ is durable by then; seqs over 1,024 below it are too old for the taken-seq window and
  // count as taken, so both kinds are DUPLICATE (OUT_OF_ORDER is for a never-taken seq inside it).
  { name: 'seq backwards', code: 'DUPLICATE', make: (_, k) => rawEvent({ seq: 1 + (k % (GOOD_SEQ - 2000)), type: 'sq', value: 1 }) },
  { name: 'seq repeated', code: 'DUPLICATE', make: () => rawEvent({ seq: GOOD_SEQ, type: 'sq', value: 1 }) },
  { name: 'seq 2^64-1', code: 'INVALID_SEQ', make: () => rawEvent({ seq: 2n ** 64n - 1n, type: 'sq', value: 1 }) },
  { name: 'seq 2^53', code: 'INVALID_SEQ', make: () => rawEvent({ seq: 2n ** 53n, type: 'sq', value: 1 }) },
  { name: 'value NaN', code: 'INVALID_VALUE', make: (_, k) => rawEvent({ seq: GOOD_SEQ + 1 + k, type: 'sq', value: Number.NaN }) },
  { name: 'value +Infinity', code: 'INVALID_VALUE', make: (_, k) => rawEvent({ seq: GOOD_SEQ + 1 + k, type: 'sq', value: Number.POSITIVE_INFINITY }) },
  { name: 'value -Infinity', code: 'INVALID_VALUE', make: (_, k) => rawEvent({ seq: GOOD_SEQ + 1 + k, type: 'sq', value: Number.NEGATIVE_INFINITY }) },
  { name: 'unknown type', code: 'UNKNOWN_TYPE', make: (_, k) => rawEvent({ seq: GOOD_SEQ + 1 + k, type: `nope-${k}`, value: 1 }) },
  { name: 'empty type', code: 'UNKNOWN_TYPE', make: (_, k) => rawEvent({ seq: GOOD_SEQ + 1 + k, value: 1 }) },
  { name: 'type of 4 KiB', code: 'UNKNOWN_TYPE', make: (_, k) => rawEvent({ seq: GOOD_SEQ + 1 + k, type: 'x'.repeat(4096), value: 1 }) },
  { name: 'type with NUL and controls', code: 'UNKNOWN_TYPE', make: (_, k) => rawEvent({ seq: GOOD_SEQ + 1 + k, type: 'sq\u0000\r\n', value: 1 }) },
  { name: 'other device id', code: 'DEVICE_MISMATCH', make: (d, k) => rawEvent({ deviceId: `${d}-other`, seq: GOOD_SEQ + 1 + k, type: 'sq', value: 1 }) },
  { name: 'device id of 1 KiB', code: 'DEVICE_MISMATCH', make: (_, k) => rawEvent({ deviceId: 'd'.repeat(1024), seq: GOOD_SEQ + 1 + k, type: 'sq', value: 1 }) },
];
/** The kinds that are bad on Ingest too, where each event names its device and seqs start afresh per call. */
const INGEST_KINDS = BAD_EVENTS.filter((k) => !['seq backwards', 'seq repeated', 'other device id'].includes(k.name));
const TOO_LARGE = { name: 'payload over the limit', code: 'PAYLOAD_TOO_LARGE', make: (_d: string, k: number) => rawEvent({ seq: GOOD_SEQ + 1 + k, type: 'echo', value: 1, payload: Buffer.alloc(PAYLOAD_BYTES_MAX + 1 + (k % 7)) }) };

test('Connect: 60,000 bad events in 60 uplinks on 3 streams, each answered by one Reject with its code', { timeout: 120_000 }, async () => {
  const streams = 3;
  const uplinks = 20;
  const perUplink = 1000;
  const tooLargePerUplink = 8; // 8 x 64 KiB: the uplink stays well inside the 4 MiB message limit
  const session = await RawSession.open(engine.address);
  try {
    await Promise.all(
      Array.from({ length: streams }, async (_, s) => {
        const deviceId = `hostile-connect-${s}`;
        const call = session.call(CONNECT, { headers: { 'x-device-id': deviceId } });
        const got = new Map<string, number>();
        let ackedSeq = 0;
        let rejects = 0;
        call.listen((m) => {
          const d = codecs.Downlink.deserialize(m) as Downlink;
          if ((d.ackedSeq ?? 0) > ackedSeq) ackedSeq = d.ackedSeq!;
          for (const r of d.rejects ?? []) {
            got.set(r.code, (got.get(r.code) ?? 0) + 1);
            rejects++;
          }
        });
        call.send(rawRepeated([rawEvent({ seq: GOOD_SEQ, type: 'sq', value: 2 })]));
        const want = new Map<string, number>();
        let k = 0;
        for (let u = 0; u < uplinks; u++) {
          const events: Buffer[] = [];
          for (let i = 0; i < perUplink; i++, k++) {
            const kind = i < tooLargePerUplink ? TOO_LARGE : BAD_EVENTS[k % BAD_EVENTS.length]!;
            events.push(kind.make(deviceId, k));
            want.set(kind.code, (want.get(kind.code) ?? 0) + 1);
          }
          if (!call.send(rawRepeated(events))) await call.drained();
        }
        const total = uplinks * perUplink;
        const deadline = Date.now() + 60_000;
        while ((rejects < total || ackedSeq < GOOD_SEQ) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        // Nothing more trickles in after the last expected answer.
        await new Promise((r) => setTimeout(r, 300));
        call.end();
        const o = await outcome(call, `Connect ${deviceId} half-close`);
        assert.equal(o.grpcStatus, 0, `stream ended with ${JSON.stringify(o)}`);
        assert.equal(ackedSeq, GOOD_SEQ, 'the good event was acknowledged');
        assert.deepEqual(Object.fromEntries([...got].sort()), Object.fromEntries([...want].sort()), `${deviceId}: rejects by code`);
        count('Connect bad events', total, rejects);
      }),
    );
  } finally {
    session.close();
  }
  assertAlive();
});

test('Ingest: 20,000 bad events in 10 client streams, each counted in IngestSummary.rejected', { timeout: 120_000 }, async () => {
  const calls = 10;
  const perCall = 2000;
  const results = await runCalls(calls, 5, async (s, c) => {
    const call = s.call(INGEST);
    for (let i = 0; i < perCall; i++) {
      const k = c * perCall + i;
      // Ingest needs a device id per event: a missing one is DEVICE_MISMATCH, the rest as on Connect.
      const e = i % 10 === 0 ? rawEvent({ seq: 5, type: 'sq', value: 1 }) : Buffer.concat([lenField(1, `hostile-ingest-${c}`), INGEST_KINDS[k % INGEST_KINDS.length]!.make(`hostile-ingest-${c}`, k)]);
      if (!call.send(e)) await call.drained();
    }
    call.end();
    const o = await outcome(call, `Ingest ${c}`);
    return { o, summary: call.messages.length === 1 ? codecs.IngestSummary.deserialize(call.messages[0]!) : null };
  });
  for (const { o, summary } of results) {
    assert.equal(o.grpcStatus, 0, JSON.stringify(o));
    assert.deepEqual(summary, { accepted: 0, rejected: perCall });
    count('Ingest bad events', perCall, summary!.rejected);
  }
  assertAlive();
});

// --- malformed protobuf and gRPC framing -------------------------------------------------------

/** Message bodies no protobuf decoder may accept. */
const MALFORMED: { name: string; make: (i: number) => Buffer }[] = [
  // field 1 (LEN) whose varint length never ends
  { name: 'truncated varint', make: () => Buffer.from([0x0a, 0xff, 0xff]) },
  { name: 'length past the end', make: (i) => Buffer.concat([tag(1, WireType.LEN), varint(1000 + i), Buffer.alloc(3)]) },
  { name: 'nested length past the end', make: () => lenField(1, Buffer.concat([tag(1, WireType.LEN), varint(50), Buffer.from('ab')])) },
  { name: 'wire type 7', make: () => Buffer.from([(15 << 3) | 7, 0x01]) },
  { name: 'wire type 6', make: () => Buffer.from([(15 << 3) | 6, 0x01]) },
  { name: 'group never ended', make: () => Buffer.concat([tag(15, WireType.SGROUP), varintField(1, 1)]) },
  { name: 'end group without start', make: () => tag(15, WireType.EGROUP) },
  { name: 'field number 0', make: () => Buffer.from([0x00, 0x01]) },
  { name: 'fixed64 cut short', make: () => Buffer.concat([tag(15, WireType.I64), Buffer.alloc(3)]) },
  { name: 'varint of 11 bytes', make: () => Buffer.concat([tag(15, WireType.VARINT), Buffer.alloc(10, 0xff), Buffer.from([0x01])]) },
];

/**
 * Malformed input the libraries let through, so a call can end OK without a Reject:
 * - grpc-js 1.14.7 drops a partial message at the end of a request stream (a length prefix past
 *   the end, or half a prefix) without an error, and reads a compressed-flag byte other than 1
 *   (reserved values) as "not compressed";
 * - grpc-js does not check :method, so a GET with no body is an empty request stream;
 * - protobufjs skips an unknown field's varint however long it is (the spec allows 10 bytes).
 * The message then decodes to an empty one, or vanishes: the device gets no Reject for it.
 */
const LENIENT = new Set(['length prefix past the end of the stream', 'half a prefix', 'compressed flag 0xff', 'varint of 11 bytes', 'GET instead of POST']);
const lenientTally = { inputs: 0, refused: 0 };

/** What an OK call did with its input, read from its responses. */
function effectOf(path: string, messages: Buffer[]): 'accepted' | 'rejected' | 'nothing' {
  const fields = (m: Buffer) => {
    // field number -> varint value or length, of the top-level fields (enough for these responses)
    const out = new Map<number, number>();
    let pos = 0;
    const readVarint = () => {
      let v = 0;
      let mul = 1;
      for (;;) {
        const b = m[pos++]!;
        v += (b & 0x7f) * mul;
        mul *= 128;
        if ((b & 0x80) === 0) return v;
      }
    };
    while (pos < m.length) {
      const t = readVarint();
      const wt = t & 7;
      const v = wt === 0 ? readVarint() : wt === 2 ? readVarint() : wt === 1 ? 8 : 4;
      if (wt === 2 || wt === 1 || wt === 5) pos += v;
      out.set(t >>> 3, (out.get(t >>> 3) ?? 0) + (wt === 2 ? 1 : v));
    }
    return out;
  };
  switch (path) {
    case CONNECT: {
      const downs = messages.map((m) => codecs.Downlink.deserialize(m) as Downlink);
      if (downs.some((d) => (d.ackedSeq ?? 0) > 0)) return 'accepted';
      return downs.some((d) => (d.rejects ?? []).length > 0) ? 'rejected' : 'nothing';
    }
    case INGEST: {
      const sum = codecs.IngestSummary.deserialize(messages[0]!);
      return sum.accepted > 0 ? 'accepted' : sum.rejected > 0 ? 'rejected' : 'nothing';
    }
    case INGEST_BATCH: {
      const ack = codecs.BatchAck.deserialize(messages[0]!);
      return ack.accepted > 0 ? 'accepted' : ack.rejects.length > 0 ? 'rejected' : 'nothing';
    }
    case '/nimbus.NimbusService/ProcessEvent': {
      const res = messages.map((m) => codecs.EventResponse.deserialize(m));
      if (res.some((r) => r.log.steps.some((st) => st.metadata.error !== undefined && st.message.startsWith('rejected')))) return 'rejected';
      return res.length > 0 ? 'accepted' : 'nothing';
    }
    case '/event.EventService/StreamEvents':
      // StreamSummary: field 2 events_received
      return messages.length > 0 && (fields(messages[0]!).get(2) ?? 0) > 0 ? 'accepted' : 'nothing';
    default:
      // IngestResponse / BatchIngestResponse: field 1, the event id(s) stored
      return messages.length > 0 && (fields(messages[0]!).get(1) ?? 0) > 0 ? 'accepted' : 'nothing';
  }
}

test('malformed messages and framing on every method: each call ends with a status', { timeout: 180_000 }, async () => {
  const kinds: { name: string; run: (s: RawSession, path: string, i: number) => RawCall }[] = [
    ...MALFORMED.map((m) => ({ name: m.name, run: (s: RawSession, path: string, i: number) => {
      const call = s.call(path, { headers: { 'x-device-id': `hostile-malformed-${i}`, client_id: `hostile-malformed-${i}` } });
      call.send(m.make(i), true);
      return call;
    } })),
    { name: 'random bytes (then half-close)', run: (s, path, i) => {
      const call = s.call(path, { headers: { 'x-device-id': `hostile-random-${i}`, client_id: `hostile-random-${i}` } });
      call.send(randomBytes(1 + (i % 300)), true);
      return call;
    } },
    { name: 'length prefix past the end of the stream', run: (s, path, i) => {
      const call = s.call(path, { headers: { 'x-device-id': `hostile-prefix-${i}`, client_id: `hostile-prefix-${i}` } });
      call.writeRaw(grpcFrame(Buffer.alloc(10), { length: 1000 }), true);
      return call;
    } },
    { name: 'half a prefix', run: (s, path, i) => {
      const call = s.call(path, { headers: { 'x-device-id': `hostile-prefix-${i}`, client_id: `hostile-prefix-${i}` } });
      call.writeRaw(Buffer.from([0, 0, 0]), true);
      return call;
    } },
    { name: 'prefix claiming 2 GiB', run: (s, path, i) => {
      const call = s.call(path, { headers: { 'x-device-id': `hostile-prefix-${i}`, client_id: `hostile-prefix-${i}` } });
      call.writeRaw(grpcFrame(Buffer.alloc(16), { length: 0x7fffffff }));
      return call;
    } },
    { name: 'compressed flag, no grpc-encoding', run: (s, path, i) => {
      const call = s.call(path, { headers: { 'x-device-id': `hostile-flag-${i}`, client_id: `hostile-flag-${i}` } });
      call.writeRaw(grpcFrame(Buffer.from('not compressed'), { compressed: 1 }), true);
      return call;
    } },
    { name: 'gzip flag, not gzip', run: (s, path, i) => {
      const call = s.call(path, { headers: { 'x-device-id': `hostile-gzip-${i}`, client_id: `hostile-gzip-${i}`, 'grpc-encoding': 'gzip' } });
      call.writeRaw(grpcFrame(randomBytes(64), { compressed: 1 }), true);
      return call;
    } },
    { name: 'unknown grpc-encoding', run: (s, path, i) => {
      const call = s.call(path, { headers: { 'x-device-id': `hostile-enc-${i}`, client_id: `hostile-enc-${i}`, 'grpc-encoding': 'zstd-from-mars' } });
      call.writeRaw(grpcFrame(Buffer.from([0x0a, 0x00]), { compressed: 1 }), true);
      return call;
    } },
    { name: 'compressed flag 0xff', run: (s, path, i) => {
      const call = s.call(path, { headers: { 'x-device-id': `hostile-flag-${i}`, client_id: `hostile-flag-${i}` } });
      call.writeRaw(grpcFrame(Buffer.from([0x0a, 0x00]), { compressed: 0xff }), true);
      return call;
    } },
    { name: 'wrong content-type', run: (s, path, i) => {
      const call = s.call(path, { headers: { 'x-device-id': `hostile-ct-${i}`, client_id: `hostile-ct-${i}`, 'content-type': 'application/json' } });
      call.writeRaw(Buffer.from('{"events":[]}'), true);
      return call;
    } },
    { name: 'unknown method', run: (s, _path, i) => {
      const call = s.call(`/stratus.v1.DeviceGateway/Nope${i % 10}`);
      call.send(Buffer.alloc(0), true);
      return call;
    } },
    { name: 'GET instead of POST', run: (s, path) => {
      const call = s.call(path, { headers: { ':method': 'GET' } });
      call.end();
      return call;
    } },
  ];
  const rounds = 80;
  const n = kinds.length * PATHS.length * rounds;
  const outcomes = await runCalls(n, 100, async (s, i) => {
    const kind = kinds[i % kinds.length]!;
    const path = PATHS[Math.floor(i / kinds.length) % PATHS.length]!;
    const call = kind.run(s, path, i);
    const o = await outcome(call, `${kind.name} on ${path}`);
    return { kind: kind.name, path, o, effect: o.grpcStatus === 0 ? effectOf(path, call.messages) : 'status' };
  });
  // By kind, method and effect: what each input got.
  const table = new Map<string, number>();
  for (const x of outcomes) {
    const key = `${x.kind} | ${x.path.slice(x.path.lastIndexOf('/') + 1)} | ${x.effect === 'status' ? `status ${x.o.grpcStatus ?? `http ${x.o.httpStatus} rst ${x.o.rstCode}`}` : `OK, ${x.effect}`}`;
    table.set(key, (table.get(key) ?? 0) + 1);
  }
  process.stderr.write(`malformed: answers by kind | method | effect\n${[...table].sort().map(([k, v]) => `  ${k}: ${v}`).join('\n')}\n`);
  const unanswered = outcomes.filter((x) => !answered(x.o));
  assert.deepEqual(unanswered.slice(0, 5), [], `${unanswered.length} calls ended without a status`);
  // On the device gateway, malformed input is refused: a status, or an OK carrying its Reject.
  // The seed-compatible services' messages have other shapes (a body malformed for an Uplink can
  // be a valid EventRequest): there every call must end with a status, and the table shows which.
  // Random bytes may decode into anything (fuzz, not counted as bad inputs); the LENIENT kinds
  // are what the libraries let through (see there): counted apart, and never accepted on the
  // device gateway.
  const bad = outcomes.filter((x) => !x.kind.startsWith('random') && !LENIENT.has(x.kind));
  const refused = bad.filter((x) => x.effect === 'status' || x.effect === 'rejected' || !x.path.startsWith('/stratus.v1.'));
  assert.deepEqual(bad.filter((x) => !refused.includes(x)).slice(0, 5).map((x) => `${x.kind} on ${x.path}: ${x.effect}`), [], 'malformed input not refused');
  const lenient = outcomes.filter((x) => LENIENT.has(x.kind));
  const lenientAccepted = lenient.filter((x) => x.effect === 'accepted' && x.path.startsWith('/stratus.v1.'));
  assert.deepEqual(lenientAccepted.slice(0, 5).map((x) => `${x.kind} on ${x.path}`), [], 'leniently decoded input accepted by the device gateway');
  count('malformed messages and framing', bad.length, refused.length);
  lenientTally.inputs += lenient.length;
  lenientTally.refused += lenient.filter((x) => x.effect === 'status' || x.effect === 'rejected').length;
  assertAlive();
});

test('messages over the 4 MiB receive limit: RESOURCE_EXHAUSTED on every method', { timeout: 120_000 }, async () => {
  const n = PATHS.length * 3;
  const big = Buffer.concat([lenField(1, Buffer.alloc(4 * 1024 * 1024 + 100))]);
  const outcomes = await runCalls(n, 3, async (s, i) => {
    const call = s.call(PATHS[i % PATHS.length]!, { headers: { 'x-device-id': `hostile-big-${i}`, client_id: `hostile-big-${i}` } });
    call.send(big, true);
    return outcome(call, `over-limit message ${i}`);
  });
  for (const o of outcomes) assert.equal(o.grpcStatus, 8 /* RESOURCE_EXHAUSTED */, JSON.stringify(o));
  count('messages over the receive limit', n, outcomes.length);
  assertAlive();
});

test('invalid UTF-8 in device_id and type: never accepted under a mangled name', { timeout: 120_000 }, async () => {
  const invalid = [Buffer.from([0xff]), Buffer.from([0xc0, 0x80]), Buffer.from([0x80]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xe2, 0x82]), Buffer.from([0xf4, 0x90, 0x80, 0x80])];
  const n = 3000;
  const outcomes = await runCalls(n, 50, async (s, i) => {
    const bad = Buffer.concat([Buffer.from(`hostile-utf8-${i}-`), invalid[i % invalid.length]!]);
    const field = i % 2 === 0 ? 'deviceId' : 'type';
    const event = rawEvent(field === 'deviceId' ? { deviceId: bad, seq: 1, type: 'sq', value: 1 } : { deviceId: `hostile-utf8-${i}`, seq: 1, type: bad, value: 1 });
    const method = i % 3;
    if (method === 0) {
      const call = s.call(INGEST_BATCH);
      call.send(rawRepeated([event]), true);
      const o = await outcome(call, `IngestBatch with invalid UTF-8 ${field}`);
      const ack = call.messages.length === 1 ? codecs.BatchAck.deserialize(call.messages[0]!) : null;
      return { what: `IngestBatch ${field}`, ok: o.grpcStatus !== 0 ? o.grpcStatus !== null : ack!.accepted === 0 && ack!.rejects.length === 1 };
    }
    if (method === 1) {
      const call = s.call(INGEST);
      call.send(event, true);
      const o = await outcome(call, `Ingest with invalid UTF-8 ${field}`);
      const sum = call.messages.length === 1 ? codecs.IngestSummary.deserialize(call.messages[0]!) : null;
      return { what: `Ingest ${field}`, ok: o.grpcStatus !== 0 ? o.grpcStatus !== null : sum!.accepted === 0 && sum!.rejected === 1 };
    }
    const call = s.call(CONNECT, { headers: { 'x-device-id': `hostile-utf8-${i}` } });
    call.send(rawRepeated([event]), true);
    const o = await outcome(call, `Connect with invalid UTF-8 ${field}`);
    const rejects = call.messages.flatMap((m) => (codecs.Downlink.deserialize(m) as Downlink).rejects ?? []);
    const acked = call.messages.some((m) => ((codecs.Downlink.deserialize(m) as Downlink).ackedSeq ?? 0) > 0);
    return { what: `Connect ${field}`, ok: o.grpcStatus !== 0 ? o.grpcStatus !== null : rejects.length === 1 && !acked };
  });
  const wrong = new Map<string, number>();
  for (const x of outcomes) if (!x.ok) wrong.set(x.what, (wrong.get(x.what) ?? 0) + 1);
  assert.deepEqual(Object.fromEntries(wrong), {}, 'inputs with invalid UTF-8 accepted (or unanswered), by method and field');
  count('invalid UTF-8', n, outcomes.filter((x) => x.ok).length);
  assertAlive();
});

test('Connect metadata: missing, oversized or malformed x-device-id / x-last-result-seq: INVALID_ARGUMENT', { timeout: 60_000 }, async () => {
  const bad: Record<string, string>[] = [
    {},
    { 'x-device-id': '' },
    { 'x-device-id': 'd'.repeat(257) },
    { 'x-device-id': 'ok', 'x-last-result-seq': 'abc' },
    { 'x-device-id': 'ok', 'x-last-result-seq': '-1' },
    { 'x-device-id': 'ok', 'x-last-result-seq': '1e400' },
    { 'x-device-id': 'ok', 'x-last-result-seq': '18446744073709551615' },
    { 'x-device-id': 'ok', 'x-last-result-seq': '1.5' },
  ];
  const n = bad.length * 250;
  const outcomes = await runCalls(n, 50, async (s, i) => {
    const call = s.call(CONNECT, { headers: bad[i % bad.length] });
    return outcome(call, `Connect with ${JSON.stringify(bad[i % bad.length]).slice(0, 80)}`);
  });
  for (const o of outcomes) assert.equal(o.grpcStatus, 3 /* INVALID_ARGUMENT */, JSON.stringify(o));
  count('Connect metadata', n, outcomes.length);
  assertAlive();
});

test('metadata floods: huge header values and thousands of headers get a status or a reset, not a crash', { timeout: 120_000 }, async () => {
  const floods: { name: string; headers: () => Record<string, string> }[] = [
    { name: '1 MiB header value', headers: () => ({ 'x-device-id': 'flood', 'x-junk': 'v'.repeat(1024 * 1024) }) },
    { name: '64 KiB device id', headers: () => ({ 'x-device-id': 'd'.repeat(65536) }) },
    { name: '5,000 headers', headers: () => Object.fromEntries([['x-device-id', 'flood'], ...Array.from({ length: 5000 }, (_, i) => [`x-h-${i}`, `${i}`])]) },
    { name: '200 headers of 1 KiB', headers: () => Object.fromEntries([['x-device-id', 'flood'], ...Array.from({ length: 200 }, (_, i) => [`x-h-${i}`, 'v'.repeat(1024)])]) },
    { name: 'binary header of 512 KiB', headers: () => ({ 'x-device-id': 'flood', 'x-junk-bin': randomBytes(512 * 1024).toString('base64') }) },
  ];
  const n = floods.length * 40;
  const kinds = new Map<string, number>();
  // One connection per call: a server may rightly answer a flood by closing the connection.
  const outcomes = await runCalls(n, 4, async (_s, i) => {
    const f = floods[i % floods.length]!;
    const s = await RawSession.open(engine.address);
    try {
      const call = s.call(PATHS[i % PATHS.length]!, { headers: f.headers() });
      call.send(Buffer.alloc(0), true);
      const o = await outcome(call, f.name);
      const key = `${f.name}: ${o.grpcStatus !== null ? `grpc ${o.grpcStatus}` : o.httpStatus !== null ? `http ${o.httpStatus}` : o.rstCode === -1 ? 'connection closed' : `rst ${o.rstCode}`}`;
      kinds.set(key, (kinds.get(key) ?? 0) + 1);
      return o;
    } finally {
      await s.shutdown();
    }
  });
  process.stderr.write(`metadata floods: ${JSON.stringify(Object.fromEntries(kinds))}\n`);
  for (const o of outcomes) assert.ok(answered(o), JSON.stringify(o));
  count('metadata floods', n, outcomes.filter(answered).length);
  assertAlive();
});

test('SSE with bad device ids or cursors: 4xx each', { timeout: 120_000 }, async () => {
  const paths = [
    `/v1/devices/${'d'.repeat(257)}/events`,
    `/v1/devices/${'%C3%A9'.repeat(129)}/events`,
    `/v1/devices/${'x'.repeat(16 * 1024)}/events`,
    '/v1/devices/%zz/events',
    '/v1/devices/%E0%A4/events',
    '/v1/devices/%/events',
    '/v1/devices/%ED%A0%80/events',
    '/v1/devices//events',
    '/v1/devices/a/b/events',
    '/v1/devices/../events',
    '/v1/devices/x/events/extra',
    '/v1/devices/x',
    '/v1/devices/',
  ];
  const cursors = ['abc', '-1', '99999999999999999', '1.5', ' ', '\u00ff'];
  const agent = new Agent({ keepAlive: true, maxSockets: 20 });
  const get = (path: string, headers: Record<string, string> = {}) =>
    new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: engine.httpPort, path, agent, headers }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.setTimeout(30_000, () => req.destroy(new Error(`no answer to GET ${path.slice(0, 80)}`)));
      req.end();
    });
  const n = 5200;
  const codes = new Map<number, number>();
  let next = 0;
  await Promise.all(
    Array.from({ length: 20 }, async () => {
      while (next < n) {
        const i = next++;
        const code = i % 4 === 3 ? await get(`/v1/devices/hostile-sse-${i}/events`, { 'last-event-id': cursors[i % cursors.length]! }) : await get(paths[i % paths.length]!);
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    }),
  );
  agent.destroy();
  process.stderr.write(`SSE bad ids: ${JSON.stringify(Object.fromEntries(codes))}\n`);
  const fourxx = [...codes].filter(([c]) => c >= 400 && c < 500).reduce((s, [, k]) => s + k, 0);
  assert.equal(fourxx, n, `status codes ${JSON.stringify(Object.fromEntries(codes))}`);
  count('SSE bad ids and cursors', n, fourxx);
  assertAlive();
});

test('10,000 concurrent streams claiming one device id: all but the newest end ABORTED', { timeout: 180_000 }, async () => {
  const n = 10_000;
  const sessions = await Promise.all(Array.from({ length: 10 }, () => RawSession.open(engine.address)));
  try {
    const calls: RawCall[] = [];
    for (let i = 0; i < n; i++) {
      calls.push(sessions[i % sessions.length]!.call(CONNECT, { headers: { 'x-device-id': 'hostile-contested' } }));
      if (i % 500 === 499) await new Promise((r) => setImmediate(r));
    }
    // Every stream but one ends; which one survives depends on arrival order.
    const ended: RawOutcome[] = [];
    const settled = new Set<RawCall>();
    for (const c of calls) void c.done.then((o) => (ended.push(o), settled.add(c)));
    const deadline = Date.now() + 120_000;
    while (ended.length < n - 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 500));
    const byCode = new Map<string, number>();
    for (const o of ended) byCode.set(String(o.grpcStatus ?? `rst ${o.rstCode}`), (byCode.get(String(o.grpcStatus ?? `rst ${o.rstCode}`)) ?? 0) + 1);
    assert.deepEqual(Object.fromEntries(byCode), { 10: n - 1 }, 'statuses (10 = ABORTED) of the superseded streams');
    // The survivor is a working stream: it takes an event and ends OK on half-close.
    const open = calls.filter((c) => !settled.has(c));
    assert.equal(open.length, 1);
    const survivor = open[0]!;
    let acked = 0;
    survivor.listen((m) => (acked = Math.max(acked, (codecs.Downlink.deserialize(m) as Downlink).ackedSeq ?? 0)));
    survivor.send(rawRepeated([rawEvent({ seq: 1, type: 'sq', value: 3 })]));
    const until = Date.now() + 30_000;
    while (acked < 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    assert.equal(acked, 1);
    survivor.end();
    assert.equal((await outcome(survivor, 'the surviving stream')).grpcStatus, 0);
    count('streams claiming one device', n, n - 1 + 1);
  } finally {
    await Promise.all(sessions.map((s) => s.shutdown()));
  }
  assertAlive();
});

test('a device that floods bad events and never reads: its pending rejects are bounded', { timeout: 120_000 }, async () => {
  // Each bad event is ~10 bytes on the wire and a ~150-byte Reject with a message back: a device
  // that never reads its downlink must not make the server hold its rejects without limit.
  const session = await RawSession.open(engine.address);
  const before = engine.memory().rssBytes;
  try {
    const call = session.call(CONNECT, { headers: { 'x-device-id': 'hostile-nonreader' }, read: false });
    const uplink = rawRepeated(Array.from({ length: 10_000 }, () => rawEvent({ seq: 0, type: 'sq' })));
    let sent = 0;
    const deadline = Date.now() + 30_000;
    let o: RawOutcome | null = null;
    void call.done.then((x) => (o = x));
    // 2,000 uplinks (20 million bad events, ~140 MB), or until the server ends the stream or stops
    // taking them (HTTP/2 flow control: write() stays blocked).
    while (sent < 2000 && o === null && Date.now() < deadline) {
      const blocked = !call.send(uplink);
      sent++;
      if (blocked) await Promise.race([call.drained(), new Promise((r) => setTimeout(r, 2000))]);
      if (call.stream.writableNeedDrain) break;
    }
    const grown = engine.memory().rssBytes - before;
    process.stderr.write(`non-reading bad-event flood: ${sent} uplinks of 10,000 bad events taken, engine RSS grew ${(grown / 2 ** 20).toFixed(1)} MiB, stream ${o === null ? 'open (flow control)' : JSON.stringify(o)}\n`);
    assert.ok(grown < 256 * 2 ** 20, `RSS grew ${(grown / 2 ** 20).toFixed(1)} MiB for one non-reading device`);
    call.cancel();
  } finally {
    await session.shutdown();
  }
  assertAlive();
});

test('afterwards: the server serves a good device end to end, and its peak RSS is bounded', { timeout: 60_000 }, async () => {
  assertAlive();
  const d = new TestDevice('hostile-good').connect(engine.address);
  try {
    d.send([{ seq: 1, type: 'sq', value: 7 }, { seq: 2, type: 'sq', value: 8 }]);
    await d.until(() => d.ackedSeq === 2 && d.results.length === 2, 30_000, 'acks and results');
    assert.deepEqual(d.results.map((r) => [r.seq, r.value]), [[1, 49], [2, 64]]);
    assert.deepEqual(d.rejects, []);
  } finally {
    d.close();
  }
  const res = await fetch(`http://127.0.0.1:${engine.httpPort}/livez`);
  assert.equal(res.status, 200);
  const total = [...tally.values()].reduce((s, t) => s + t.inputs, 0);
  const answers = [...tally.values()].reduce((s, t) => s + t.answers, 0);
  const { peakBytes } = engine.memory();
  process.stderr.write(`hostile input: ${total} bad inputs, ${answers} answered; engine peak RSS ${(peakBytes / 2 ** 20).toFixed(1)} MiB\n`);
  assert.ok(total >= 100_000, `${total} bad inputs`);
  assert.equal(answers, total);
  assert.ok(peakBytes < GIB, `peak RSS ${(peakBytes / 2 ** 20).toFixed(1)} MiB`);
});
