/**
 * One slice of the simulated fleet, run by one worker thread: devices [from, to) of the run.
 *
 * Reads: the schedule (schedule.ts) and the server's downlinks. Writes: uplinks to the target, a
 * tick every second (counts + encoded interval histograms) and, at the end, the reconciliation.
 *
 * Open loop: an uplink's intended send time comes from the schedule alone, whatever the server
 * does, and every latency is measured from it, so a server that stalls shows in the tail instead
 * of slowing the sender (coordinated omission). Events come due while a device is connecting are
 * held (bounded, DEVICE_BUFFER_MAX) and sent when it connects, their latency still counted from
 * their intended time. With --closed-loop a device waits for each uplink's ack before the next
 * and latency is measured from the real send: what ghz-style tools report, for comparison.
 *
 * Timing: all devices' wake-ups (connect, send, drop, reconnect) sit in one min-heap; one timer
 * is armed for the earliest, so the cost is per event, not per device.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Client, connectivityState, credentials, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { issueToken } from '../src/auth/token.js';
import type { Driver, DeviceIdentity, Session, SessionEvents, UplinkEvent } from './drivers/driver.js';
import { errorKind } from './drivers/driver.js';
import { eventStreamDriver } from './drivers/event-stream.js';
import { metricsDriver } from './drivers/metrics.js';
import { nimbusDriver } from './drivers/nimbus.js';
import { stratusDriver } from './drivers/stratus.js';
import { MinHeap } from './min-heap.js';
import type { LoadgenOptions } from './options.js';
import type { LoadgenSummary } from './summary.js';
import { IntervalRecorder, type EncodedSet } from './recorder.js';
import { DeviceSchedule, valueOf } from './schedule.js';
import { ACKED, REJECTED, RESULT, SENT, SeqWindow } from './seq-window.js';

/** Events a device holds while it cannot send (connecting, backing off); beyond: DEVICE_BUFFER_FULL. */
export const DEVICE_BUFFER_MAX = 100_000;
/** Distinct reject codes counted apart; the rest are counted as OTHER. */
const REJECT_CODES_MAX = 64;
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 8_000;
const SLOW_PAUSE_MS = 2_000;
const SLOW_READ_MS = 500;
/** Longest the fleet timer sleeps, so the stop and drain checks run even when nothing is due. */
const TIMER_MAX_MS = 50;
/**
 * Streams (and connections) opened per timer turn. Opening one costs far more than a send; a fleet
 * that joins all at once would otherwise hold the event loop for seconds, and every send and
 * every ack read in that time would be late. The rest wait for the next turn (about 1 ms).
 */
const CONNECTS_PER_TURN_MAX = 100;
const STATUS_EVERY_MS = 100;
/** Error details quoted in the fail-fast hint are cut to this. */
const FAILURE_DETAIL_MAX = 200;

export interface FleetSlice {
  from: number;
  to: number;
}

export interface Tick {
  type: 'tick';
  /** Second of the run this tick closes: [sec, sec + 1) after t0. */
  sec: number;
  sent: number;
  acked: number;
  results: number;
  errors: number;
  connected: number;
  hist: EncodedSet;
  /**
   * The second's ack and result latencies of every event, warm-up and drain included, for the
   * live progress line only (`hist` holds only the measured window's events).
   */
  live: EncodedSet;
}

/**
 * How the slice's connecting goes, sent every STATUS_EVERY_MS while something changed: the main
 * thread starts the measured window once every slice has connected, and stops a run in which no
 * device can reach the target (fail fast).
 */
export interface FleetStatus {
  type: 'status';
  devices: number;
  /** The target answered something (headers, an ack, a result, a reject), or a connection became READY where the API sends no headers. */
  reached: boolean;
  /** Devices whose every attempt so far failed, while nothing was reached (0 once reached). */
  failedDevices: number;
  /** Those failures by kind (REFUSED, DNS, TLS, STALLED, UNAVAILABLE, ...), and the first words of each kind. */
  failures: Record<string, number>;
  failureWords: Record<string, string>;
  connected: number;
  connectedOnce: number;
  allConnectedAtMs: number | null;
}

