/**
 * Runs schedules (schedule.ts) against the real engine (test/helpers/model-engine.ts), records
 * what the clients saw, quiesces, and checks the observations against the model (model.ts).
 * On a violation, shrink() re-runs the schedule with operations removed (delta debugging, a
 * bounded number of re-runs) down to a small schedule that still fails the same way.
 *
 * Quiesce (the end of every schedule): in-flight calls settle and killed roles are back; every
 * device connects once more (with its cursor if it keeps one) and sends a sentinel event after
 * everything checked; its result, which comes after every earlier result of the device (results
 * reach a device in seq order), says the device has seen all it will see. No fixed sleeps.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@grpc/grpc-js';
import { topology } from '../../src/topology.js';
import type { ModelEngine } from '../helpers/model-engine.js';
import { FreezingProxy } from '../helpers/model-proxy.js';
import { ConnectChannel, grpcClient, ingest, ingestBatch, NimbusStream, SseChannel, tick, Waitable } from './clients.js';
import { ADVISORY, check, emptyObservations, type Observations, type Violation } from './model.js';
import { formatOp, subset, type Instance, type Op, type Schedule } from './schedule.js';

export interface RunStats { ops: number; events: number; acked: number; results: number; seconds: number; skipped: number }
export interface RunResult { schedule: Schedule; violations: Violation[]; advisories: Violation[]; stats: RunStats; obs: Observations; log: string[] }

const SENTINEL_RESULT_MS = 15_000;
/** Sentinels a device or Nimbus client sends before the quiesce gives up (a refused one is sent again). */
const SENTINEL_TRIES = 20;
/** A killed processor or forwarder is back only after its consumer group's session timeout (10 s). */
const SENTINEL_RESULT_AFTER_KILL_MS = 45_000;

class DeviceRt {
  nextSeq = 1;
  maxSent = 0;
  readonly connects: ConnectChannel[] = [];
  readonly sses: SseChannel[] = [];
  readonly inflight = new Set<Promise<void>>();
  /**
   * Ops during which a half-open connection of this (cursorless) device may still have held it:
   * from the half-open until a later stream of the device was accepted (its headers came), which
   * takes the device over. Results routed meanwhile went into the dead connection.
   */
  readonly halfOpen: { from: number; to: number }[] = [];
  constructor(readonly id: string, readonly keepsCursor: boolean) {}

  openConnect(): ConnectChannel | undefined {
    return [...this.connects].reverse().find((c) => c.state === 'open');
  }

  /** The highest result seq the device received on any channel: the cursor it sends. */
  cursor(): number {
    for (const s of this.sses) s.sync();
    let c = 0;
    for (const ch of [...this.connects.map((x) => x.record), ...this.sses.map((x) => x.record)]) for (const r of ch.results) c = Math.max(c, r.seq);
    return c;
  }

  seqs(n: number): number[] {
    const out = Array.from({ length: n }, (_, i) => this.nextSeq + i);
    this.nextSeq += n;
    this.maxSent = Math.max(this.maxSent, this.nextSeq - 1);
    return out;
  }
}

class Run extends Waitable {
  readonly obs = emptyObservations();
  readonly log: string[] = [];
  private value = 1;
  private readonly devices: DeviceRt[];
  private readonly nimbus: { id: string; streams: NimbusStream[] }[];
  private readonly clients = new Map<string, Client>();
  private readonly extraClients: Client[] = [];
  private readonly proxies: FreezingProxy[] = [];
  private readonly restarts = new Set<Promise<void>>();
  private killed = false;
  private skipped = 0;

  constructor(private readonly engine: ModelEngine, schedule: Schedule) {
    super();
    const tag = randomUUID().slice(0, 8);
    this.devices = schedule.devices.map((d, i) => new DeviceRt(`model-${schedule.seed}-${tag}-d${i}`, d.keepsCursor));
    this.nimbus = Array.from({ length: schedule.nimbusClients }, (_, i) => ({ id: `model-${schedule.seed}-${tag}-c${i}`, streams: [] }));
  }

  private nextValue(): number {
    return this.value++;
  }

  private events(d: DeviceRt, n: number): { seq: number; value: number }[] {
    return d.seqs(n).map((seq) => ({ seq, value: this.nextValue() }));
  }

