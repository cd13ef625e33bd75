/**
 * `stratus loadgen`'s main thread: splits the fleet over --workers threads, starts them on one
 * shared t0, merges what they report every second (counts, and interval histograms decoded and
 * added, so K workers give exactly one worker's buckets), shows progress, samples its own RSS and
 * CPU, and at the end builds the LoadgenSummary, checks thresholds and writes the report.
 */
import { cpus, totalmem } from 'node:os';
import { Worker } from 'node:worker_threads';
import type * as hdr from 'hdr-histogram-js';
import { percentileDistribution } from './distribution.js';
import type { FleetTotals, Tick } from './fleet.js';
import type { LoadgenOptions } from './options.js';
import { Progress } from './progress.js';
import { decode, METRICS, newHistogram, type Metric } from './recorder.js';
import type { LatencyStats, LoadgenSummary, PercentileSeries } from './summary.js';
import { evaluateThresholds } from './thresholds.js';

const WORKER_START_TIMEOUT_MS = 30_000;

export interface SecondStats {
  sent: number;
  acked: number;
  results: number;
  errors: number;
  /** Connected devices at the end of the second, per worker (the last report of each wins). */
  connectedBy: number[];
  /**
   * The second's interval histograms as the workers sent them (encoded, a few KB at most): a
   * decoded histogram per metric per second would cost ~180 KB each, gigabytes over an hour.
   * secondHistogram() merges them when they are needed.
   */
  encoded: Map<Metric, string[]>;
}

/** One second's histogram of a metric, all workers merged; undefined when nothing was recorded. */
export function secondHistogram(s: SecondStats, metric: Metric): hdr.Histogram | undefined {
  const parts = s.encoded.get(metric);
  if (parts === undefined) return undefined;
  const h = newHistogram();
  for (const e of parts) h.add(decode(e));
  return h;
}

/**
 * p50/p90/p99/p99.9 of a metric in each second (ms, rounded to the microsecond); null where the
 * second has no sample. Each second's histogram is decoded once, whatever the number of percentiles.
 */
export function percentileSeries(seconds: SecondStats[], metric: Metric): PercentileSeries {
  const out: PercentileSeries = { p50Ms: [], p90Ms: [], p99Ms: [], p999Ms: [] };
  for (const s of seconds) {
    const h = secondHistogram(s, metric);
    const at = (p: number) => (h === undefined || h.totalCount === 0 ? null : round(h.getValueAtPercentile(p) / 1000));
    out.p50Ms.push(at(50));
    out.p90Ms.push(at(90));
    out.p99Ms.push(at(99));
    out.p999Ms.push(at(99.9));
  }
  return out;
}

export interface LoadgenRun {
  summary: LoadgenSummary;
  /** Whole measured window, per metric (the .hgrm files). */
  histograms: Map<Metric, hdr.Histogram>;
  /** Per second of the run (the interval log). */
  seconds: SecondStats[];
  t0Ms: number;
}

export interface LoadgenIo {
  progress: NodeJS.WritableStream & { isTTY?: boolean };
}

const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits;

export function latencyStats(h: hdr.Histogram): LatencyStats {
  const ms = (us: number) => round(us / 1000);
  return {
    count: h.totalCount,
    minMs: ms(h.totalCount === 0 ? 0 : h.minNonZeroValue),
    meanMs: ms(h.mean),
    p50Ms: ms(h.getValueAtPercentile(50)),
    p90Ms: ms(h.getValueAtPercentile(90)),
    p99Ms: ms(h.getValueAtPercentile(99)),
    p999Ms: ms(h.getValueAtPercentile(99.9)),
    p9999Ms: ms(h.getValueAtPercentile(99.99)),
    // p100, not maxValue: identical whether or not the histogram crossed a thread encoded.
    maxMs: ms(h.getValueAtPercentile(100)),
    distribution: percentileDistribution(h),
  };
}

function sliceOf(devices: number, workers: number, k: number): { from: number; to: number } {
  return { from: Math.floor((devices * k) / workers), to: Math.floor((devices * (k + 1)) / workers) };
}