/** Main thread -> fleet: the measured window starts at startMs (ms after t0); or stop now (abort). */
export type FleetControl = { type: 'window'; startMs: number } | { type: 'stop' };

/** A slice's reconciliation: the summary's counts, plus what the main thread needs to derive the rest. */
export type FleetTotals = LoadgenSummary['counts'] & {
  /** Events intended inside the measured window: sent, acked, answered (the throughput figures). */
  sentMeasured: number;
  ackedMeasured: number;
  resultsMeasured: number;
  slowReaders: number;
  /** ms after t0 when every device of the slice had connected once; null if some never did. */
  allConnectedAtMs: number | null;
};

type State = 'idle' | 'connecting' | 'online' | 'offline' | 'backoff' | 'closed';

interface Device {
  readonly identity: DeviceIdentity;
  readonly sched: DeviceSchedule;
  readonly window: SeqWindow;
  readonly slow: boolean;
  readonly startAtMs: number;
  /** Invariant: session !== null iff state is 'connecting' or 'online'. */
  state: State;
  session: Session | null;
  client: Client | null;
  connectStartMs: number;
  everConnected: boolean;
  /** An attempt of this device failed while the target had not answered anything yet. */
  failedBeforeReach: boolean;
  attempt: number;
  dropAtMs: number;
  reconnectAtMs: number;
  /** Highest seq of the device that reached the wire at least once. */
  transmittedUpTo: number;
  /** The next seq to put on the wire in this session (held while the session is blocked). */
  wireNext: number;
  ackedUpTo: number;
  lastResultSeq: number;
  /** Closed loop: uplinks sent and not yet acked. */
  outstanding: number;
  /** The heap entry that is current (older entries of this device are skipped). */
  wakeVersion: number;
  timer: NodeJS.Timeout | null;
}

/**
 * The seq a result names where the wire carries seqs modulo m (nimbus: `number`, 1..m): the
 * device's first unsettled seq (>= base) with that residue. Past everything sent it can only be a
 * late copy of a seq m lower, settled long ago: 0 (a duplicate). Where there was no such seq, the
 * seq past everything sent is returned, and counted as a result for an event never sent.
 * Unambiguous while fewer than m of the device's events are unsettled.
 */
export function seqOfResidue(wireSeq: number, base: number, highestSent: number, m: number): number {
  const seq = base + ((((wireSeq - base) % m) + m) % m);
  return seq > highestSent && seq - m >= 1 ? 0 : seq;
}

export function driverFor(opts: LoadgenOptions): Driver {
  switch (opts.api) {
    case 'stratus':
      return stratusDriver(opts.type);
    case 'nimbus':
      return nimbusDriver(opts.type);
    case 'event-stream':
      return eventStreamDriver(opts.queue, opts.type, opts.connectTimeoutMs);
    case 'metrics':
      return metricsDriver(opts.connectTimeoutMs);
  }
}

const wallMs = () => performance.timeOrigin + performance.now();

export class Fleet {
  private readonly driver: Driver;
  private readonly devices: Device[] = [];
  private readonly heap = new MinHeap<[Device, number]>();
  private readonly clients = new Map<number, Client>();
  private readonly creds: ChannelCredentials;
  private readonly recorder = new IntervalRecorder();
  private readonly live = new IntervalRecorder();
  private readonly totals: FleetTotals;
  /**
   * The measured window [measureFromMs, measureToMs), ms after t0, and the end of sending: unknown
   * (Infinity) until the main thread says where the window starts (once the whole fleet has
   * connected, plus --warmup; see loadgen.ts). Invariant: endMs === measureToMs.
   */
  private measureFromMs = Infinity;
  private measureToMs = Infinity;
  private endMs = Infinity;
  /** Stopped by the main thread (fail fast, or the run overran): no drain. */
  private aborted = false;
  private wakeRun: (() => void) | null = null;
  private reached = false;
  private failedDevices = 0;
  private failures: Record<string, number> = {};
  private failureWords: Record<string, string> = {};
  private statusDirty = true;
  private readonly ownConnections: boolean;
  /** Results are part of settling a seq (not with --ack-only, or on an API without results). */
  private readonly expectResults: boolean;
  private timer: NodeJS.Timeout | null = null;
  private connectBudget = CONNECTS_PER_TURN_MAX;
  private armedAtMs = Infinity;
  private connected = 0;
  private connectedOnce = 0;
  private sec = { sent: 0, acked: 0, results: 0, errors: 0 };
  private stopped = false;