  /** The instance asked for, or the other one while it is down. */
  private live(i: Instance): Instance {
    if (this.engine.roles[i].alive) return i;
    const other = i === 'a' ? 'b' : 'a';
    return this.engine.roles[other].alive ? other : i;
  }

  private client(i: Instance): Client {
    const addr = this.engine.grpcAddress(i);
    let c = this.clients.get(addr);
    if (c === undefined) this.clients.set(addr, (c = grpcClient(addr)));
    return c;
  }

  private connect(d: DeviceRt, on: Instance, op: number, cursor: number | null = d.keepsCursor ? d.cursor() : null): ConnectChannel {
    const i = this.live(on);
    const ch = new ConnectChannel(this.obs, d.id, this.client(i), i, cursor, op);
    d.connects.push(ch);
    const open = d.halfOpen.find((h) => h.to === Infinity);
    if (open !== undefined) void ch.until(() => ch.headersSeen || ch.state !== 'open', 10_000).then(() => {
      if (ch.headersSeen && open.to === Infinity) open.to = op;
    });
    return ch;
  }

  private track(d: DeviceRt, p: Promise<void>): void {
    d.inflight.add(p);
    void p.finally(() => d.inflight.delete(p));
  }

  private note(i: number, text: string): void {
    this.log.push(`op ${i}: ${text}`);
  }

