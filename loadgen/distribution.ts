/**
 * The latency-by-percentile distribution of a histogram, as the [percentile, ms] pairs that
 * LatencyStats.distribution holds and report.html plots. Read from HdrHistogram's own
 * outputPercentileDistribution (the text of a .hgrm file) rather than recomputed, so the plot and
 * the <metric>.hgrm written next to it have exactly the same rows: HdrHistogram's percentile
 * iteration, 5 ticks per half-distance to 100%, ending with the 100% row.
 */
import assert from 'node:assert/strict';
import type * as hdr from 'hdr-histogram-js';

/** Percentile steps per half-distance to 100% (0, 10, ..., 50, 55, ... 75, 77.5, ...), as in a .hgrm. */
const TICKS_PER_HALF_DISTANCE = 5;

/**
 * [percentile 0..100, valueMs] pairs, ascending, ending at 100; [] for an empty histogram.
 * `h` records microseconds; values come back in ms, exact to the microsecond.
 */
export function percentileDistribution(h: hdr.Histogram): [number, number][] {
  if (h.totalCount === 0) return [];
  // Scaling ratio 1: the text carries the integer microsecond values themselves, so no decimal
  // place is lost to the histogram's significant-digit formatting; ms are derived here.
  const text = h.outputPercentileDistribution(TICKS_PER_HALF_DISTANCE, 1);
  const out: [number, number][] = [];
  for (const line of text.split('\n')) {
    // Rows are "value percentileFraction totalCount 1/(1-percentile)", the 100% row without the
    // last column; the header and the "#[Mean ...]" footer do not start with a number.
    const fields = line.trim().split(/\s+/);
    if (fields.length < 3 || !/^\d/.test(fields[0]!)) continue;
    const us = Number(fields[0]);
    const fraction = Number(fields[1]);
    assert.ok(Number.isFinite(us) && Number.isFinite(fraction), `unreadable .hgrm row: ${line}`);
    out.push([Math.round(fraction * 1e12) / 1e10, Math.round(us) / 1000]);
  }
  assert.ok(out.length > 0 && out[out.length - 1]![0] === 100, 'the .hgrm text has no 100% row');
  return out;
}
