/**
 * `stratus loadgen`'s main thread: splits the fleet over --workers threads, starts them on one
 * shared t0, merges what they report every second (counts, and interval histograms decoded and
 * added, so K workers give exactly one worker's buckets), shows progress, samples its own RSS and
 * CPU, and at the end builds the LoadgenSummary, checks thresholds and writes the report.
 *
 * It also owns the run's timeline, from the slices' status (every 100 ms while it changes):
 *
 *   t0 ── fleet connecting ── all connected ── --warmup ── window start ── --duration ── end ── drain
 *                                                       (up to the next whole second)
 *         (at most until --warmup-max: then the window starts anyway, and the summary warns
 *          with the figures: connected N of M at window start, connect p99)
 *
 * and stops the run early (fail fast, fail-fast.ts) when no device can reach the target, or when
 * the run overran its bound (--warmup-max + --duration + --drain + RUN_SLACK_MS).
 */
import { cpus, totalmem } from 'node:os';
import { Worker } from 'node:worker_threads';
import type * as hdr from 'hdr-histogram-js';
import { percentileDistribution } from './distribution.js';
import { noConnectMessage, shouldGiveUp } from './fail-fast.js';
import type { FleetControl, FleetStatus, FleetTotals, Tick } from './fleet.js';
import type { LoadgenOptions } from './options.js';
import { Progress } from './progress.js';
import { decode, METRICS, newHistogram, type Metric } from './recorder.js';
import type { LatencyStats, LoadgenSummary, PercentileSeries } from './summary.js';
import { evaluateThresholds } from './thresholds.js';

const WORKER_START_TIMEOUT_MS = 30_000;
/** A window start is sent at least this far ahead, so every worker knows it before it comes. */
const WINDOW_NOTICE_MS = 50;
/** The --warmup-max start is sent this far ahead, so a busy event loop does not make it late. */
const WINDOW_LIMIT_LEAD_MS = 300;
/** After --connect-timeout, this long for the devices' own STALLED timers to report before giving up. */
const CONNECT_GRACE_MS = 500;
/** A run that has not ended this long after its bound is stopped (a safety net: it should never fire). */
const RUN_SLACK_MS = 5_000;
/** After a stop, how long workers get to reconcile before they are terminated. */
const STOP_GRACE_MS = 5_000;

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
  /** Every ack and result of the second, warm-up and drain included (Tick.live): the over-time plots. */
  live: Map<Metric, string[]>;
}

/** One second's histogram of a metric, all workers merged; undefined when nothing was recorded. */
export function secondHistogram(s: SecondStats, metric: Metric, from: 'encoded' | 'live' = 'encoded'): hdr.Histogram | undefined {
  const parts = s[from].get(metric);
  if (parts === undefined) return undefined;
  const h = newHistogram();
  for (const e of parts) h.add(decode(e));
  return h;
}

/**
 * p50/p90/p99/p99.9 of a metric in each second (ms, rounded to the microsecond); null where the
 * second has no sample. Each second's histogram is decoded once, whatever the number of percentiles.
 */
