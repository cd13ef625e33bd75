/**
 * A per-process budget of items per second for a bulk side path (StreamEvents events,
 * IngestMetrics metrics): a token bucket holding at most one second's worth.
 *
 * Why: device streams and the side paths share one event loop, one Redis and the machine's cores.
 * A client pushing events or metrics as fast as it can would otherwise take all of them, and every
 * device's acks would wait behind its work. With a budget, the side path gets its configured rate
 * and the rest stays for the devices.
 *
 * Work is taken first and paid after (take may drive the bucket below zero: a call's size is known
 * only once it is decoded); while the bucket is empty, callers wait (flow control: StreamEvents
 * stops reading its calls) or are refused (IngestMetrics, before decoding).
 */
export class RateBudget {
  private tokens: number;
  private lastMs: number;
  /** Callers waiting for tokens; bounded by the calls in progress of the path (its callsMax). */
  private waiters: (() => void)[] = [];
  private timer: NodeJS.Timeout | null = null;

  /** perSecond 0: no budget (always available). */
  constructor(
    readonly perSecond: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = perSecond;
    this.lastMs = now();
  }

  get unlimited(): boolean {
    return this.perSecond === 0;
  }

  /** True when there are tokens left now. */
  get available(): boolean {
    if (this.unlimited) return true;
    this.refill();
    return this.tokens > 0;
  }

  /** Pays for n items (after the work was taken). */
  take(n: number): void {
    if (this.unlimited) return;
    this.refill();
    this.tokens -= n;
  }

  /** Resolves once tokens are available (at once if they are). */
  whenAvailable(): Promise<void> {
    if (this.available) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.arm();
    });
  }

  private refill(): void {
    const t = this.now();
    const elapsed = t - this.lastMs;
    if (elapsed <= 0) return;
    this.lastMs = t;
    this.tokens = Math.min(this.perSecond, this.tokens + (elapsed * this.perSecond) / 1000);
  }

  /** Wakes the waiters when the bucket is positive again (polled: a timer per budget, not per waiter). */
  private arm(): void {
    if (this.timer !== null) return;
    this.refill();
    const waitMs = this.tokens > 0 ? 0 : Math.ceil(((1 - this.tokens) * 1000) / this.perSecond);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.available) return this.arm();
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    }, Math.min(Math.max(waitMs, 1), 1000));
  }
}
