/**
 * Schedules: a seeded list of operations over a few devices, two gateway instances (a, b) and
 * their SSE endpoints, a Nimbus client or two, and the engine's roles.
 *
 * Operations name devices by index and instances by letter, never by runtime state, so any subset
 * of a schedule is again a valid schedule (the runner skips an operation whose precondition does
 * not hold at run time, e.g. deleting the Redis record of a device that is not quiescent). That is
 * what lets the runner shrink a failing schedule by removing operations.
 */
import { Prng } from './prng.js';

export type Instance = 'a' | 'b';
export type Role = 'a' | 'b' | 'processor' | 'forwarder';

export type Op =
  /** A Connect stream on `on`; a takeover when the device already has one open. */
  | { op: 'connect'; d: number; on: Instance }
  /** `n` events on the device's newest open Connect stream, in one Uplink when `batch`; IngestBatch on `on` when it has none. */
  | { op: 'send'; d: number; n: number; batch: boolean; on: Instance }
  /** An Ingest client stream of `n` events (not awaited: concurrent with what follows). */
  | { op: 'ingest'; d: number; on: Instance; n: number }
  /** An IngestBatch call of `n` events (not awaited). */
  | { op: 'batch'; d: number; on: Instance; n: number }
  /** Two concurrent IngestBatch calls, one with the odd and one with the even seqs of 2n events. */
  | { op: 'split'; d: number; on: [Instance, Instance]; n: number }
  /** Connect through a proxy, send `n`, freeze the proxy both ways (half-open), reconnect directly on `to`. */
  | { op: 'halfOpen'; d: number; on: Instance; to: Instance; n: number }
  /** The device reboots: its streams are cut, it reconnects on `on`, maybe resends seq 1..3 blindly, continues. */
  | { op: 'restart'; d: number; on: Instance; blind: boolean; n: number }
  /** An SSE reader for the device on `on`'s HTTP port (Last-Event-ID if the device keeps a cursor). */
  | { op: 'sse'; d: number; on: Instance }
  /** A Nimbus ProcessEvent stream for client `c` on `on` (a takeover if one is open) and `n` requests on it. */
  | { op: 'nimbus'; c: number; on: Instance; n: number }
  /** `n` more requests on the client's newest Nimbus stream. */
  | { op: 'nimbusSend'; c: number; n: number }
  /** kill -9 a role and start it again. */
  | { op: 'kill'; role: Role }
  /** DEL <prefix>dev:<id>, only when the device is quiescent. */
  | { op: 'deleteDev'; d: number }
  | { op: 'wait'; ms: number };

export interface Device {
  /** Reconnects with x-last-result-seq / Last-Event-ID (its highest result seq), or never sends one. */
  keepsCursor: boolean;
}

export interface Schedule {
  seed: number;
  devices: Device[];
  nimbusClients: number;
  ops: Op[];
}

export interface GenOptions {
  opsMax: number;
  /** Kill operations allowed (at most one per schedule). */
  kills: boolean;
  /**
   * Plain behaviour only: each device connects once and sends increasing seqs on that stream.
   * What today's engine already promises: the harness's own soundness check.
   */
  plain?: boolean;
}