  constructor(
    private readonly opts: LoadgenOptions,
    slice: FleetSlice,
    /** Wall-clock ms (timeOrigin + now) of the run's start, shared by every worker. */
    private readonly t0Ms: number,
    private readonly emit: (m: Tick | FleetStatus) => void,
  ) {
    this.driver = driverFor(opts);
    this.expectResults = this.driver.results && !opts.ackOnly;
    assert(this.driver.acks || this.expectResults, '--ack-only needs an API with acks');
    this.creds = opts.tls
      ? credentials.createSsl(opts.tlsCa === null ? null : readFileSync(opts.tlsCa), opts.tlsKey === null ? null : readFileSync(opts.tlsKey), opts.tlsCert === null ? null : readFileSync(opts.tlsCert))
      : credentials.createInsecure();
    // Every time in the fleet is ms after t0: the same seed then gives the same floating-point
    // schedule whatever the absolute start.
    this.ownConnections = opts.connections === opts.devices;
    this.totals = {
      sent: 0, acked: 0, results: 0, sentMeasured: 0, ackedMeasured: 0, resultsMeasured: 0,
      rejected: {}, errors: {}, missing: 0, duplicates: 0, wrong: 0, unacked: 0, heldUnsent: 0, reconnects: 0, slowReaders: 0, allConnectedAtMs: null,
    };
    const expiresAtS = Math.ceil((t0Ms + (opts.warmupMaxS + opts.durationS + opts.drainS) * 1000) / 1000) + 3600;
    for (let i = slice.from; i < slice.to; i++) {
      const id = `${opts.devicePrefix}d${i}`;
      // Device i joins at i / ramp seconds (all at once without --ramp); its schedule starts then.
      const startAtMs = opts.rampPerS > 0 ? (i * 1000) / opts.rampPerS : 0;
      const sched = new DeviceSchedule(opts, i, startAtMs);
      const slow = opts.slowReaders > 0 && sched.rng.next() < opts.slowReaders;
      if (slow) this.totals.slowReaders++;
      this.devices.push({
        identity: { id, index: i, token: opts.tokenSecret === null ? null : issueToken(opts.tokenSecret, id, expiresAtS) },
        sched,
        window: new SeqWindow((this.driver.acks ? ACKED : 0) | (this.expectResults ? RESULT : 0)),
        slow,
        startAtMs,
        state: 'idle',
        session: null,
        client: null,
        connectStartMs: 0,
        everConnected: false,
        failedBeforeReach: false,
        attempt: 0,
        dropAtMs: Infinity,
        reconnectAtMs: Infinity,
        transmittedUpTo: 0,
        wireNext: 1,
        ackedUpTo: 0,
        lastResultSeq: 0,
        outstanding: 0,
        wakeVersion: 0,
        timer: null,
      });
    }
  }

  /** ms since t0. */
  private now(): number {
    return wallMs() - this.t0Ms;
  }

  /** The main thread's word: where the measured window starts, or stop now. */
  control(m: FleetControl): void {
    if (m.type === 'window') {
      if (this.aborted) return;
      this.measureFromMs = m.startMs;
      this.measureToMs = this.endMs = m.startMs + this.opts.durationS * 1000;
    } else {
      this.aborted = true;
      this.measureToMs = this.endMs = Math.min(this.endMs, this.now());
    }
    this.wakeRun?.();
  }