  async exec(i: number, o: Op): Promise<void> {
    switch (o.op) {
      case 'wait':
        if (o.ms > 0) await sleep(o.ms);
        return;
      case 'connect': {
        this.connect(this.devices[o.d]!, o.on, i);
        return;
      }
      case 'send': {
        const d = this.devices[o.d]!;
        const ch = d.openConnect();
        if (ch !== undefined) ch.send(this.events(d, o.n), i, o.batch);
        else {
          const on = this.live(o.on);
          this.track(d, ingestBatch(this.obs, this.client(on), d.id, on, this.events(d, o.n), i));
        }
        return;
      }
      case 'ingest': {
        const d = this.devices[o.d]!;
        const on = this.live(o.on);
        this.track(d, ingest(this.obs, this.client(on), d.id, on, this.events(d, o.n), i));
        return;
      }
      case 'batch': {
        const d = this.devices[o.d]!;
        const on = this.live(o.on);
        this.track(d, ingestBatch(this.obs, this.client(on), d.id, on, this.events(d, o.n), i));
        return;
      }
      case 'split': {
        const d = this.devices[o.d]!;
        const evs = this.events(d, 2 * o.n);
        const [x, y] = [this.live(o.on[0]), this.live(o.on[1])];
        this.track(d, ingestBatch(this.obs, this.client(x), d.id, x, evs.filter((_, k) => k % 2 === 0), i));
        this.track(d, ingestBatch(this.obs, this.client(y), d.id, y, evs.filter((_, k) => k % 2 === 1), i));
        return;
      }
      case 'halfOpen': {
        const d = this.devices[o.d]!;
        const on = this.live(o.on);
        const proxy = await FreezingProxy.start(this.engine.roles[on].grpcPort);
        this.proxies.push(proxy);
        const viaProxy = grpcClient(`127.0.0.1:${proxy.port}`);
        this.extraClients.push(viaProxy);
        const ch = new ConnectChannel(this.obs, d.id, viaProxy, `${on}(proxy)`, d.keepsCursor ? d.cursor() : null, i);
        d.connects.push(ch);
        await ch.until(() => ch.headersSeen || ch.state !== 'open', 3000);
        ch.send(this.events(d, o.n), i, false);
        await ch.until(() => ch.outstanding() === 0 || ch.state !== 'open', 2000);
        proxy.freeze();
        // Results routed to the frozen session now go into a dead connection.
        await sleep(100);
        ch.cancel(); // the device gives up on it (the cancel cannot cross the frozen proxy)
        if (!d.keepsCursor) {
          // Contract exception: without a cursor, results written into a half-open connection
          // count as delivered. Excuse (i) for everything sent so far, and for what is sent until
          // a later stream of the device is accepted (see DeviceRt.halfOpen).
          for (const a of this.obs.attempts) if (a.device === d.id) a.excused = true;
          d.halfOpen.push({ from: i, to: Infinity });
        }
        this.connect(d, o.to, i);
        return;
      }
      case 'restart': {
        const d = this.devices[o.d]!;
        const open = d.connects.some((c) => c.state === 'open');
        for (const c of d.connects) c.cancel();
        if (open) {
          // Contract: a rebooted device remembers nothing and comes back without a cursor, so what
          // the server had written into the stream it dropped, and it had not read, counts as
          // delivered. Excuse (i) for everything sent so far; (ii), at most one result, still holds.
          for (const a of this.obs.attempts) if (a.device === d.id) a.excused = true;
        }
        // A rebooted device remembers nothing: no cursor, no counter.
        const ch = this.connect(d, o.on, i, null);
        await ch.until(() => ch.headersSeen || ch.state !== 'open', 3000);
        if (o.blind) {
          await sleep(50);
          ch.send([1, 2, 3].map((seq) => ({ seq, value: this.nextValue() })), i, false);
          d.maxSent = Math.max(d.maxSent, 3);
          await ch.until(() => ch.outstanding() === 0 || ch.state !== 'open', 3000);
        }
        const known = Math.max(ch.lastSeqHeader ?? 0, ch.rejectLastSeq);
        // Contract: continue from x-last-seq + 1. Without the header (today's engine) fall back to
        // the highest seq the device ever sent + 1.
        d.nextSeq = ch.lastSeqHeader !== null || ch.rejectLastSeq > 0 ? known + 1 : d.maxSent + 1;
        if (!(ch.lastSeqHeader !== null)) this.note(i, `restart d${o.d}: no x-last-seq header; continuing from ${d.nextSeq}`);
        ch.send(this.events(d, o.n), i, false);
        return;
      }
      case 'sse': {
        const d = this.devices[o.d]!;
        const on = this.live(o.on);
        const s = new SseChannel(this.obs, d.id, on, d.keepsCursor ? d.cursor() : null, i);
        d.sses.push(s);
        await s.open(this.engine.httpPort(on)).catch((err: unknown) => this.note(i, `SSE open failed: ${String(err)}`));
        return;
      }
      case 'nimbus': {
        const c = this.nimbus[o.c]!;
        const on = this.live(o.on);
        const s = new NimbusStream(this.obs, c.id, this.client(on), on, i);
        c.streams.push(s);
        s.send(Array.from({ length: o.n }, () => this.nextValue()), i);
        return;
      }
      case 'nimbusSend': {
        const c = this.nimbus[o.c]!;
        const s = [...c.streams].reverse().find((x) => x.open);
        if (s === undefined) {
          this.skipped++;
          this.note(i, `nimbusSend c${o.c}: no open stream, skipped`);
          return;
        }
        s.send(Array.from({ length: o.n }, () => this.nextValue()), i);
        return;
      }
      case 'kill': {
        if (o.role === 'a' || o.role === 'b') {
          const other = o.role === 'a' ? 'b' : 'a';
          // Never both gateways down: wait for the other one's restart first.
          if (!this.engine.roles[other].alive) await Promise.all(this.restarts);
        }
        this.killed = true;
        if (o.role === 'a' || o.role === 'b') this.obs.kills.push({ instance: o.role, at: tick(), atMs: Date.now() });
        await this.engine.roles[o.role].kill9();
        const p = this.engine.roles[o.role].start().then(() => {
          if (o.role !== 'a' && o.role !== 'b') return;
          // The old channel is in reconnect backoff and fails new calls at once: calls after the
          // restart go through a new one (the old one is closed at the end of the run).
          const addr = this.engine.grpcAddress(o.role);
          const old = this.clients.get(addr);
          if (old !== undefined) this.extraClients.push(old);
          this.clients.delete(addr);
        }).catch((err: unknown) => {
          this.obs.harness.push({ device: '-', detail: `restart of ${o.role} failed: ${String(err)}` });
        });
        this.restarts.add(p);
        void p.finally(() => this.restarts.delete(p));
        if (o.role === 'a' || o.role === 'b') {
          // Its devices reconnect to the other instance once their streams have failed.
          const other: Instance = o.role === 'a' ? 'b' : 'a';
          await Promise.all(this.devices.map(async (d) => {
            const ch = d.openConnect();
            if (ch === undefined || ch.instance !== o.role) return;
            await ch.until(() => ch.state !== 'open', 5000);
            this.connect(d, other, i);
          }));
        }
        return;
      }
      case 'deleteDev': {
        const d = this.devices[o.d]!;
        if (!this.quiescent(d)) {
          this.skipped++;
          this.note(i, `DEL dev:d${o.d}: not quiescent, skipped`);
          return;
        }
        await this.engine.redis.del(topology(this.engine.config).redis.deviceState(d.id));
        return;
      }
    }
  }

