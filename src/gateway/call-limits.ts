/**
 * A limit on the calls in progress of each ingest service, checked when a call's headers arrive,
 * before grpc-js reads (and decodes) its first message.
 *
 *   service group   methods                                          limit (Config)
 *   devices         DeviceGateway/Connect, NimbusService/ProcessEvent  2 × gateway.devicesMax
 *   ingest          DeviceGateway/Ingest, DeviceGateway/IngestBatch   gateway.ingestCallsMax
 *   metrics         data_nexus.MetricsService/*                      streams.callsMax
 *   queue           event.EventService/*                             queue.callsMax
 *
 * Beyond its group's limit, or while the process is past its memory budget (memory-budget.ts), a
 * call ends at once with RESOURCE_EXHAUSTED naming the limit: nothing of it was read, so nothing of
 * it was taken, and the client may send it again later. Health checks and reflection are never
 * limited (a probe must always be answered).
 *
 * Why at the headers: a unary IngestMetrics of 10,000 metrics costs ~14 MiB once decoded; refusing
 * in the handler would come after that cost. grpc-js keeps a call's stream paused until the handler
 * side asks to read, and a status sent before then discards what the client had sent.
 */
import assert from 'node:assert/strict';
import { ServerInterceptingCall, type ServerInterceptor } from '@grpc/grpc-js';
import type { Config } from '../config.js';
import { ErrorCode } from '../errors.js';
import { metrics } from '../http/metrics.js';
import type { MemoryBudget } from '../memory-budget.js';
import type { RateBudget } from '../rate-budget.js';
import { grpcError, type GrpcStatus } from './grpc-status.js';

export interface CallGroup {
  readonly name: string;
  /** Method path prefixes (`/pkg.Service/` or `/pkg.Service/Method`). */
  readonly paths: readonly string[];
  readonly max: number;
  /** The Config key named in the refusal. */
  readonly option: string;
  /** A rate budget the group's calls are refused on while it is spent (set by the service). */
  budget?: { readonly budget: RateBudget; readonly option: string };
  /**
   * Calls of the group past their headers at once (their messages read, decoded and handled);
   * the others in progress wait, unread, in arrival order. Undefined: no such limit.
   */
  readonly activeMax?: number;
}

export function callGroups(config: Config): CallGroup[] {
  return [
    { name: 'devices', paths: ['/stratus.v1.DeviceGateway/Connect', '/nimbus.NimbusService/'], max: 2 * config.gateway.devicesMax, option: 'gateway.devicesMax (twice it: a takeover holds the old and the new stream for a moment)' },
    { name: 'ingest', paths: ['/stratus.v1.DeviceGateway/Ingest'], max: config.gateway.ingestCallsMax, option: 'gateway.ingestCallsMax' },
    // One big IngestMetrics decodes for ~25 ms in one go: a burst of them at once would hold the
    // event loop for all devices; in turn, each holds it once.
    { name: 'metrics', paths: ['/data_nexus.MetricsService/'], max: config.streams.callsMax, option: 'streams.callsMax', activeMax: config.streams.callsActiveMax },
    { name: 'queue', paths: ['/event.EventService/'], max: config.queue.callsMax, option: 'queue.callsMax' },
  ];
}

/** Calls in progress per group; exported for tests. */
/** A call of a group with activeMax: waiting for its turn, running, or ended. */
interface Turn {
  state: 'waiting' | 'starting' | 'running' | 'done';
  readonly go: () => void;
}

export class CallLimits {
  private readonly inProgress = new Map<string, number>();
  /** Per group with activeMax: calls past their headers, and the calls waiting (FIFO) to be. */
  private readonly active = new Map<string, { running: number; waiting: Turn[] }>();
  /** Method path -> group (null: not limited), filled on first sight: paths are the server's own. */
  private readonly byPath = new Map<string, CallGroup | null>();

  constructor(
    private readonly groups: CallGroup[],
    private readonly memory: MemoryBudget,
  ) {
    for (const g of groups) {
      this.inProgress.set(g.name, 0);
      // Every series exists from start, at zero.
      metrics.grpcCallsInProgress.set({ service: g.name }, 0);
      metrics.grpcCallsRefused.inc({ service: g.name, reason: 'calls_max' }, 0);
      metrics.grpcCallsRefused.inc({ service: g.name, reason: 'memory' }, 0);
      metrics.grpcCallsRefused.inc({ service: g.name, reason: 'rate' }, 0);
      if (g.activeMax !== undefined) this.active.set(g.name, { running: 0, waiting: [] });
    }
  }