  /** Runs the slice to the end of the drain and returns its reconciliation. */
  async run(): Promise<FleetTotals> {
    for (const d of this.devices) this.wake(d);
    this.arm();
    const secTimer = this.startSecondTicks();
    const statusTimer = setInterval(() => this.postStatus(), STATUS_EVERY_MS);
    this.postStatus();
    // libuv timers count whole, cached milliseconds and can fire up to 1 ms before
    // performance.now() reaches the target: wait until the end really has come. The end is
    // unknown until the main thread starts the window, so sleep in short steps until then.
    while (this.now() < this.endMs) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, Math.min(100, Math.ceil(this.endMs - this.now()))));
        this.wakeRun = () => {
          clearTimeout(t);
          r();
        };
      });
      this.wakeRun = null;
    }
    // Everything due before the end is taken now, even if the timer has not fired yet: the same
    // seed sends the same events.
    if (this.timer !== null) clearTimeout(this.timer);
    this.onTimer();
    // Drain: no new events; devices keep reconnecting and resending until every event is settled.
    const drainUntil = this.endMs + (this.aborted ? 0 : this.opts.drainS * 1000);
    while (this.now() < drainUntil && !this.settled() && !this.aborted) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, 50);
        this.wakeRun = () => {
          clearTimeout(t);
          r();
        };
      });
      this.wakeRun = null;
    }
    this.stopped = true;
    clearInterval(statusTimer);
    this.postStatus();
    if (this.timer !== null) clearTimeout(this.timer);
    for (const d of this.devices) this.close(d);
    for (const c of this.clients.values()) c.close();
    this.flushTick(secTimer.stop());
    this.reconcile();
    return this.totals;
  }

  private postStatus(): void {
    if (!this.reached && this.driver.streaming && !this.driver.headersOnAccept) {
      // No headers to wait for (nimbus): a connection that came up READY is the target answering.
      for (const c of this.clients.values()) {
        if (c.getChannel().getConnectivityState(false) === connectivityState.READY) {
          this.reach();
          break;
        }
      }
    }
    if (!this.statusDirty) return;
    this.statusDirty = false;
    this.emit({
      type: 'status', devices: this.devices.length, reached: this.reached, failedDevices: this.failedDevices, failures: { ...this.failures }, failureWords: { ...this.failureWords },
      connected: this.connected, connectedOnce: this.connectedOnce, allConnectedAtMs: this.totals.allConnectedAtMs,
    });
  }

  /** The target answered: from now on failures are the run's errors, not a reason to give up. */
  private reach(): void {
    if (this.reached) return;
    this.reached = true;
    this.failedDevices = 0;
    this.statusDirty = true;
  }

  /** An attempt failed; before anything was reached it counts towards giving up (fail fast). */
  private attemptFailed(d: Device, kind: string, err: ServiceError | null): void {
    if (this.reached) return;
    this.failures[kind] = (this.failures[kind] ?? 0) + 1;
    if (!(kind in this.failureWords)) {
      const words = err === null ? `no answer within --connect-timeout ${this.opts.connectTimeoutMs} ms` : (err.details || err.message || '').replace(/\s+/g, ' ').trim();
      this.failureWords[kind] = words.slice(0, FAILURE_DETAIL_MAX);
    }
    if (!d.failedBeforeReach) {
      d.failedBeforeReach = true;
      this.failedDevices++;
    }
    this.statusDirty = true;
  }

  private settled(): boolean {
    for (const d of this.devices) if (d.window.base <= d.window.highestSent) return false;
    return true;
  }

  // ---- the timer wheel ----------------------------------------------------------------------

  /** Re-files a device at its earliest pending action (not before `notBeforeMs`). */
  private wake(d: Device, notBeforeMs = 0): void {
    if (this.stopped || d.state === 'closed') return;
    let at = Infinity;
    switch (d.state) {
      case 'idle':
        at = d.startAtMs;
        break;
      case 'offline':
      case 'backoff':
        at = d.reconnectAtMs;
        break;
      case 'online':
        at = d.dropAtMs < this.endMs ? d.dropAtMs : Infinity;
        break;
      case 'connecting':
        break;
    }
    // Sends come due in every state except idle (a device that has not joined yet sends nothing).
    if (d.state !== 'idle' && d.sched.nextAtMs < this.endMs && !(this.opts.closedLoop && d.outstanding > 0)) at = Math.min(at, d.sched.nextAtMs);
    if (at === Infinity) return;
    at = Math.max(at, notBeforeMs);
    d.wakeVersion++;
    this.heap.push(at, [d, d.wakeVersion]);
    if (at < this.armedAtMs) this.arm();
  }

  private arm(): void {
    if (this.stopped) return;
    if (this.timer !== null) clearTimeout(this.timer);
    const now = this.now();
    const at = Math.min(this.heap.peekKey(), now + TIMER_MAX_MS);
    this.armedAtMs = at;
    this.timer = setTimeout(() => this.onTimer(), Math.max(0, at - now));
  }

  private onTimer(): void {
    this.timer = null;
    this.armedAtMs = Infinity;
    this.connectBudget = CONNECTS_PER_TURN_MAX;
    const now = this.now();
    while (this.heap.peekKey() <= now) {
      const [d, version] = this.heap.pop()!;
      if (version !== d.wakeVersion) continue;
      this.step(d, now);
    }
    this.arm();
  }

  private step(d: Device, now: number): void {
    let deferred = false;
    if ((d.state === 'idle' && now >= d.startAtMs) || ((d.state === 'offline' || d.state === 'backoff') && now >= d.reconnectAtMs)) {
      if (this.connectBudget > 0) {
        this.connectBudget--;
        this.connect(d, now);
      } else deferred = true;
    }
    if (d.state === 'online' && now >= d.dropAtMs && now < this.endMs) this.drop(d, now);
    if (d.state !== 'idle') this.generate(d, now);
    // A deferred connect is filed after this turn's time, so this turn does not pop it again.
    this.wake(d, deferred ? now + 1 : 0);
  }

  // ---- sending ------------------------------------------------------------------------------

  /** Takes every uplink that has come due; sends it now if the device is online, else holds it. */
  private generate(d: Device, now: number): void {
    const s = d.sched;
    while (s.nextAtMs <= now && s.nextAtMs < this.endMs) {
      if (this.opts.closedLoop && d.outstanding > 0) return;
      const intended = this.opts.closedLoop ? now : s.nextAtMs;
      if (d.state === 'offline') {
        // A mobile device that dropped its session is switched off: it produces nothing.
      } else if (d.window.highestSent - d.window.base + this.opts.batch > DEVICE_BUFFER_MAX) {
        this.error('DEVICE_BUFFER_FULL');
      } else {
        const first = d.window.highestSent + 1;
        for (let seq = first; seq < first + this.opts.batch; seq++) d.window.sent(seq, intended);
        if (d.state === 'online' && !d.session!.blocked) this.transmit(d, first, first + this.opts.batch - 1, now);
      }
      if (this.opts.closedLoop && s.nextAtMs < now) s.nextAtMs = now;
      s.advance();
    }
  }

  /**
   * Puts seqs [from, to] of a device on the wire, skipping settled and rejected ones, and stops
   * early when the session becomes blocked (the rest goes when it is writable again).
   */
  private transmit(d: Device, from: number, to: number, now: number): void {
    assert(d.session !== null);
    const batch: UplinkEvent[] = [];
    for (let seq = from; seq <= to; seq++) {
      d.wireNext = seq + 1;
      const f = d.window.flagsOf(seq);
      if ((f & SENT) === 0 || (f & (ACKED | RESULT | REJECTED)) !== 0) continue;
      if (seq > d.transmittedUpTo) {
        // First time on the wire.
        d.transmittedUpTo = seq;
        const intended = d.window.intendedMs(seq);
        this.totals.sent++;
        this.sec.sent++;
        if (this.measured(intended)) {
          this.totals.sentMeasured++;
          this.recorder.record('sendLag', now - intended);
        }
      }
      batch.push({ seq, value: this.inputOf(d, seq), payloadBytes: d.sched.payloadBytes() });
      if (batch.length === this.opts.batch) {
        d.session.send(batch.splice(0));
        d.outstanding++;
        if (d.session.blocked) return;
      }
    }
    if (batch.length > 0) {
      d.session.send(batch);
      d.outstanding++;
    }
  }

  /** A blocked session's transport drained: what was held goes now. */
  private writable(d: Device): void {
    if (d.state !== 'online' || d.session === null || d.session.blocked) return;
    if (d.window.highestSent >= d.wireNext) this.transmit(d, d.wireNext, d.window.highestSent, this.now());
    this.wake(d);
  }

  /** The number the server squares for this event: what `sq` results are checked against. */
  private inputOf(d: Device, seq: number): number {
    const m = this.driver.seqModulo;
    return m === undefined ? valueOf(d.identity.index, seq) : ((seq - 1) % m) + 1;
  }

  private measured(intendedMs: number): boolean {
    return intendedMs >= this.measureFromMs && intendedMs < this.measureToMs;
  }

  // ---- sessions -----------------------------------------------------------------------------

  private clientFor(d: Device): Client {
    const conn = Math.floor((d.identity.index * this.opts.connections) / this.opts.devices);
    let c = this.clients.get(conn);
    if (c === undefined) {
      c = new Client(this.opts.target, this.creds, {
        // Without this, every Client to one target shares one HTTP/2 connection (grpc-js's global
        // subchannel pool): --connections would be a lie.
        'grpc.use_local_subchannel_pool': 1,
        'grpc.max_receive_message_length': 16 * 1024 * 1024,
        // A refused or reset target is retried by the device's own backoff, reported per attempt.
        'grpc.initial_reconnect_backoff_ms': 200,
        'grpc.max_reconnect_backoff_ms': BACKOFF_MAX_MS,
      });
      this.clients.set(conn, c);
    }
    return c;
  }

  private connect(d: Device, now: number): void {
    d.state = 'connecting';
    d.connectStartMs = now;
    if (d.everConnected) this.totals.reconnects++;
    const client = this.clientFor(d);
    d.client = client;
    const ref: { session: Session | null } = { session: null };
    d.session = ref.session = this.driver.open(client, d.identity, d.lastResultSeq, this.callbacks(d, ref));
    if (!this.driver.streaming || !this.driver.headersOnAccept) {
      // Unary APIs have no stream to open, and a server that sends no headers until its first
      // answer gives nothing to wait for: the device is online at once, connect time unmeasured.
      this.online(d, now, false);
      return;
    }
    d.timer = setTimeout(() => {
      d.timer = null;
      if (d.state !== 'connecting') return;
      // No response headers in time: the target accepted the connection (or not) and said nothing.
      this.error('STALLED');
      this.attemptFailed(d, 'STALLED', null);
      this.endSession(d);
      this.backoff(d);
    }, this.opts.connectTimeoutMs);
  }

  private online(d: Device, now: number, measure: boolean): void {
    if (d.timer !== null) clearTimeout(d.timer);
    d.timer = null;
    d.state = 'online';
    d.attempt = 0;
    this.connected++;
    if (measure) this.recorder.record(d.everConnected ? 'reconnect' : 'connect', now - d.connectStartMs);
    if (!d.everConnected) {
      d.everConnected = true;
      if (++this.connectedOnce === this.devices.length) this.totals.allConnectedAtMs = now;
      this.statusDirty = true;
    }
    if (this.opts.profile === 'mobile') d.dropAtMs = now + d.sched.sessionMs();
    // Held events, and (where the API dedupes) everything sent before and not acknowledged.
    const from = this.driver.resendsUnacked ? d.window.base : d.transmittedUpTo + 1;
    d.wireNext = from;
    if (d.window.highestSent >= from) {
      d.outstanding = 0;
      this.transmit(d, from, d.window.highestSent, now);
    }
    if (d.slow) this.slowCycle(d, true);
    this.wake(d);
  }

  /** Slow reader: the downlink is paused SLOW_PAUSE_MS, read SLOW_READ_MS, and so on. */
  private slowCycle(d: Device, pause: boolean): void {
    if (d.state !== 'online' || d.session === null) return;
    if (pause) d.session.pause();
    else d.session.resume();
    d.timer = setTimeout(() => this.slowCycle(d, !pause), pause ? SLOW_PAUSE_MS : SLOW_READ_MS);
  }

  /** Mobile: the session ends on the device's side; it stays offline a while, then reconnects. */
  private drop(d: Device, now: number): void {
    this.endSession(d);
    d.state = 'offline';
    d.reconnectAtMs = now + d.sched.offlineMs();
    d.dropAtMs = Infinity;
    if (this.ownConnections && d.client !== null) {
      // With a connection of its own, the device's network goes too: the next session dials again.
      d.client.close();
      this.clients.delete(Math.floor((d.identity.index * this.opts.connections) / this.opts.devices));
    }
  }

  private endSession(d: Device): void {
    if (d.state === 'online') this.connected--;
    if (d.timer !== null) clearTimeout(d.timer);
    d.timer = null;
    const s = d.session;
    d.session = null;
    d.state = 'backoff';
    s?.close();
  }

  private backoff(d: Device): void {
    if (this.stopped) return;
    // Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2^attempt)].
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(d.attempt, 16));
    d.attempt++;
    d.state = 'backoff';
    d.reconnectAtMs = this.now() + d.sched.jitter.next() * ceiling;
    this.wake(d);
  }

  private close(d: Device): void {
    if (d.session !== null) this.endSession(d);
    d.state = 'closed';
  }

  /** `ref.session` is the session these callbacks belong to: a late event of an old stream is not this one's. */
  private callbacks(d: Device, ref: { session: Session | null }): SessionEvents {
    const mine = () => d.session !== null && d.session === ref.session;
    return {
      connected: () => {
        this.reach();
        if (d.state === 'connecting' && mine()) this.online(d, this.now(), true);
      },
      ackedUpTo: (upTo) => {
        this.reach();
        this.ackedUpTo(d, upTo);
      },
      ackedSeqs: (seqs) => {
        this.reach();
        const now = this.now();
        for (const seq of seqs) this.ackOne(d, seq, now);
        this.settleOutstanding(d);
      },
      result: (seq, check) => {
        this.reach();
        this.result(d, seq, check.value, check.input);
      },
      rejected: (seq, code) => {
        this.reach();
        // Codes come from the server: a hostile or broken one could send a new code every time.
        const key = code in this.totals.rejected || Object.keys(this.totals.rejected).length < REJECT_CODES_MAX ? code : 'OTHER';
        this.totals.rejected[key] = (this.totals.rejected[key] ?? 0) + 1;
        if (seq > 0) d.window.mark(seq, REJECTED);
      },
      callFailed: (err, seqs) => {
        const kind = errorKind(err);
        this.error(kind);
        this.attemptFailed(d, kind, err);
        // The events of a failed call are lost to this run: counted unacknowledged now, and out
        // of the window so it does not wait for them.
        for (const seq of seqs) if (d.window.mark(seq, REJECTED) > 0) this.totals.unacked++;
        this.settleOutstanding(d);
      },
      writable: () => {
        if (mine()) this.writable(d);
      },
      ended: (err) => {
        if (!mine() || this.stopped) return;
        const kind = err === null ? 'ENDED_BY_SERVER' : errorKind(err);
        this.error(kind);
        this.attemptFailed(d, kind, err);
        this.endSession(d);
        this.backoff(d);
      },
    };
  }

  // ---- what comes back ----------------------------------------------------------------------

  private ackedUpTo(d: Device, upTo: number): void {
    if (upTo <= d.ackedUpTo) return;
    const now = this.now();
    const top = Math.min(upTo, d.window.highestSent);
    for (let seq = d.ackedUpTo + 1; seq <= top; seq++) this.ackOne(d, seq, now);
    d.ackedUpTo = top;
    this.settleOutstanding(d);
  }

  private ackOne(d: Device, seq: number, now: number): void {
    const f = d.window.flagsOf(seq);
    if ((f & (REJECTED | ACKED)) !== 0 || (f & SENT) === 0) return;
    const intended = d.window.intendedMs(seq);
    this.totals.acked++;
    this.sec.acked++;
    this.live.record('ack', now - intended);
    if (this.measured(intended)) {
      this.totals.ackedMeasured++;
      this.recorder.record(d.slow ? 'ackSlow' : 'ack', now - intended);
    }
    d.window.mark(seq, ACKED);
  }

  /** Closed loop: once everything sent is acknowledged, the device may send again. */
  private settleOutstanding(d: Device): void {
    if (!this.opts.closedLoop || d.outstanding === 0) return;
    for (let seq = d.window.base; seq <= d.transmittedUpTo; seq++) {
      const f = d.window.flagsOf(seq);
      if ((f & SENT) !== 0 && (f & (ACKED | REJECTED | RESULT)) === 0) return;
    }
    d.outstanding = 0;
    this.wake(d);
  }

  private result(d: Device, wireSeq: number, value: number, input: number | undefined): void {
    let seq = wireSeq;
    const m = this.driver.seqModulo;
    if (m !== undefined) {
      seq = seqOfResidue(wireSeq, d.window.base, d.window.highestSent, m);
      if (seq === 0) {
        this.totals.duplicates++;
        return;
      }
    }
    const f = d.window.flagsOf(seq);
    if (seq < d.window.base || (f & RESULT) !== 0) {
      this.totals.duplicates++;
      return;
    }
    if ((f & SENT) === 0) {
      // A result for an event this device never sent.
      this.totals.wrong++;
      return;
    }
    const now = this.now();
    const intended = d.window.intendedMs(seq);
    const expectedInput = this.inputOf(d, seq);
    if (this.opts.type === 'sq' && ((input !== undefined && input !== expectedInput) || value !== expectedInput * expectedInput)) this.totals.wrong++;
    this.totals.results++;
    this.sec.results++;
    this.live.record('result', now - intended);
    if (this.measured(intended)) {
      this.totals.resultsMeasured++;
      this.recorder.record(d.slow ? 'resultSlow' : 'result', now - intended);
    }
    if (!this.driver.acks && (f & ACKED) === 0) this.ackOne(d, seq, now);
    if (seq > d.lastResultSeq) d.lastResultSeq = seq;
    d.window.mark(seq, RESULT);
    this.settleOutstanding(d);
  }

  private error(kind: string): void {
    this.totals.errors[kind] = (this.totals.errors[kind] ?? 0) + 1;
    this.sec.errors++;
  }

  // ---- per-second ticks and the end ---------------------------------------------------------

  /**
   * One tick per second of the run, each closing the second it names. The seconds are counted,
   * not read off the clock when a timer fires: a timer that fires late (a busy event loop, a
   * loaded machine) drifts, and rounding the clock then gave one second two ticks and the next
   * none (a 0 and a double in the series). Each tick is armed for its second's end from t0, so
   * lateness never accumulates. `stop()` cancels the timer and returns the second in progress,
   * for the final tick.
   */
  private startSecondTicks(): { stop(): number } {
    let sec = Math.max(0, Math.floor(this.now() / 1000));
    let timer: NodeJS.Timeout | null = null;
    const arm = () => {
      timer = setTimeout(() => {
        this.flushTick(sec);
        sec++;
        arm();
      }, Math.max(0, (sec + 1) * 1000 - this.now()));
    };
    arm();
    return {
      stop: () => {
        if (timer !== null) clearTimeout(timer);
        return sec;
      },
    };
  }

  private flushTick(sec: number): void {
    this.emit({ type: 'tick', sec: Math.max(0, sec), ...this.sec, connected: this.connected, hist: this.recorder.drain(), live: this.live.drain() });
    this.sec = { sent: 0, acked: 0, results: 0, errors: 0 };
  }

  private reconcile(): void {
    const results = this.expectResults;
    for (const d of this.devices) {
      for (const [seq, f] of d.window.outstanding()) {
        // A seq behind an unsettled one stays in the window even when it is settled itself.
        if (d.window.settled(f)) continue;
        if (seq > d.transmittedUpTo) this.totals.heldUnsent++;
        else if (results && (f & RESULT) === 0 && ((f & ACKED) !== 0 || !this.driver.acks)) this.totals.missing++;
        // Sent and never acknowledged (with or without a result: the ack is the durability promise).
        else this.totals.unacked++;
      }
    }
  }
}