export function percentileSeries(seconds: SecondStats[], metric: Metric, from: 'encoded' | 'live' = 'encoded'): PercentileSeries {
  const out: PercentileSeries = { p50Ms: [], p90Ms: [], p99Ms: [], p999Ms: [] };
  for (const s of seconds) {
    const h = secondHistogram(s, metric, from);
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
  const relNow = () => performance.timeOrigin + performance.now() - t0Ms;
  const seconds: SecondStats[] = [];
  const histograms = new Map<Metric, hdr.Histogram>();
  const cumulative = { sent: 0, acked: 0, results: 0, errors: 0 };
  const connectedNow = new Array<number>(workers).fill(0);
  const live: { ack?: hdr.Histogram; result?: hdr.Histogram } = {};
  const second = (sec: number): SecondStats => {
    while (seconds.length <= sec) seconds.push({ sent: 0, acked: 0, results: 0, errors: 0, connectedBy: new Array<number>(workers).fill(-1), encoded: new Map(), live: new Map() });
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
    for (const m of ['ack', 'result'] as const) {
      const enc = t.live[m];
      if (enc === undefined) continue;
      const parts = s.live.get(m);
      if (parts === undefined) s.live.set(m, [enc]);
      else parts.push(enc);
      (live[m] ??= newHistogram()).add(decode(enc));
    }
  };

  // ---- the timeline: window start, fail fast, the bound ----
  const warmupMaxMs = opts.warmupMaxS * 1000;
  const statuses = new Array<FleetStatus | null>(workers).fill(null);
  let windowStartMs: number | null = null;
  let connectedAtWindowStart: number | null = null;
  let aborted: string | null = null;
  const timers: NodeJS.Timeout[] = [];
  const post = (m: FleetControl) => {
    for (const w of threads) w.postMessage(m);
  };
  const connectedOnceNow = () => statuses.reduce((a, st) => a + (st?.connectedOnce ?? 0), 0);
  const progress = new Progress(io.progress, { devices: opts.devices, durationS: opts.durationS, acks: opts.api !== 'nimbus', results: opts.api !== 'event-stream' && opts.api !== 'metrics' && !opts.ackOnly }, t0Ms);
  const startWindow = (atMs: number, fleetConnected: boolean) => {
    if (windowStartMs !== null || aborted !== null) return;
    const start = Math.max(atMs, relNow() + WINDOW_NOTICE_MS);
    windowStartMs = start;
    post({ type: 'window', startMs: start });
    if (fleetConnected) connectedAtWindowStart = opts.devices;
    else {
      timers.push(
        setTimeout(() => {
          connectedAtWindowStart = connectedOnceNow();
          if (connectedAtWindowStart < opts.devices) {
            progress.note(`WARNING: measuring from ${(start / 1000).toFixed(1)} s with ${connectedAtWindowStart} of ${opts.devices} devices connected (--warmup-max ${opts.warmupMaxS} s reached): early figures include the connect storm`);
          }
        }, Math.max(0, start - relNow())),
      );
    }
  };
  let abortedAtMs = Infinity;
  const stop = (why: string) => {
    if (aborted !== null) return;
    aborted = why;
    abortedAtMs = relNow();
    post({ type: 'stop' });
  };
  const checkStatus = () => {
    if (statuses.some((st) => st === null)) return;
    const all = statuses as FleetStatus[];
    if (aborted === null && shouldGiveUp(all, relNow(), opts.connectTimeoutMs)) stop(noConnectMessage(opts.target, all, opts.connectTimeoutMs));
    if (windowStartMs === null && all.every((st) => st.allConnectedAtMs !== null)) {
      // On a whole second: the window's seconds are the series' seconds, and two runs of one seed
      // whose fleets connect within the same second measure exactly the same events.
      const connectedAt = Math.max(...all.map((st) => st.allConnectedAtMs!));
      startWindow(Math.min(Math.ceil((connectedAt + opts.warmupS * 1000) / 1000) * 1000, warmupMaxMs), true);
    }
  };
  timers.push(setTimeout(() => startWindow(warmupMaxMs, false), Math.max(0, warmupMaxMs - WINDOW_LIMIT_LEAD_MS - relNow())));
  timers.push(setTimeout(checkStatus, Math.max(0, opts.connectTimeoutMs + CONNECT_GRACE_MS - relNow())));
  const boundMs = warmupMaxMs + (opts.durationS + opts.drainS) * 1000 + RUN_SLACK_MS;
  timers.push(
    setTimeout(() => {
      stop(`the run overran its bound of ${(boundMs / 1000).toFixed(1)} s (--warmup-max ${opts.warmupMaxS} s + --duration ${opts.durationS} s + --drain ${opts.drainS} s + ${RUN_SLACK_MS / 1000} s) and was stopped`);
      timers.push(setTimeout(() => void Promise.all(threads.map((w) => w.terminate())), STOP_GRACE_MS));
    }, Math.max(0, boundMs - relNow())),
  );

  const progressTimer = setInterval(() => {
    rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
    // Also re-checked here: the connect timeout can pass while no slice has anything new to say.
    checkStatus();
    progress.update({ connected: connectedNow.reduce((a, b) => a + b, 0), ...cumulative, lastAck: live.ack, lastResult: live.result, windowStartMs });
    delete live.ack;
    delete live.result;
  }, 1000);
  const totals = await Promise.all(
    threads.map(
      (w, k) =>
        new Promise<FleetTotals>((resolve, reject) => {
          w.on('message', (m: Tick | FleetStatus | { type: 'done'; totals: FleetTotals }) => {
            if (m.type === 'tick') onTick(k, m);
            else if (m.type === 'status') {
              statuses[k] = m;
              checkStatus();
            } else resolve(m.totals);
          });
          w.once('error', reject);
          w.once('exit', (code) => reject(new Error(`load-generator worker ${k} exited (${code}) before it reported: ${aborted ?? 'no reason known'}`)));
          w.postMessage({ type: 'start', t0Ms });
        }),
    ),
  ).finally(() => {
    clearInterval(progressTimer);
    for (const t of timers) clearTimeout(t);
  });
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
  const ackLatency = percentileSeries(seconds, 'ack', 'live');
  const resultLatency = percentileSeries(seconds, 'result', 'live');
  const measuredP99 = percentileSeries(seconds, histograms.has('ack') ? 'ack' : 'result').p99Ms;
  // The window as it was: it may have been cut short by a stop, or never started.
  const windowFromMs: number | null = windowStartMs;
  const window =
    windowFromMs === null || abortedAtMs <= windowFromMs
      ? { startS: 0, endS: 0 }
      : { startS: round(windowFromMs / 1000), endS: round(Math.min(windowFromMs + opts.durationS * 1000, abortedAtMs) / 1000) };
  const measuredS = round(window.endS - window.startS);
  const perS = (n: number) => (measuredS > 0 ? round(n / measuredS, 1) : 0);
  const warnings: string[] = [];
  if (aborted !== null) warnings.push(`the run was stopped early: ${aborted}`);
  if (connectedAtWindowStart !== null && connectedAtWindowStart < opts.devices && window.endS > 0) {
    const connect = latency.connect;
    warnings.push(
      `measuring started at ${window.startS.toFixed(1)} s with ${connectedAtWindowStart} of ${opts.devices} devices connected (--warmup-max ${opts.warmupMaxS} s); ` +
        `${allConnected === null ? 'the fleet never finished connecting' : `the fleet finished connecting at ${(allConnected / 1000).toFixed(1)} s`}` +
        `${connect === undefined ? '' : `, connect p99 ${Math.round(connect.p99Ms)} ms`}: the measured latencies include the connect storm (raise --warmup-max, or lower --devices or --ramp)`,
    );
  }
  const summary: LoadgenSummary = {
    version: 1,
    startedAt: startedAt.toISOString(),
    target: opts.target,
    api: opts.api,
    profile: opts.profile,
    loop: opts.closedLoop ? 'closed' : 'open',
    options: {
      devices: opts.devices, connections: opts.connections, ramp: opts.rampPerS, ratePerDevice: opts.ratePerDevice, totalRate: round(opts.ratePerDevice * opts.devices),
      batch: opts.batch, payloadBytes: opts.payloadBytes, durationS: opts.durationS, warmupS: opts.warmupS, warmupMaxS: opts.warmupMaxS, drainS: opts.drainS, workers, seed: opts.seed,
      slowReaders: opts.slowReaders, type: opts.type, queue: opts.queue, devicePrefix: opts.devicePrefix, tls: opts.tls, auth: opts.tokenSecret !== null,
      thresholds: opts.thresholds.map((t) => t.expr),
    },
    environment: { node: process.version, platform: `${process.platform} ${process.arch}`, cpuModel: cpus()[0]?.model ?? 'unknown', cpus: cpus().length, memoryBytes: totalmem() },
    runS: round(runS, 2),
    measuredS,
    window,
    warnings,
    aborted,
    fleet: {
      devices: opts.devices, connections: opts.connections, workers,
      connectedPeak: Math.max(0, ...connectedSeries),
      fleetConnectS: allConnected === null ? null : round(allConnected / 1000),
      slowReaders: sum('slowReaders'),
      connectedAtWindowStart,
    },
    counts: {
      sent: sum('sent'), acked: sum('acked'), results: sum('results'), rejected: merge('rejected'), errors: merge('errors'),
      missing: sum('missing'), duplicates: sum('duplicates'), wrong: sum('wrong'), unacked: sum('unacked'), heldUnsent: sum('heldUnsent'), reconnects: sum('reconnects'),
    },
    throughput: {
      sentPerS: perS(sum('sentMeasured')),
      ackedPerS: perS(sum('ackedMeasured')),
      resultsPerS: perS(sum('resultsMeasured')),
    },
    latency,
    series: {
      tS: seconds.map((_, i) => i),
      connected: connectedSeries,
      sentPerS: seconds.map((s) => s.sent),
      ackedPerS: seconds.map((s) => s.acked),
      resultsPerS: seconds.map((s) => s.results),
      errorsPerS: seconds.map((s) => s.errors),
      latencyP99Ms: measuredP99.map((v) => v ?? 0),
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