  /**
   * Lets the call past its headers now, or once an active one of its group ends. Returns the
   * release to call when the call ends (its status sent, or cancelled); it may be called again.
   */
  private activate(group: CallGroup, go: () => void): () => void {
    const a = this.active.get(group.name);
    if (a === undefined) {
      go();
      return () => {};
    }
    const turn: Turn = { state: 'waiting', go };
    if (a.running < group.activeMax!) {
      turn.state = 'running';
      a.running++;
      go();
    } else a.waiting.push(turn);
    return () => {
      const held = turn.state === 'running' || turn.state === 'starting';
      turn.state = 'done';
      if (held) {
        a.running--;
        this.wake(a, group);
      }
    };
  }

  /**
   * Starts waiting calls while there is room: each a turn later, so the event loop serves
   * everything else between two big calls. A call cancelled meanwhile gives its slot back.
   */
  private wake(a: { running: number; waiting: Turn[] }, group: CallGroup): void {
    while (a.running < group.activeMax! && a.waiting.length > 0) {
      const next = a.waiting.shift()!;
      if (next.state !== 'waiting') continue;
      next.state = 'starting';
      a.running++;
      setImmediate(() => {
        if (next.state !== 'starting') return;
        next.state = 'running';
        next.go();
      });
    }
  }

  /** Refuse the group's new calls while budget is spent (RESOURCE_EXHAUSTED naming option). */
  limitRate(groupName: string, budget: RateBudget, option: string): void {
    const g = this.groups.find((x) => x.name === groupName);
    assert.ok(g !== undefined, `no call group ${groupName}`);
    g.budget = { budget, option };
  }

  groupOf(path: string): CallGroup | null {
    let g = this.byPath.get(path);
    if (g === undefined) {
      g = this.groups.find((x) => x.paths.some((p) => path.startsWith(p))) ?? null;
      this.byPath.set(path, g);
    }
    return g;
  }

  count(group: CallGroup): number {
    return this.inProgress.get(group.name)!;
  }

  /** null and the call counted, or the status it is refused with. */
  enter(group: CallGroup): GrpcStatus | null {
    if (this.memory.refusing) {
      metrics.grpcCallsRefused.inc({ service: group.name, reason: 'memory' });
      return grpcError(ErrorCode.MEMORY_BUDGET, this.memory.message());
    }
    if (group.budget !== undefined && !group.budget.budget.available) {
      metrics.grpcCallsRefused.inc({ service: group.name, reason: 'rate' });
      return grpcError(ErrorCode.INGEST_RATE, `this instance takes at most ${group.budget.budget.perSecond} per second on ${group.name} calls (${group.budget.option}) and that is spent; try again shortly or on another instance`);
    }
    const n = this.count(group);
    if (n >= group.max) {
      metrics.grpcCallsRefused.inc({ service: group.name, reason: 'calls_max' });
      return grpcError(ErrorCode.CALLS_MAX, `this instance has ${n} ${group.name} calls in progress (${group.option}); try again shortly or on another instance`);
    }
    this.inProgress.set(group.name, n + 1);
    metrics.grpcCallsInProgress.set({ service: group.name }, n + 1);
    return null;
  }

  leave(group: CallGroup): void {
    const n = this.count(group) - 1;
    this.inProgress.set(group.name, n);
    metrics.grpcCallsInProgress.set({ service: group.name }, n);
  }

  interceptor(): ServerInterceptor {
    return (method, call) => {
      const group = this.groupOf(method.path);
      if (group === null) return new ServerInterceptingCall(call);
      /** Invariant: true from a counted enter() until its one leave(). */
      let counted = false;
      let release = () => {};
      const leave = () => {
        if (!counted) return;
        counted = false;
        release();
        this.leave(group);
      };
      return new ServerInterceptingCall(call, {
        start: (next) =>
          next({
            onReceiveMetadata: (md, mdNext) => {
              const refused = this.enter(group);
              if (refused !== null) {
                call.sendStatus(refused);
                return;
              }
              counted = true;
              release = this.activate(group, () => mdNext(md));
            },
            // The client went away (or the deadline passed): no status will be sent through us.
            onCancel: leave,
          }),
        sendStatus: (status, next) => {
          leave();
          next(status);
        },
      });
    };
  }
}
