/**
 * The engine process's memory budget (rssMaxMb): past it, the ingest doors refuse new work instead
 * of growing until the kernel kills the process.
 *
 * RSS is sampled every SAMPLE_MS (process.memoryUsage.rss() reads /proc/self/statm: no heap walk).
 * Refusing starts when RSS passes REFUSE_AT of the budget and stops when it falls below RESUME_AT
 * (hysteresis: one sample over the line does not flap every door). The margin between REFUSE_AT and
 * the budget is what work admitted before the refusal may still use; every door's own in-flight
 * limit (calls, events, bytes) is sized so that margin holds it (README "Limits").
 *
 * While refusing: new gRPC calls on the ingest services end RESOURCE_EXHAUSTED (call-limits.ts),
 * device events on open streams get Reject OVERLOADED (gateway.ts), and a GC is asked for when the
 * process was started with --expose-gc (it is not by default: V8's own heuristics then reclaim).
 */
import { metrics } from './http/metrics.js';
import { roleLog } from './log.js';

const SAMPLE_MS = 100;
export const REFUSE_AT = 0.85;
export const RESUME_AT = 0.75;

export class MemoryBudget {
  private refusingNow = false;
  private timer: NodeJS.Timeout | null = null;
  private rssBytes = 0;
  readonly budgetBytes: number;

  /** rssMaxMb 0: no budget (never refuses). */
  constructor(
    rssMaxMb: number,
    private readonly sample: () => number = () => process.memoryUsage.rss(),
  ) {
    this.budgetBytes = rssMaxMb * 1024 * 1024;
    metrics.memoryBudgetBytes.set(this.budgetBytes);
  }

  start(): this {
    if (this.budgetBytes === 0 || this.timer !== null) return this;
    this.check();
    this.timer = setInterval(() => this.check(), SAMPLE_MS);
    // Sampling never keeps the process alive.
    this.timer.unref();
    return this;
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** True while new work is refused. */
  get refusing(): boolean {
    return this.refusingNow;
  }

  /** The one line a refused caller gets. */
  message(): string {
    const mib = (b: number) => Math.round(b / 1048576);
    return `the engine is at its memory budget (RSS ${mib(this.rssBytes)} MiB of rssMaxMb ${mib(this.budgetBytes)} MiB); try again shortly or on another instance`;
  }

  /** One sample; public for tests (with an injected sampler). */
  check(): void {
    if (this.budgetBytes === 0) return;
    this.rssBytes = this.sample();
    const was = this.refusingNow;
    if (!was && this.rssBytes > this.budgetBytes * REFUSE_AT) this.refusingNow = true;
    else if (was && this.rssBytes < this.budgetBytes * RESUME_AT) this.refusingNow = false;
    if (was !== this.refusingNow) {
      metrics.memoryRefusing.set(this.refusingNow ? 1 : 0);
      // Once per change of state (the hysteresis above keeps it from flapping).
      const fields = { rssMiB: Math.round(this.rssBytes / 1048576), budgetMiB: Math.round(this.budgetBytes / 1048576) };
      if (this.refusingNow) roleLog('memory').warn(fields, `RSS passed ${REFUSE_AT * 100}% of rssMaxMb; refusing new ingest work until it falls below ${RESUME_AT * 100}%`);
      else roleLog('memory').info(fields, `RSS below ${RESUME_AT * 100}% of rssMaxMb; taking ingest work again`);
    }
  }
}