export function generate(seed: number, opts: GenOptions = { opsMax: 40, kills: true }): Schedule {
  const rng = new Prng(seed);
  const devices: Device[] = Array.from({ length: rng.int(3, 6) }, () => ({ keepsCursor: rng.bool(0.6) }));
  const nimbusClients = rng.int(0, 2);
  const ops: Op[] = [];
  const inst = (): Instance => (rng.bool() ? 'a' : 'b');
  const d = () => rng.int(0, devices.length - 1);
  let killed = 0;
  const count = rng.int(Math.min(8, opts.opsMax), opts.opsMax);
  if (opts.plain === true) {
    devices.forEach((_, k) => ops.push({ op: 'connect', d: k, on: inst() }));
    while (ops.length < count) {
      ops.push({ op: 'send', d: d(), n: rng.int(1, 4), batch: rng.bool(0.3), on: 'a' });
      if (rng.bool(0.6)) ops.push({ op: 'wait', ms: rng.int(0, 250) });
    }
    return { seed, devices, nimbusClients: 0, ops };
  }
  while (ops.length < count) {
    const kind = rng.weighted({
      connect: 5,
      send: 12,
      ingest: 3,
      batch: 4,
      split: 2,
      halfOpen: 1.5,
      restart: 2,
      sse: 2,
      nimbus: nimbusClients > 0 ? 2 : 0,
      nimbusSend: nimbusClients > 0 ? 3 : 0,
      // At most one kill per schedule: a processor or forwarder kill costs a consumer-group
      // session timeout (10 s) before results flow again.
      kill: opts.kills && killed === 0 ? 0.6 : 0,
      deleteDev: 1,
    });
    switch (kind) {
      case 'connect': ops.push({ op: 'connect', d: d(), on: inst() }); break;
      case 'send': ops.push({ op: 'send', d: d(), n: rng.int(1, 4), batch: rng.bool(0.3), on: inst() }); break;
      case 'ingest': ops.push({ op: 'ingest', d: d(), on: inst(), n: rng.int(1, 4) }); break;
      case 'batch': ops.push({ op: 'batch', d: d(), on: inst(), n: rng.int(1, 4) }); break;
      case 'split': ops.push({ op: 'split', d: d(), on: [inst(), inst()], n: rng.int(2, 4) }); break;
      case 'halfOpen': ops.push({ op: 'halfOpen', d: d(), on: inst(), to: inst(), n: rng.int(1, 3) }); break;
      case 'restart': ops.push({ op: 'restart', d: d(), on: inst(), blind: rng.bool(0.5), n: rng.int(1, 3) }); break;
      case 'sse': ops.push({ op: 'sse', d: d(), on: inst() }); break;
      case 'nimbus': ops.push({ op: 'nimbus', c: rng.int(0, nimbusClients - 1), on: inst(), n: rng.int(1, 4) }); break;
      case 'nimbusSend': ops.push({ op: 'nimbusSend', c: rng.int(0, nimbusClients - 1), n: rng.int(1, 4) }); break;
      case 'kill': killed++; ops.push({ op: 'kill', role: rng.pick(['a', 'b', 'processor', 'forwarder'] as const) }); break;
      case 'deleteDev': ops.push({ op: 'deleteDev', d: d() }); break;
    }
    // Small random waits between operations: interleavings, not a fixed rhythm.
    if (rng.bool(0.6)) ops.push({ op: 'wait', ms: rng.int(0, 250) });
  }
  return { seed, devices, nimbusClients, ops };
}

/** The schedule with only the operations at `keep` (indices into schedule.ops). */
export function subset(s: Schedule, keep: readonly number[]): Schedule {
  const set = new Set(keep);
  return { ...s, ops: s.ops.map((o, i) => (set.has(i) ? o : { op: 'wait', ms: 0 } as Op)) };
}

export function formatOp(o: Op): string {
  switch (o.op) {
    case 'connect': return `connect d${o.d} on ${o.on}`;
    case 'send': return `send d${o.d} x${o.n}${o.batch ? ' (one Uplink)' : ''} (IngestBatch on ${o.on} if no stream)`;
    case 'ingest': return `Ingest d${o.d} on ${o.on} x${o.n}`;
    case 'batch': return `IngestBatch d${o.d} on ${o.on} x${o.n}`;
    case 'split': return `two concurrent IngestBatch d${o.d} on ${o.on[0]}/${o.on[1]}, odd/even seqs of ${2 * o.n}`;
    case 'halfOpen': return `half-open d${o.d} via proxy to ${o.on} x${o.n}, reconnect on ${o.to}`;
    case 'restart': return `restart d${o.d} on ${o.on}${o.blind ? ', blind resend 1..3' : ''}, then x${o.n}`;
    case 'sse': return `SSE d${o.d} on ${o.on}`;
    case 'nimbus': return `Nimbus c${o.c} on ${o.on} x${o.n}`;
    case 'nimbusSend': return `Nimbus send c${o.c} x${o.n}`;
    case 'kill': return `kill -9 ${o.role} and restart`;
    case 'deleteDev': return `DEL dev:d${o.d} (if quiescent)`;
    case 'wait': return `wait ${o.ms} ms`;
  }
}