export async function runLoadgen(opts: LoadgenOptions, io: LoadgenIo): Promise<LoadgenRun> {
  const workers = Math.min(opts.workers, opts.devices);
  const rssBaseline = process.memoryUsage.rss();
  let rssPeak = rssBaseline;
  const cpu0 = process.cpuUsage();
  const startedAt = new Date();
  const threads: Worker[] = [];
  for (let k = 0; k < workers; k++) {
    threads.push(new Worker(new URL('./fleet-worker.js', import.meta.url), { workerData: { options: opts, slice: sliceOf(opts.devices, workers, k) } }));
  }
  // Every worker loaded before t0, so none starts late.
  await Promise.all(
    threads.map(
      (w, k) =>
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`load-generator worker ${k} did not start within ${WORKER_START_TIMEOUT_MS} ms`)), WORKER_START_TIMEOUT_MS);
          w.once('error', reject);
          w.once('message', () => {
            clearTimeout(timer);
            resolve();
          });
        }),
    ),
  );
  const t0Ms = performance.timeOrigin + performance.now() + 100;
  const seconds: SecondStats[] = [];
  const histograms = new Map<Metric, hdr.Histogram>();
  const cumulative = { sent: 0, acked: 0, results: 0, errors: 0 };
  const connectedNow = new Array<number>(workers).fill(0);
  const second = (sec: number): SecondStats => {
    while (seconds.length <= sec) seconds.push({ sent: 0, acked: 0, results: 0, errors: 0, connectedBy: new Array<number>(workers).fill(-1), encoded: new Map() });
    return seconds[sec]!;
  };
  const onTick = (k: number, t: Tick) => {
    const s = second(t.sec);
    s.sent += t.sent;
    s.acked += t.acked;
    s.results += t.results;
    s.errors += t.errors;
    s.connectedBy[k] = t.connected;
    connectedNow[k] = t.connected;
    cumulative.sent += t.sent;
    cumulative.acked += t.acked;
    cumulative.results += t.results;
    cumulative.errors += t.errors;
    for (const [m, enc] of Object.entries(t.hist) as [Metric, string][]) {
      const h = decode(enc);
      const parts = s.encoded.get(m);
      if (parts === undefined) s.encoded.set(m, [enc]);
      else parts.push(enc);
      let th = histograms.get(m);
      if (th === undefined) histograms.set(m, (th = newHistogram()));
      th.add(h);
    }
  };
  const progress = new Progress(io.progress, opts, t0Ms);
  const progressTimer = setInterval(() => {
    rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
    progress.update({ connected: connectedNow.reduce((a, b) => a + b, 0), ...cumulative, histograms });
  }, 1000);
  const totals = await Promise.all(
    threads.map(
      (w, k) =>
        new Promise<FleetTotals>((resolve, reject) => {
          w.on('message', (m: Tick | { type: 'done'; totals: FleetTotals }) => {
            if (m.type === 'tick') onTick(k, m);
            else resolve(m.totals);
          });
          w.once('error', reject);
          w.postMessage({ type: 'start', t0Ms });
        }),
    ),
  );
  clearInterval(progressTimer);
  rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
  await Promise.all(threads.map((w) => w.terminate()));
  const cpu = process.cpuUsage(cpu0);
  const runS = (performance.timeOrigin + performance.now() - t0Ms) / 1000;
  progress.finish();

  const sum = <K extends keyof FleetTotals>(key: K) => totals.reduce((a, t) => a + (t[key] as number), 0);
  const merge = (key: 'rejected' | 'errors') => {
    const out: Record<string, number> = {};
    for (const t of totals) for (const [k, v] of Object.entries(t[key])) out[k] = (out[k] ?? 0) + v;
    return out;
  };
  const allConnected = totals.every((t) => t.allConnectedAtMs !== null) ? Math.max(...totals.map((t) => t.allConnectedAtMs!)) : null;
  const latency: Record<string, LatencyStats> = {};
  for (const m of METRICS) {
    const h = histograms.get(m);
    if (h !== undefined && h.totalCount > 0) latency[m] = latencyStats(h);
  }
  const connectedSeries = seconds.map((_, i) => {
    // A worker that sent nothing for this second keeps its previous count.
    let n = 0;
    for (let k = 0; k < workers; k++) {
      let j = i;
      while (j >= 0 && seconds[j]!.connectedBy[k] === -1) j--;
      n += j < 0 ? 0 : seconds[j]!.connectedBy[k]!;
    }
    return n;
  });
  const ackLatency = percentileSeries(seconds, 'ack');
  const resultLatency = percentileSeries(seconds, 'result');
  const measuredS = opts.durationS;
  const summary: LoadgenSummary = {
    version: 1,
    startedAt: startedAt.toISOString(),
    target: opts.target,
    api: opts.api,
    profile: opts.profile,
    loop: opts.closedLoop ? 'closed' : 'open',
    options: {
      devices: opts.devices, connections: opts.connections, ramp: opts.rampPerS, ratePerDevice: opts.ratePerDevice, totalRate: round(opts.ratePerDevice * opts.devices),
      batch: opts.batch, payloadBytes: opts.payloadBytes, durationS: opts.durationS, warmupS: opts.warmupS, drainS: opts.drainS, workers, seed: opts.seed,
      slowReaders: opts.slowReaders, type: opts.type, queue: opts.queue, devicePrefix: opts.devicePrefix, tls: opts.tls, auth: opts.tokenSecret !== null,
      thresholds: opts.thresholds.map((t) => t.expr),
    },
    environment: { node: process.version, platform: `${process.platform} ${process.arch}`, cpuModel: cpus()[0]?.model ?? 'unknown', cpus: cpus().length, memoryBytes: totalmem() },
    runS: round(runS, 2),
    measuredS,
    window: { startS: opts.warmupS, endS: opts.warmupS + measuredS },
    fleet: {
      devices: opts.devices, connections: opts.connections, workers,
      connectedPeak: Math.max(0, ...connectedSeries),
      fleetConnectS: allConnected === null ? null : round(allConnected / 1000),
      slowReaders: sum('slowReaders'),
    },
    counts: {
      sent: sum('sent'), acked: sum('acked'), results: sum('results'), rejected: merge('rejected'), errors: merge('errors'),
      missing: sum('missing'), duplicates: sum('duplicates'), wrong: sum('wrong'), unacked: sum('unacked'), heldUnsent: sum('heldUnsent'), reconnects: sum('reconnects'),
    },
    throughput: {
      sentPerS: round(sum('sentMeasured') / measuredS, 1),
      ackedPerS: round(sum('ackedMeasured') / measuredS, 1),
      resultsPerS: round(sum('resultsMeasured') / measuredS, 1),
    },
    latency,
    series: {
      tS: seconds.map((_, i) => i),
      connected: connectedSeries,
      sentPerS: seconds.map((s) => s.sent),
      ackedPerS: seconds.map((s) => s.acked),
      resultsPerS: seconds.map((s) => s.results),
      errorsPerS: seconds.map((s) => s.errors),
      latencyP99Ms: (histograms.has('ack') ? ackLatency : resultLatency).p99Ms.map((v) => v ?? 0),
      ackLatency,
      resultLatency,
    },
    footprint: {
      rssBytesBaseline: rssBaseline,
      rssBytesPeak: rssPeak,
      rssBytesPerDevice: Math.round((rssPeak - rssBaseline) / opts.devices),
      cpuUserS: round(cpu.user / 1e6, 2),
      cpuSystemS: round(cpu.system / 1e6, 2),
      cpuShare: round((cpu.user + cpu.system) / 1e6 / runS, 2),
    },
    thresholds: [],
  };
  summary.thresholds = evaluateThresholds(opts.thresholds, summary);
  return { summary, histograms, seconds, t0Ms };
}