  /** Everything the device sent is acked or rejected and every acked event's result has arrived. */
  private quiescent(d: DeviceRt): boolean {
    if (d.inflight.size > 0) return false;
    const mine = this.obs.attempts.filter((a) => a.device === d.id);
    if (mine.some((a) => a.outcome === null || (a.outcome.kind !== 'acked' && a.outcome.kind !== 'rejected'))) return false;
    d.cursor();
    const got = new Set(this.obs.channels.filter((c) => c.device === d.id).flatMap((c) => c.results.map((r) => `${r.seq}/${r.value}`)));
    return mine.every((a) => a.outcome!.kind !== 'acked' || got.has(`${a.seq}/${a.value * a.value}`));
  }

  private gotResult(d: DeviceRt, seq: number, value: number): boolean {
    for (const s of d.sses) s.sync();
    return this.obs.channels.some((c) => c.device === d.id && c.results.some((r) => r.seq === seq && r.value === value * value));
  }

  async quiesce(): Promise<void> {
    await Promise.all(this.devices.flatMap((d) => [...d.inflight]));
    await Promise.all(this.restarts);
    const resultWaitMs = this.killed ? SENTINEL_RESULT_AFTER_KILL_MS : SENTINEL_RESULT_MS;
    await Promise.all(this.devices.map((d, k) => this.quiesceDevice(d, k % 2 === 0 ? 'a' : 'b', resultWaitMs)));
    await Promise.all(this.nimbus.map((c, k) => this.quiesceNimbus(c, k % 2 === 0 ? 'b' : 'a', resultWaitMs)));
  }

  private async quiesceDevice(d: DeviceRt, on: Instance, resultWaitMs: number): Promise<void> {
    // A device reading over SSE reads what is on its way before it closes the stream (for at most
    // resultWaitMs): a result the server writes into a stream the device closes counts as
    // delivered for a device without a cursor (the dropped-stream exception), and the quiesce is
    // not an operation of the schedule that may cause one. (Seen: the results of an IngestBatch
    // acked 17 ms before the quiesce, written into the SSE as it was closed.)
    const ackedSoFar = () => this.obs.attempts.filter((a) => a.device === d.id && a.outcome?.kind === 'acked' && !a.excused);
    const deadline = Date.now() + resultWaitMs;
    while (Date.now() < deadline && d.sses.some((s) => !s.client.ended) && !ackedSoFar().every((a) => this.gotResult(d, a.seq, a.value))) await sleep(20);
    // SSE readers are closed by the device: its last connection is a fresh Connect, not a
    // takeover (SSE <-> Connect takeovers are operations of the schedules).
    for (const s of d.sses) s.close();
    // Open streams end the plain way first (half-close; the engine ends them once all is acked), so
    // the quiesce itself is no takeover: a takeover is an operation of its own in the schedules.
    for (const open of d.connects.filter((c) => c.state === 'open')) {
      await open.until(() => open.outstanding() === 0 || open.state !== 'open', 5000);
      open.halfClose();
      await open.until(() => open.state !== 'open', 5000);
    }
    let ch = this.connect(d, on, -1);
    let seq = 0;
    let value = 0;
    const tries = SENTINEL_TRIES;
    for (let attempt = 0; attempt < tries; attempt++) {
      await ch.until(() => ch.headersSeen || ch.state !== 'open', 5000);
      if (seq === 0) seq = Math.max(ch.lastSeqHeader ?? 0, d.maxSent) + 1;
      value = this.nextValue();
      d.maxSent = Math.max(d.maxSent, seq);
      const [a] = ch.send([{ seq, value }], -1, false);
      await ch.until(() => a!.outcome !== null, 20_000);
      const out = a!.outcome;
      if (out?.kind === 'acked') break;
      if (out?.kind === 'rejected' && (out.code === 'DUPLICATE' || out.code === 'OUT_OF_ORDER')) seq = (out.lastSeq ?? seq) + 1;
      else if (out?.kind === 'rejected' || out?.kind === 'failed') await sleep(300);
      if (ch.state !== 'open') ch = this.connect(d, on, -1);
      if (attempt === tries - 1) {
        this.obs.harness.push({ device: d.id, detail: `quiesce: the sentinel was never acked (last outcome ${JSON.stringify(out)})` });
        return;
      }
    }
    const ok = await ch.until(() => this.gotResult(d, seq, value), resultWaitMs);
    if (!ok) {
      this.obs.harness.push({ device: d.id, detail: `quiesce: the sentinel's result (seq ${seq}) did not arrive within ${resultWaitMs} ms` });
      return;
    }
    // Results reach a device in seq order, so every earlier result is in; a short bounded wait
    // only in case the engine breaks that order (then check() says what is missing).
    const acked = this.obs.attempts.filter((a) => a.device === d.id && a.outcome?.kind === 'acked' && !a.excused);
    await ch.until(() => acked.every((a) => this.gotResult(d, a.seq, a.value)), 1000);
  }

