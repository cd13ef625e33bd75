/**
 * Admission: puts every event a gateway instance receives into its device's one order, shared by
 * every call and stream of the device on every instance (README "Delivery contract").
 *
 * Reads and writes: `dev:<id>` fields a and k, and the admission lease `adm:<id>`, through one Lua
 * script call (admission-script.ts) per event-loop turn for every event received in that turn.
 *
 *   submit() ──> queue ──(one call per turn, at most one call in flight)──> verdicts, in order
 *                  ^                                                          │
 *                  └── waiting[device] <── WAIT (lease held elsewhere) ───────┤
 *                                                                             ├─ taken: produce
 *                                                                             └─ DUPLICATE / BUSY /
 *                                                                                UNAVAILABLE: reject
 *
 * Guarantee: an event is taken only with a seq above every seq taken for its device before (or a
 * seq whose earlier taking never became durable, once nothing of the device can land after it);
 * while this instance has events of a device waiting for Kafka it holds the device's lease, so no
 * other instance's event of that device can reach Kafka in between: a device's events are in its
 * partition in seq order, which is what the forwarder's dedupe relies on. A delivery report that
 * comes after the lease was lost is not acknowledged (settled() returns false).
 */
import assert from 'node:assert/strict';
import type { Config } from '../config.js';
import { metrics } from '../http/metrics.js';
import { isCluster, type RedisClient } from '../redis/client.js';
import { callScript, defineManyKeyScript, groupByNode, nodeOf, refreshSlots } from '../redis/sharding.js';
import { topology, type Topology } from '../topology.js';
import { ADMIT_RENEW_SCRIPT, ADMIT_SCRIPT } from './admission-script.js';
import { RejectCode } from './validate.js';
import type { Reject } from './protocol.js';

export type AdmitOutcome = { readonly taken: true; readonly seq: number } | { readonly taken: false; readonly reject: Reject };

export interface AdmitItem {
  readonly deviceId: string;
  /** 0: the engine numbers the event (Nimbus). */
  readonly seq: number;
  /** Called once, with the seq taken or the Reject to send. */
  readonly done: (outcome: AdmitOutcome) => void;
  /**
   * The event was taken by a call whose answer came after its device had been told UNAVAILABLE:
   * it must still be produced (nobody waits for its outcome), so that every taken seq reaches Kafka
   * in order and no later seq of the device lands before it.
   */
  readonly orphaned: (seq: number) => void;
}

interface Queued extends AdmitItem {
  /** When the event first asked; a WAIT older than gateway.admitWaitMs turns into BUSY. */
  readonly firstAtMs: number;
}

/** A device with events of this instance waiting for Kafka. */
interface Held {
  inflight: number;
  /** Highest seq taken here while held: a seq in (k, a] at or below it must wait. */
  maxSeq: number;
  /** Reports are acknowledged only before this (local clock): the lease is surely still ours. */
  leaseUntilMs: number;
  /** Highest seq reported durable, in order; frozen once a report failed. */
  durableSeq: number;
  failed: boolean;
}

/** A verdict of the script for one seq (see admission-script.ts). */
const DUPLICATE = -1;
const WAIT = -2;
const OUT_OF_ORDER = -3;
/** How often events that got WAIT ask again. */
const RETRY_MS = 25;
/** The lease is treated as lost this long before it would expire in Redis (clock rates, transit). */
const LEASE_MARGIN = 0.8;
/**
 * Admission calls in flight at once. Redis runs them in order and answers in order, so they are
 * pipelined: a turn's events go out at once instead of waiting for the previous turn's answer.
 */
const CALLS_MAX = 8;
/** Lease renewals per script call. */
const RENEW_CHUNK = 500;

export const duplicateMessage = (seq: number, lastSeq: number): string =>
  `seq ${seq} is not above ${lastSeq}, this device's last seq, and an event with seq ${seq} is already durable: if this is a resend it is done (its result comes once); if the device's counter restarted, continue from seq ${lastSeq + 1}`;
