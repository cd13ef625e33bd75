/**
 * Failed authentications on one surface (the gRPC port, SSE), logged at a bounded rate: a client
 * can fail as often as it likes, so a line per failure would let it fill the log. At most one line
 * per window (10 s): the first failure after a quiet window is written at once, the ones after it
 * are tallied and written together when the window ends.
 *
 *   gateway: 312 failed authentications in the last 10 s (forged 300, expired 12); last from 127.0.0.1:53412
 *
 * Never a token or a device id (the id in a failed token is unproven). stratus_auth_failures_total
 * counts the same failures; the caller increments it.
 */
import { AUTH_FAILURE_REASONS, type AuthFailureReason } from './token.js';

export interface AuthFailureLogOptions {
  /** Minimum time between two lines. */
  windowMs?: number;
  write?: (line: string) => void;
  now?: () => number;
}

export class AuthFailureLog {
  private readonly windowMs: number;
  private readonly write: (line: string) => void;
  private readonly now: () => number;
  /** Failures since the last line, by reason. */
  private readonly counts = new Map<AuthFailureReason, number>();
  private total = 0;
  private lastPeer = '';
  private lastLineAtMs = -Infinity;
  /** Invariant: timer !== null iff total > 0 (a tally waits for its window to end). */
  private timer: NodeJS.Timeout | null = null;

  /** `role` starts each line, like the surface's other lines (`gateway`, `sse`). */
  constructor(
    readonly role: string,
    opts: AuthFailureLogOptions = {},
  ) {
    this.windowMs = opts.windowMs ?? 10_000;
    this.write = opts.write ?? ((line) => void process.stderr.write(line));
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
    const byReason = AUTH_FAILURE_REASONS.filter((r) => this.counts.has(r))
      .sort((a, b) => this.counts.get(b)! - this.counts.get(a)!)
      .map((r) => `${r} ${this.counts.get(r)}`)
      .join(', ');
    const noun = this.total === 1 ? 'failed authentication' : 'failed authentications';
    this.write(`${this.role}: ${this.total} ${noun} in the last ${this.windowMs / 1000} s (${byReason}); last from ${this.lastPeer}\n`);
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
