/**
 * The end-to-end checker's record of one device: for every seq sent and not yet settled, when it
 * was meant to be sent and what has come back for it. A seq is settled once everything the API
 * answers has come (ack and result, or only one of them where the API has no other), or it was
 * rejected; settled seqs at the bottom leave the window, so memory follows what is outstanding,
 * not what was sent. A result can come before the ack that covers it (the engine's delivery
 * report is polled, the result path is not), so a seq with its result waits for its ack here and
 * the ack latency is still measured.
 *
 *   seq:    base                      base+cap-1
 *           |                               |
 *   slots:  [ s | s | s | ... | s | s | s ]   slot of seq = seq & (cap - 1)   (cap a power of 2)
 *
 * A result for a seq below base was already settled, result included: a duplicate.
 */
export const SENT = 1;
export const ACKED = 2;
export const RESULT = 4;
export const REJECTED = 8;

export class SeqWindow {
  /** Invariant: every seq < base is settled; base <= highest sent + 1. */
  base = 1;
  /** Highest seq sent so far (0 before the first). */
  highestSent = 0;
  private cap = 16;
  private intended = new Float64Array(16);
  private flags = new Uint8Array(16);

  /** `settleOn`: the flags that together settle a seq (ACKED, RESULT, or ACKED | RESULT). */
  constructor(private readonly settleOn: number) {}

  private grow(seq: number): void {
    let cap = this.cap;
    while (seq - this.base >= cap) cap *= 2;
    const intended = new Float64Array(cap);
    const flags = new Uint8Array(cap);
    for (let s = this.base; s < this.base + this.cap; s++) {
      intended[s & (cap - 1)] = this.intended[s & (this.cap - 1)]!;
      flags[s & (cap - 1)] = this.flags[s & (this.cap - 1)]!;
    }
    this.cap = cap;
    this.intended = intended;
    this.flags = flags;
  }

  /** Records a send (or a resend, which keeps the first intended time). */
  sent(seq: number, intendedMs: number): void {
    if (seq < this.base) return;
    if (seq - this.base >= this.cap) this.grow(seq);
    const i = seq & (this.cap - 1);
    if ((this.flags[i]! & SENT) === 0) {
      this.flags[i] = SENT;
      this.intended[i] = intendedMs;
    }
    if (seq > this.highestSent) this.highestSent = seq;
  }

  /** Intended send time of a seq in the window that was sent; NaN otherwise. */
  intendedMs(seq: number): number {
    if (seq < this.base || seq - this.base >= this.cap) return NaN;
    const i = seq & (this.cap - 1);
    return (this.flags[i]! & SENT) === 0 ? NaN : this.intended[i]!;
  }

  flagsOf(seq: number): number {
    if (seq < this.base) return SENT | this.settleOn;
    if (seq - this.base >= this.cap) return 0;
    return this.flags[seq & (this.cap - 1)]!;
  }

  /**
   * Marks `flag` on a sent seq; returns the flags it had before (0 when it was never sent), or -1
   * when the seq is below the window (already settled).
   */
  mark(seq: number, flag: number): number {
    if (seq < this.base) return -1;
    if (seq - this.base >= this.cap) return 0;
    const i = seq & (this.cap - 1);
    const before = this.flags[i]!;
    if ((before & SENT) === 0) return 0;
    this.flags[i] = before | flag;
    this.slide();
    return before;
  }

  private slide(): void {
    while (this.base <= this.highestSent) {
      const i = this.base & (this.cap - 1);
      const f = this.flags[i]!;
      if ((f & REJECTED) === 0 && (f & this.settleOn) !== this.settleOn) return;
      this.flags[i] = 0;
      this.base++;
    }
  }

  settled(flags: number): boolean {
    return (flags & REJECTED) !== 0 || (flags & this.settleOn) === this.settleOn;
  }

  /** Every sent seq still in the window with its flags (settled ones behind an unsettled one too). */
  *outstanding(): Generator<[seq: number, flags: number]> {
    for (let s = this.base; s <= this.highestSent; s++) {
      const f = this.flags[s & (this.cap - 1)]!;
      if ((f & SENT) !== 0) yield [s, f];
    }
  }
}