export const outOfOrderMessage = (seq: number, lastSeq: number): string =>
  `seq ${seq} is not above ${lastSeq}, this device's last seq, and was never taken: a device's events are taken in seq order across all its calls and streams; send this reading again with seq ${lastSeq + 1} or above`;
export const BUSY_MESSAGE = 'another call of this device on another gateway instance has events waiting for Kafka; send this event again shortly';
export const UNAVAILABLE_MESSAGE = 'Redis did not order this event in time (gateway.admitTimeoutMs)';

export class Admission {
  private readonly queue: Queued[] = [];
  /** Devices whose events wait for a retry, each with its events in order; later events join them. */
  private readonly waiting = new Map<string, Queued[]>();
  private waitingCount = 0;
  private readonly held = new Map<string, Held>();
  /** k to record and leases to drop, sent with the next call. */
  private readonly updates = new Map<string, { k: number; release: boolean }>();
  /** Admission calls sent and not yet answered (or timed out); at most CALLS_MAX. */
  private calls = 0;
  /**
   * Devices with events in a call not yet answered, and in how many. Invariant: a
   * device's events are in at most one unanswered call.
   */
  private readonly inCalls = new Map<string, number>();
  private scheduled = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private waitTimer: NodeJS.Timeout | null = null;
  private readonly renewTimer: NodeJS.Timeout;
  private readonly prefix: string;
  private readonly t: Topology;
  private readonly cfg: Config['gateway'];
  private readonly ttlMs: number;
  private stopped = false;

  constructor(
    config: Config,
    private readonly instanceId: string,
    private readonly redis: RedisClient,
  ) {
    this.t = topology(config);
    this.prefix = this.t.redis.prefix;
    this.cfg = config.gateway;
    this.ttlMs = config.redis.deviceStateTtlMs;
    defineManyKeyScript(redis, 'stratusAdmit', ADMIT_SCRIPT);
    defineManyKeyScript(redis, 'stratusAdmitRenew', ADMIT_RENEW_SCRIPT);
    this.renewTimer = setInterval(() => void this.renew(), Math.floor(this.cfg.admitLeaseMs / 3));
    this.renewTimer.unref();
  }

  /** Events waiting for a verdict, on this instance. */
  get pending(): number {
    return this.queue.length + this.waitingCount;
  }

  submit(item: AdmitItem): void {
    if (this.stopped || this.pending >= this.cfg.admitQueueMax) {
      item.done({ taken: false, reject: { seq: item.seq, code: RejectCode.OVERLOADED, message: `more than ${this.cfg.admitQueueMax} events wait to be ordered on this instance (gateway.admitQueueMax); send this event again later`, lastSeq: 0 } });
      return;
    }
    const q: Queued = { ...item, firstAtMs: Date.now() };
    const w = this.waiting.get(item.deviceId);
    if (w !== undefined) {
      w.push(q);
      this.waitingCount++;
    } else {
      this.queue.push(q);
    }
    this.schedule();
  }

  /**
   * A delivery report for a taken event. Returns true when it may be acknowledged: durable, and
   * reported while this instance surely held the device's lease.
   */
  settled(deviceId: string, seq: number, durable: boolean): boolean {
    const h = this.held.get(deviceId);
    assert.ok(h !== undefined && h.inflight > 0, `a report for device ${deviceId} seq ${seq} with nothing of it in flight`);
    h.inflight--;
    const ackable = durable && Date.now() <= h.leaseUntilMs;
    if (durable && !h.failed) h.durableSeq = Math.max(h.durableSeq, seq);
    else if (!durable) h.failed = true;
    if (h.inflight === 0) {
      this.maybeRelease(deviceId);
    } else if (!h.failed) {
      // Recorded with the next call that happens anyway; not a reason for a call of its own.
      this.update(deviceId, h.durableSeq, false);
    }
    if (!ackable && durable) metrics.admissionLeaseLost.inc();
    return ackable;
  }

