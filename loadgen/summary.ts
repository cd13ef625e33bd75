/**
 * The shape of a load-generator run's result: what `--json` prints, what `--report DIR` writes as
 * summary.json, and what report.html and the text summary are drawn from. One type, so the three
 * never disagree. Times are milliseconds unless a name says otherwise; counts are exact.
 */

/** Latency of one metric over the measured window, from an HdrHistogram (microsecond resolution). */
export interface LatencyStats {
  count: number;
  minMs: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  p9999Ms: number;
  maxMs: number;
  /**
   * The percentile distribution (as in a .hgrm file): [percentile 0..100, valueMs] pairs, ascending,
   * ending at 100. Drawn as the latency-by-percentile plot.
   */
  distribution: [number, number][];
}

/** One value per second of the run (index i covers [i, i+1) s after the first device started). */
export interface Series {
  tS: number[];
  connected: number[];
  sentPerS: number[];
  ackedPerS: number[];
  resultsPerS: number[];
  errorsPerS: number[];
  /** p99 of ack latency (or of result latency where the API has no acks) in that second; 0 if none. */
  latencyP99Ms: number[];
  /** Ack latency percentiles of each second (events acked in that second). */
  ackLatency: PercentileSeries;
  /** Result latency percentiles of each second (results received in that second). */
  resultLatency: PercentileSeries;
}

/**
 * Latency percentiles per second, from that second's HdrHistogram. A second with no sample holds
 * null, not 0: 0 ms would read as a real (impossibly fast) latency to a tool that averages or
 * plots the array, null reads as "nothing measured" (JSON has no NaN). Seconds in which the fleet
 * recorded no sample of the metric (nothing acked yet; the warm-up, if only measured events are
 * recorded) hold null.
 */
export interface PercentileSeries {
  p50Ms: (number | null)[];
  p90Ms: (number | null)[];
  p99Ms: (number | null)[];
  p999Ms: (number | null)[];
}

export interface Threshold {
  expr: string;
  /** The measured value in the expression's unit (ms for latencies, % for rates, count, per s). */
  actual: number;
  ok: boolean;
}

export interface LoadgenSummary {
  version: 1;
  startedAt: string;
  target: string;
  api: 'stratus' | 'nimbus' | 'event-stream' | 'metrics';
  profile: 'iot' | 'mobile' | 'burst';
  /** Open loop (the default): latency from each event's intended send time. Closed: from the real send. */
  loop: 'open' | 'closed';
  options: Record<string, string | number | boolean | string[] | null>;
  environment: { node: string; platform: string; cpuModel: string; cpus: number; memoryBytes: number };
  /** Wall-clock seconds: the whole run, and the measured window (after --warmup). */
  runS: number;
  measuredS: number;
  /**
   * The measured window, seconds since the run's t0: it starts once the whole fleet has connected
   * plus --warmup (at the latest at --warmup-max), and lasts --duration. Latency samples are those
   * of events intended inside it. Both 0 when the run stopped before it started (aborted).
   */
  window: { startS: number; endS: number };
  /**
   * What makes the figures less than they seem, one sentence each, with the figures: the fleet not
   * connected when the window started, the run aborted. Empty when nothing is wrong. (Optional,
   * like every field added since version 1: an older summary.json, read as a --baseline, lacks it.)
   */
  warnings?: string[];
  /** Why the run stopped early (no device could connect, or it overran its bound), with the hint; null if it ran to its end. */
  aborted?: string | null;
  fleet: {
    devices: number; connections: number; workers: number; connectedPeak: number; fleetConnectS: number | null; slowReaders: number;
    /** Devices that had connected (at least once) when the measured window started; null if it never started. */
    connectedAtWindowStart?: number | null;
  };
  counts: {
    sent: number;
    acked: number;
    results: number;
    /** Events the server refused, by Reject code. */
    rejected: Record<string, number>;
    /** Failed calls and connections, by kind (gRPC status name, or REFUSED / RESET / STALLED / TIMEOUT). */
    errors: Record<string, number>;
    /** Acked events with no result at the end of the drain. */
    missing: number;
    /** Results received more than once. */
    duplicates: number;
    /** Results whose value is not what the processor must produce (sq: value squared). */
    wrong: number;
    /** Sent, never acked nor rejected. */
    unacked: number;
    /** Came due while the device could not send (connecting, backing off) and never reached the wire. */
    heldUnsent: number;
    reconnects: number;
  };
  throughput: { sentPerS: number; ackedPerS: number; resultsPerS: number };
  /** Keyed by metric: connect, ack, result, reconnect, sendLag; slow readers as ackSlow, resultSlow. */
  latency: Record<string, LatencyStats>;
  series: Series;
  footprint: { rssBytesBaseline: number; rssBytesPeak: number; rssBytesPerDevice: number; cpuUserS: number; cpuSystemS: number; cpuShare: number };
  thresholds: Threshold[];
}
