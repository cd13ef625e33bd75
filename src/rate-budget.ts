/**
 * A per-process budget of items per second for a bulk side path (StreamEvents events,
 * IngestMetrics metrics): a token bucket holding at most a tenth of a second's worth, so even a
 * budget left unused goes out in slices of ~100 ms, not in one burst.
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
  /** The bucket's size: a tenth of a second's worth. */
  private readonly capacity: number;
  /** Callers waiting for tokens; bounded by the calls in progress of the path (its callsMax). */
  private waiters: (() => void)[] = [];
  private timer: NodeJS.Timeout | null = null;

  /** perSecond 0: no budget (always available). */
  constructor(
    readonly perSecond: number,
    private readonly now: () => number = Date.now,
  ) {
    this.capacity = Math.max(1, perSecond / 10);
    this.tokens = this.capacity;
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
    this.tokens = Math.min(this.capacity, this.tokens + (elapsed * this.perSecond) / 1000);
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
