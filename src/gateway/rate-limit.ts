/**
 * Per-device rate limit: a token bucket per device id, shared by every stream and call of that
 * device on this gateway instance (Connect, Ingest, IngestBatch, ProcessEvent), so opening more
 * streams does not buy a device more rate.
 *
 * A bucket holds up to `burstMax` tokens and refills at `ratePerS`; each event takes one, and an
 * event that finds the bucket empty is rejected (RATE_LIMITED) instead of produced.
 *
 * Bounded: at most `bucketsMax` buckets. A bucket that has refilled to full is the same as no
 * bucket, so when the map is full those are dropped first; if none is full, the least recently
 * created goes (its device then starts again from a full bucket: generous, never stricter).
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; atMs: number }>();
  readonly burstMax: number;
  /** When the map was last swept for full buckets: a sweep is O(buckets), so at most one per refill time. */
  private sweptAtMs = -Infinity;

  constructor(
    readonly ratePerS: number,
    burstMax: number,
    private readonly bucketsMax: number,
    private readonly nowMs: () => number = () => performance.now(),
  ) {
    this.burstMax = burstMax > 0 ? burstMax : Math.max(1, ratePerS);
  }

  /** Takes one token for the device; false when it has none left (the event is over its rate). */
  take(deviceId: string): boolean {
    const now = this.nowMs();
    let b = this.buckets.get(deviceId);
    if (b === undefined) {
      if (this.buckets.size >= this.bucketsMax) this.evict(now);
      b = { tokens: this.burstMax, atMs: now };
      this.buckets.set(deviceId, b);
    } else {
      b.tokens = Math.min(this.burstMax, b.tokens + ((now - b.atMs) * this.ratePerS) / 1000);
      b.atMs = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  get size(): number {
    return this.buckets.size;
  }

  private evict(now: number): void {
    const fullAfterMs = (this.burstMax * 1000) / this.ratePerS;
    if (now - this.sweptAtMs >= fullAfterMs) {
      this.sweptAtMs = now;
      for (const [id, b] of this.buckets) if (now - b.atMs >= fullAfterMs) this.buckets.delete(id);
    }
    if (this.buckets.size >= this.bucketsMax) this.buckets.delete(this.buckets.keys().next().value!);
  }
}
