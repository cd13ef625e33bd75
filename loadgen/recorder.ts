/**
 * Latency histograms (hdr-histogram-js), one per metric, in microseconds from 1 us to 1 hour at 3
 * significant digits. Worker threads record into interval histograms and ship them every second
 * encoded (HdrHistogram's compressed base64 format); the main thread decodes and adds them, so a
 * run split over K workers gives exactly the counts and buckets one worker would have.
 */
import * as hdr from 'hdr-histogram-js';

export const METRICS = ['connect', 'ack', 'result', 'reconnect', 'sendLag', 'ackSlow', 'resultSlow'] as const;
export type Metric = (typeof METRICS)[number];

export const METRIC_DOCS: Record<Metric, string> = {
  connect: 'stream opened -> response headers (first connect of each device)',
  ack: 'intended send -> durable ack',
  result: 'intended send -> result at the device',
  reconnect: 'reconnect attempt -> response headers',
  sendLag: 'intended send -> actual send (the load generator\'s own delay)',
  ackSlow: 'ack, slow-reader devices only',
  resultSlow: 'result, slow-reader devices only',
};

const HIGHEST_US = 3_600_000_000;

export function newHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: HIGHEST_US, numberOfSignificantValueDigits: 3, bitBucketSize: 32, useWebAssembly: false });
}

export function recordMs(h: hdr.Histogram, ms: number): void {
  const us = Math.round(ms * 1000);
  h.recordValue(us < 1 ? 1 : us > HIGHEST_US ? HIGHEST_US : us);
}

export type EncodedSet = Partial<Record<Metric, string>>;

/** One interval histogram per metric, created on first use. */
export class IntervalRecorder {
  private hists = new Map<Metric, hdr.Histogram>();

  record(metric: Metric, ms: number): void {
    let h = this.hists.get(metric);
    if (h === undefined) {
      h = newHistogram();
      this.hists.set(metric, h);
    }
    recordMs(h, ms);
  }

  /** Encodes every non-empty histogram and resets it. */
  drain(): EncodedSet {
    const out: EncodedSet = {};
    for (const [m, h] of this.hists) {
      if (h.totalCount === 0) continue;
      out[m] = hdr.encodeIntoCompressedBase64(h);
      h.reset();
    }
    return out;
  }
}

export function decode(encoded: string): hdr.Histogram {
  return hdr.decodeFromCompressedBase64(encoded, 32, false);
}
