/**
 * Failed authentications on one surface (the gRPC port, SSE), logged at a bounded rate: a client
 * can fail as often as it likes, so a line per failure would let it fill the log. At most one line
 * per window (10 s): the first failure after a quiet window is written at once, the ones after it
 * are tallied and written together when the window ends.
 *
 *   {"level":40,...,"role":"gateway","failures":312,"byReason":{"forged":300,"expired":12},"lastFrom":"127.0.0.1:53412","windowMs":10000,
 *    "msg":"312 failed authentications in the last 10 s (forged 300, expired 12); last from 127.0.0.1:53412"}
 *
 * Never a token or a device id (the id in a failed token is unproven). stratus_auth_failures_total
 * counts the same failures; the caller increments it.
 */
import { roleLog, type LogRole } from '../log.js';
import { AUTH_FAILURE_REASONS, type AuthFailureReason } from './token.js';

/** The fields of a tally line. */
export interface AuthFailureTally {
  failures: number;
  byReason: Partial<Record<AuthFailureReason, number>>;
  lastFrom: string;
  windowMs: number;
}

export interface AuthFailureLogOptions {
  /** Minimum time between two lines. */
  windowMs?: number;
  /** Where a tally goes; by default the role's logger at warn, with the tally as fields. */
  write?: (line: string, tally: AuthFailureTally) => void;
  now?: () => number;
}

export class AuthFailureLog {
  private readonly windowMs: number;
  private readonly write: (line: string, tally: AuthFailureTally) => void;
  private readonly now: () => number;
  /** Failures since the last line, by reason. */
  private readonly counts = new Map<AuthFailureReason, number>();
  private total = 0;
  private lastPeer = '';
  private lastLineAtMs = -Infinity;
  /** Invariant: timer !== null iff total > 0 (a tally waits for its window to end). */
  private timer: NodeJS.Timeout | null = null;

  /** `role`: the surface's logger (`gateway`, `sse`); a `write` given gets it as the line's start. */
  constructor(
    readonly role: LogRole,
    opts: AuthFailureLogOptions = {},
  ) {
    this.windowMs = opts.windowMs ?? 10_000;
    this.write = opts.write ?? ((line, tally) => roleLog(role).warn(tally, line.slice(role.length + 2, -1)));
    this.now = opts.now ?? (() => Date.now());
  }

  /** One failed authentication from `peer` (host:port). */
  record(reason: AuthFailureReason, peer: string): void {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
    this.total++;
    this.lastPeer = peer;
    if (this.timer !== null) return;
    const waitMs = this.lastLineAtMs + this.windowMs - this.now();
    if (waitMs <= 0) {
      this.flush();
      return;
    }
    this.timer = setTimeout(() => this.flush(), waitMs);
    // A pending tally must not keep a process alive that is otherwise done.
    this.timer.unref();
  }

  /** Writes the tally now (if any) and clears the timer; the window's end calls it. */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.total === 0) return;
    const reasons = AUTH_FAILURE_REASONS.filter((r) => this.counts.has(r)).sort((a, b) => this.counts.get(b)! - this.counts.get(a)!);
    const byReason = reasons.map((r) => `${r} ${this.counts.get(r)}`).join(', ');
    const noun = this.total === 1 ? 'failed authentication' : 'failed authentications';
    const tally: AuthFailureTally = { failures: this.total, byReason: Object.fromEntries(reasons.map((r) => [r, this.counts.get(r)!])), lastFrom: this.lastPeer, windowMs: this.windowMs };
    this.write(`${this.role}: ${this.total} ${noun} in the last ${this.windowMs / 1000} s (${byReason}); last from ${this.lastPeer}\n`, tally);
    this.lastLineAtMs = this.now();
    this.counts.clear();
    this.total = 0;
  }
}

/** host:port of a socket's remote end, `[v6]:port` for IPv6. */
export function peerOf(address: string | undefined, port: number | undefined): string {
  if (address === undefined) return 'unknown';
  return `${address.includes(':') ? `[${address}]` : address}:${port ?? 0}`;
}
