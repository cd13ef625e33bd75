/**
 * When each message still waiting for its delivery report was produced, oldest first, as a ring
 * that grows when it must:
 *
 *   times: [ . . . h h+1 . . . h+count-1 . . ]   h = head, the oldest entry
 *
 * A report removes the oldest entry, whichever message it is for: reports of different partitions
 * interleave, so oldestWaitMs() is the age of the count-th newest produce, which is at most the true
 * wait of the oldest unreported message (an under-estimate: load is never shed too early).
 */
export class WaitClock {
  private times: Float64Array;
  private head = 0;
  count = 0;

  constructor(capacity: number) {
    this.times = new Float64Array(Math.max(1, capacity));
  }

  produced(nowMs: number): void {
    if (this.count === this.times.length) this.grow();
    this.times[(this.head + this.count) % this.times.length] = nowMs;
    this.count++;
  }

  reported(): void {
    if (this.count === 0) return;
    this.head = (this.head + 1) % this.times.length;
    this.count--;
  }

  /** How long the oldest waiting message has waited; 0 when none waits. */
  oldestWaitMs(nowMs: number): number {
    return this.count === 0 ? 0 : nowMs - this.times[this.head]!;
  }

  private grow(): void {
    const next = new Float64Array(this.times.length * 2);
    for (let i = 0; i < this.count; i++) next[i] = this.times[(this.head + i) % this.times.length]!;
    this.times = next;
    this.head = 0;
  }
}