  private async quiesceNimbus(c: { id: string; streams: NimbusStream[] }, on: Instance, resultWaitMs: number): Promise<void> {
    if (c.streams.length === 0) return;
    const answered = () => new Set(this.obs.nimbusChannels.filter((x) => x.client === c.id).flatMap((x) => x.responses.map((r) => r.number)));
    for (const s of c.streams.filter((x) => x.open)) {
      await s.until(() => !s.open || s.allAnswered(answered()), 10_000);
      // Still open after 10 s: it had every chance; its requests must be answered. It ends the
      // plain way (half-close), so the final stream below is no takeover.
      if (s.open) {
        s.halfClose();
        await s.until(() => !s.open, 5000);
        s.record.settled = true;
      }
    }
    const i = this.live(on);
    const s = new NimbusStream(this.obs, c.id, this.client(i), i, -1);
    c.streams.push(s);
    // A rejected response (BUSY while a killed gateway's admission lease runs out, UNAVAILABLE,
    // OVERLOADED) answers the request with a refusal: send another sentinel, like the Connect quiesce.
    const deadline = Date.now() + resultWaitMs;
    let n = 0;
    for (let tries = 0; tries < SENTINEL_TRIES && Date.now() < deadline; tries++) {
      n = this.nextValue();
      const rejected = s.record.rejects.length;
      s.send([n], -1);
      await s.until(() => answered().has(n) || !s.open || s.record.rejects.length > rejected, Math.max(1, deadline - Date.now()));
      if (answered().has(n) || !s.open) break;
      if (s.record.rejects.length > rejected) await sleep(500);
    }
    if (!answered().has(n)) this.obs.harness.push({ device: `nimbus/${c.id}`, detail: `quiesce: the sentinel request's response did not arrive (stream ${s.record.failed ?? 'open'}; rejected: ${s.record.rejects.join(',') || 'none'})` });
    else s.record.settled = true;
  }

  /** Attempts made while a half-open connection still held their (cursorless) device: (i) excused. */
  excuseHalfOpen(): void {
    for (const d of this.devices) {
      for (const h of d.halfOpen) {
        const to = h.to === Infinity || h.to < 0 ? Infinity : h.to;
        for (const a of this.obs.attempts) if (a.device === d.id && a.op >= h.from && a.op < to) a.excused = true;
      }
    }
  }

  close(): void {
    for (const d of this.devices) {
      for (const c of d.connects) c.cancel();
      for (const s of d.sses) s.close();
    }
    for (const c of this.nimbus) for (const s of c.streams) s.cancel();
    for (const p of this.proxies) void p.close();
    for (const c of [...this.clients.values(), ...this.extraClients]) c.close();
  }

  get skippedOps(): number {
    return this.skipped;
  }
}