  /**
   * Lets go of the device's lease, with its durable prefix, once nothing of it waits for Kafka, for
   * an answer, or for a retry here. A release must never reach Redis after a call that took the
   * device again: so none is queued while a call carrying the device is unanswered (its answer
   * comes back here), and a call carries queued releases before its own takes.
   */
  private maybeRelease(dev: string): void {
    const h = this.held.get(dev);
    if (h === undefined || h.inflight > 0 || this.inCalls.has(dev) || this.waiting.has(dev)) return;
    this.held.delete(dev);
    this.update(dev, h.durableSeq, true);
    this.schedule();
  }

  private releaseQueued(): boolean {
    for (const u of this.updates.values()) if (u.release) return true;
    return false;
  }

  /** Queues k (the highest wins) and, with `release`, the lease's release, for the next call. */
  private update(dev: string, k: number, release: boolean): void {
    const u = this.updates.get(dev);
    this.updates.set(dev, { k: Math.max(u?.k ?? 0, k), release: (u?.release ?? false) || release });
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.renewTimer);
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    if (this.waitTimer !== null) clearTimeout(this.waitTimer);
  }

  private schedule(): void {
    if (this.stopped || this.scheduled || this.calls >= CALLS_MAX) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.call();
    });
  }

  private async call(): Promise<void> {
    if (this.calls >= CALLS_MAX) return;
    // A device's events are never in two unanswered calls: a later call could take a later seq of
    // it while an earlier one waits (WAIT), and a stream's cumulative acked_seq would then pass an
    // event whose outcome is still to come. Its events stay queued, in order, until the answer.
    const items: Queued[] = [];
    if (this.inCalls.size === 0) {
      items.push(...this.queue.splice(0, this.cfg.admitBatchMax));
    } else {
      const rest: Queued[] = [];
      for (const it of this.queue) {
        if (items.length < this.cfg.admitBatchMax && !this.inCalls.has(it.deviceId)) items.push(it);
        else rest.push(it);
      }
      this.queue.length = 0;
      this.queue.push(...rest);
    }
    if (items.length === 0 && !this.releaseQueued()) return;
    let updates = [...this.updates];
    this.updates.clear();
    // On Redis Cluster a call carries devices of one master (redis/sharding.ts); the others go back
    // to the front of the queue, in order, for the next call, scheduled at once below.
    const routeDevice = items[0]?.deviceId ?? updates[0]![0];
    const routeKey = this.t.redis.deviceState(routeDevice);
    if (isCluster(this.redis)) {
      const node = nodeOf(this.redis, routeKey);
      const back = items.filter((it) => nodeOf(this.redis, this.t.redis.deviceState(it.deviceId)) !== node);
      if (back.length > 0) {
        this.queue.unshift(...back);
        items.splice(0, items.length, ...items.filter((it) => !back.includes(it)));
      }
      const later = updates.filter(([dev]) => nodeOf(this.redis, this.t.redis.deviceState(dev)) !== node);
      if (later.length > 0) {
        for (const [dev, u] of later) this.updates.set(dev, u);
        updates = updates.filter(([dev]) => nodeOf(this.redis, this.t.redis.deviceState(dev)) === node);
      }
    }
    // Groups by device, each in arrival order; groups in order of first arrival.
    const groups = new Map<string, Queued[]>();
    for (const it of items) {
      const g = groups.get(it.deviceId);
      if (g === undefined) groups.set(it.deviceId, [it]);
      else g.push(it);
    }
    const args: (string | number)[] = [this.prefix, this.instanceId, this.cfg.admitLeaseMs, this.ttlMs, updates.length];
    for (const [dev, u] of updates) args.push(dev, u.k, u.release ? 1 : 0);
    for (const [dev, g] of groups) {
      args.push(dev, this.held.get(dev)?.maxSeq ?? 0, g.length);
      for (const it of g) args.push(it.seq);
      this.inCalls.set(dev, (this.inCalls.get(dev) ?? 0) + 1);
    }
    const answered = () => {
      for (const dev of groups.keys()) {
        const n = this.inCalls.get(dev)! - 1;
        if (n === 0) this.inCalls.delete(dev);
        else this.inCalls.set(dev, n);
      }
    };
    this.calls++;
    const issuedAtMs = Date.now();
    const stopTimer = metrics.admissionSeconds.startTimer();
    const reply = callScript<number[]>(this.redis, 'stratusAdmit', routeKey, args);
    // More calls may go out while this one waits (other devices' events, or other masters').
    if (this.queue.length > 0 || (this.updates.size > 0 && isCluster(this.redis))) this.schedule();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), this.cfg.admitTimeoutMs)));
    const first = await Promise.race([reply.then((r) => ({ r }), (err: unknown) => ({ err })), late]);
    clearTimeout(timer);
    this.calls--;
    if (first === 'late') {
      // Redis has not answered in gateway.admitTimeoutMs: the devices are told UNAVAILABLE now. The
      // call may still run (ioredis sends it again after a reconnect); whatever it takes then is
      // produced all the same (orphaned), so a taken seq is never left out of Kafka. Calls after
      // this one run after it in Redis, and their answers come after its answer.
      metrics.admissionFailures.inc();
      for (const g of groups.values()) for (const it of g) it.done({ taken: false, reject: { seq: it.seq, code: RejectCode.UNAVAILABLE, message: UNAVAILABLE_MESSAGE, lastSeq: 0 } });
      reply.then(
        (r) => {
          answered();
          this.apply(groups, r, issuedAtMs, true);
        },
        // Failed after all: it took nothing.
        () => {
          answered();
          for (const dev of groups.keys()) this.maybeRelease(dev);
        },
      );
    } else if ('err' in first) {
      // Redis refused the call (an error reply): the script did not take anything.
      answered();
      // A key of another master: the slot map is stale (a failover, a slot that moved).
      if (/non local key|same slot/.test(String(first.err))) refreshSlots(this.redis);
      metrics.admissionFailures.inc();
      for (const g of groups.values()) for (const it of g) it.done({ taken: false, reject: { seq: it.seq, code: RejectCode.UNAVAILABLE, message: UNAVAILABLE_MESSAGE, lastSeq: 0 } });
      // What it carried goes with a later call: k always; a release only if the device was not
      // taken again meanwhile (by a call sent after this one).
      for (const [dev, u] of updates) this.update(dev, u.k, u.release && !this.held.has(dev) && !this.inCalls.has(dev));
      for (const dev of groups.keys()) this.maybeRelease(dev);
      // Not at once: Redis refuses calls right now (or the connection is closed).
      this.retryLater();
      return;
    } else {
      stopTimer();
      answered();
      this.apply(groups, first.r, issuedAtMs, false);
    }
    if (this.queue.length > 0 || this.releaseQueued()) this.schedule();
  }

  private retryLater(): void {
    if (this.stopped || this.retryTimer !== null) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.schedule();
    }, RETRY_MS);
  }

  /** `orphans`: the devices were already told UNAVAILABLE; only what was taken matters (it is produced). */
  private apply(groups: Map<string, Queued[]>, reply: number[], issuedAtMs: number, orphans: boolean): void {
    const now = Date.now();
    let r = 0;
    for (const [dev, g] of groups) {
      const a = Number(reply[r++]);
      r++; // max(k, h): not needed here
      let waitFrom = -1;
      for (let j = 0; j < g.length; j++) {
        const v = Number(reply[r++]);
        const it = g[j]!;
        if (v > 0) {
          let h = this.held.get(dev);
          if (h === undefined) {
            h = { inflight: 0, maxSeq: 0, leaseUntilMs: 0, durableSeq: 0, failed: false };
            this.held.set(dev, h);
          }
          h.inflight++;
          if (v > h.maxSeq) h.maxSeq = v;
          h.leaseUntilMs = issuedAtMs + this.cfg.admitLeaseMs * LEASE_MARGIN;
          if (orphans) it.orphaned(v);
          else it.done({ taken: true, seq: v });
        } else if (orphans) {
          // Not taken: nothing to produce, and the device already has its answer.
        } else if (v === DUPLICATE) {
          it.done({ taken: false, reject: { seq: it.seq, code: RejectCode.DUPLICATE, message: duplicateMessage(it.seq, a), lastSeq: a } });
        } else if (v === OUT_OF_ORDER) {
          it.done({ taken: false, reject: { seq: it.seq, code: RejectCode.OUT_OF_ORDER, message: outOfOrderMessage(it.seq, a), lastSeq: a } });
        } else {
          assert.equal(v, WAIT, `admission verdict ${v}`);
          waitFrom = j;
          break;
        }
      }
      if (waitFrom >= 0) {
        r += g.length - waitFrom - 1;
        this.wait(dev, g.slice(waitFrom), a, now);
      }
      // Held with nothing in flight, its release deferred while this call was unanswered.
      this.maybeRelease(dev);
    }
  }

  /** Events that got WAIT: they, and every later event of their device, ask again in RETRY_MS. */
  private wait(dev: string, items: Queued[], lastSeq: number, now: number): void {
    const list: Queued[] = [];
    for (const it of items) {
      if (now - it.firstAtMs > this.cfg.admitWaitMs) {
        it.done({ taken: false, reject: { seq: it.seq, code: RejectCode.BUSY, message: BUSY_MESSAGE, lastSeq } });
      } else {
        list.push(it);
      }
    }
    // Later events of the device still in the queue must not overtake these.
    for (let i = 0; i < this.queue.length; ) {
      if (this.queue[i]!.deviceId === dev) list.push(...this.queue.splice(i, 1));
      else i++;
    }
    if (list.length === 0) return;
    const w = this.waiting.get(dev);
    if (w !== undefined) {
      w.unshift(...list);
    } else {
      this.waiting.set(dev, list);
    }
    this.waitingCount += list.length;
    if (this.waitTimer === null) {
      this.waitTimer = setTimeout(() => {
        this.waitTimer = null;
        const back: Queued[] = [];
        for (const l of this.waiting.values()) back.push(...l);
        this.waiting.clear();
        this.waitingCount = 0;
        this.queue.unshift(...back);
        this.schedule();
      }, RETRY_MS);
    }
  }

  /** Extends the leases of the devices with events waiting for Kafka here; a lost one stops acks. */
  private async renew(): Promise<void> {
    for (const devices of groupByNode(this.redis, [...this.held.keys()], (dev) => this.t.redis.deviceState(dev)))
      for (let i = 0; i < devices.length; i += RENEW_CHUNK) await this.renewChunk(devices.slice(i, i + RENEW_CHUNK));
  }

  /** Renews the leases of devices one master serves. */
  private async renewChunk(chunk: string[]): Promise<void> {
    const issuedAtMs = Date.now();
    try {
      const reply = await callScript<number[]>(this.redis, 'stratusAdmitRenew', this.t.redis.deviceState(chunk[0]!), [this.prefix, this.instanceId, this.cfg.admitLeaseMs, ...chunk]);
      chunk.forEach((dev, j) => {
        const h = this.held.get(dev);
        if (h !== undefined && Number(reply[j]) === 1) h.leaseUntilMs = issuedAtMs + this.cfg.admitLeaseMs * LEASE_MARGIN;
      });
    } catch {
      // Redis did not answer: the leases run out and reports after that are not acknowledged
      // (counted in stratus_admission_lease_lost_total); the next renewal tries again.
      metrics.admissionFailures.inc();
    }
  }
}
