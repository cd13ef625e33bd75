/**
 * The sustainable-rate search the engine-level scenarios share: the highest offered rate at which a
 * probe (one load-generator run, measured only after its whole fleet connected plus its warm-up)
 * holds its bound. Doubles up from the start rate until a probe fails (or halves down until one
 * holds), then bisects between the highest rate that held and the lowest that failed until that
 * bracket is within `tolerance` of the lower end, or `probesMax` probes ran. A rate fails only when
 * a second probe at it fails too: on a shared machine one probe can catch a stall that is not the
 * rate's (a full run's search once stopped at 3,750/s on a single 262 ms p99 where the run before
 * held 9,500/s). Both probes are listed.
 */
export interface Probe {
  ratePerS: number;
  ok: boolean;
  /** Why it failed (empty when it held). */
  why: string;
  figures: Record<string, number>;
}

export interface Search {
  /** The highest rate that held; 0 when none did. */
  found: number;
  /** The lowest rate that failed above it; null when none did (the search never reached a failure). */
  failedAt: number | null;
  /** (failedAt - found) / found: how tight the bracket ended. */
  bracket: number | null;
  probes: Probe[];
}

export async function searchRate(
  start: number,
  probe: (ratePerS: number) => Promise<Probe>,
  opts: { tolerance?: number; probesMax?: number; step?: number; log?: (line: string) => void } = {},
): Promise<Search> {
  const tolerance = opts.tolerance ?? 0.1;
  const probesMax = opts.probesMax ?? 10;
  const step = opts.step ?? 10;
  const round = (r: number) => Math.max(step, Math.round(r / step) * step);
  const probes: Probe[] = [];
  let good = 0;
  let bad = Infinity;
  let rate = round(start);
  while (probes.length < probesMax) {
    let p = await probe(rate);
    probes.push(p);
    opts.log?.(`  probe ${rate}/s: ${p.ok ? 'holds' : `fails (${p.why})`}`);
    if (!p.ok) {
      p = await probe(rate);
      probes.push(p);
      opts.log?.(`  probe ${rate}/s again: ${p.ok ? 'holds' : `fails (${p.why})`}`);
    }
    if (p.ok) good = Math.max(good, rate);
    else bad = Math.min(bad, rate);
    if (good > 0 && bad !== Infinity && bad - good <= good * tolerance) break;
    if (bad === Infinity) rate = round(rate * 2);
    else if (good === 0) rate = round(rate / 2);
    else rate = round((good + bad) / 2);
    // Rounding can land on a rate already probed: the bracket is as tight as the step allows.
    if (probes.some((x) => x.ratePerS === rate)) break;
    // A retried failure counts two probes; the cap still holds.
  }
  return { found: good, failedAt: bad === Infinity ? null : bad, bracket: good > 0 && bad !== Infinity ? Math.round(((bad - good) / good) * 1000) / 1000 : null, probes };
}