export async function runSchedule(engine: ModelEngine, schedule: Schedule): Promise<RunResult> {
  const started = Date.now();
  const run = new Run(engine, schedule);
  try {
    for (let i = 0; i < schedule.ops.length; i++) await run.exec(i, schedule.ops[i]!);
    await run.quiesce();
  } finally {
    run.close();
  }
  run.excuseHalfOpen();
  const all = check(run.obs);
  const violations = all.filter((v) => !ADVISORY.has(v.kind));
  const obs = run.obs;
  return {
    schedule,
    violations,
    advisories: all.filter((v) => ADVISORY.has(v.kind)),
    obs,
    log: run.log,
    stats: {
      ops: schedule.ops.filter((o) => o.op !== 'wait').length,
      events: obs.attempts.length,
      acked: obs.attempts.filter((a) => a.outcome?.kind === 'acked').length,
      results: obs.channels.reduce((n, c) => n + c.results.length, 0) + obs.nimbusChannels.reduce((n, c) => n + c.responses.length, 0),
      seconds: (Date.now() - started) / 1000,
      skipped: run.skippedOps,
    },
  };
}

export interface Shrunk { keep: number[]; result: RunResult; reruns: number }

/**
 * Delta debugging (ddmin, complements only) over the schedule's operation indices: keeps removing
 * chunks while the smaller schedule still shows a violation of one of the original's kinds.
 * Timing makes a run not exactly repeatable, so a chunk that "passes" may only have been lucky:
 * the result is a small failing schedule, not necessarily the smallest.
 */
export async function shrink(engine: ModelEngine, failing: RunResult, budget: { reruns: number; deadlineMs: number; kind?: string; tries?: number }, progress: (s: string) => void = () => {}): Promise<Shrunk> {
  const kinds = new Set<string>(budget.kind !== undefined ? [budget.kind] : failing.violations.map((v) => v.kind).filter((k) => k !== 'harness'));
  const fails = (r: RunResult) => r.violations.some((v) => (kinds.size === 0 ? true : kinds.has(v.kind)));
  let keep = failing.schedule.ops.map((_, i) => i).filter((i) => failing.schedule.ops[i]!.op !== 'wait' || (failing.schedule.ops[i] as { ms: number }).ms > 0);
  let best = failing;
  let reruns = 0;
  let n = 2;
  while (keep.length >= 2 && reruns < budget.reruns && Date.now() < budget.deadlineMs) {
    const size = Math.ceil(keep.length / n);
    let reduced = false;
    for (let k = 0; k < n && reruns < budget.reruns && Date.now() < budget.deadlineMs; k++) {
      const candidate = keep.filter((_, j) => j < k * size || j >= (k + 1) * size);
      if (candidate.length === 0 || candidate.length === keep.length) continue;
      // A racy failure may not show in one run: a candidate gets `tries` runs to show it.
      let r = await runSchedule(engine, subset(failing.schedule, candidate));
      reruns++;
      for (let t = 1; t < (budget.tries ?? 1) && !fails(r) && reruns < budget.reruns; t++, reruns++) r = await runSchedule(engine, subset(failing.schedule, candidate));
      progress(`shrink: ${candidate.length} ops -> ${fails(r) ? 'still fails' : 'passes'}`);
      if (fails(r)) {
        keep = candidate;
        best = r;
        n = Math.max(n - 1, 2);
        reduced = true;
        break;
      }
    }
    if (!reduced) {
      if (n >= keep.length) break;
      n = Math.min(keep.length, n * 2);
    }
  }
  return { keep, result: best, reruns };
}

export function describe(s: Schedule, keep?: readonly number[]): string {
  const idx = keep ?? s.ops.map((_, i) => i);
  const lines = [`seed ${s.seed}: devices ${s.devices.map((d, i) => `d${i}${d.keepsCursor ? '(cursor)' : ''}`).join(' ')}, nimbus clients ${s.nimbusClients}`];
  for (const i of idx) lines.push(`  [${i}] ${formatOp(s.ops[i]!)}`);
  return lines.join('\n');
}

export function replayLine(seed: number, keep: readonly number[] | null, entry = 'node dist/test/model/run.js --runs 1'): string {
  return `STRATUS_MODEL_SEED=${seed}${keep !== null ? ` STRATUS_MODEL_OPS=${keep.join(',')}` : ''} ${entry}`;
}
