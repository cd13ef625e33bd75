/**
 * `stratus demo`: the local stack, a real engine, and a simulated device fleet through the whole
 * pipeline (gateway -> Kafka -> processor -> forwarder -> Redis -> the device), then what was
 * measured, in plain sentences, one per stage, on stdout; progress details go to stderr.
 *
 * The figures are taken only once the engine is warm: a fresh engine's first seconds (consumer
 * groups joining, the JIT, the producer's first batches) have latencies a hundred times the steady
 * state's, and would be the headline otherwise. The fleet therefore runs in warm-up rounds until
 * latency has settled (SETTLE below) or the warm-up maximum has passed, and then a fresh fleet of
 * the same size is measured for `measureS` seconds, its connect kept out of the measured window.
 *
 * Reads: Config (the stack's addresses, the prefixes the demo's own are derived from). Writes: the
 * engine's own topics (deleted at the end), its Redis keys (10-minute TTL), the report folder.
 */
import { randomBytes } from 'node:crypto';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { runLoadgen, secondHistogram, type LoadgenRun } from '../../loadgen/loadgen.js';
import { resolveOptions } from '../../loadgen/options.js';
import { writeReport } from '../../loadgen/report.js';
import type { LatencyStats, LoadgenSummary } from '../../loadgen/summary.js';
import type { Config } from '../config.js';
import { stackUp, type ServiceReport } from '../stack/stack.js';
import { startDemoEngine, type DemoEngine } from './engine-child.js';

export interface DemoOptions {
  devices: number;
  /** Mean events per second per device. */
  ratePerDevice: number;
  /** The measured window. */
  measureS: number;
  /** The warm-up ends here even if latency has not settled (then the demo says so). */
  warmupMaxS: number;
  reportDir: string;
}

export const DEMO_DEFAULTS = { devices: 500, ratePerDevice: 5, measureS: 20, warmupMaxS: 30 } as const;

/**
 * Latency has settled when, over `windows` successive seconds: for acks and for results alike the
 * p99s are within `ratioMax` of each other (values under `floorMs` counting as `floorMs`: at a few
 * ms one slow scheduling tick doubles a p99 without meaning anything), and the engine acknowledged
 * and answered as many events as were sent, within `rateTolerance` (a p99 that is steady because
 * a queue grows at a steady pace is not settled; nor is one that falls while a backlog drains).
 */
export const SETTLE = { windows: 3, ratioMax: 2, floorMs: 5, rateTolerance: 0.1 } as const;

/** Seconds of one warm-up round's load; settling is looked for second by second inside it. */
const WARMUP_ROUND_S = 6;
/** Before the measured window: time for the measured fleet's devices to connect. */
const MEASURE_LEAD_S = 3;
/** Above this p99 of the load generator's own lateness, the machine is too busy for the figures to be the engine's. */
const BUSY_SEND_LAG_MS = 50;
/** After the last send, how long at most to wait for acks and results (a settled run ends at once). */
const DRAIN_S = 15;

export interface DemoIo {
  /** One plain sentence per stage. */
  say(line: string): void;
  /** Details: what each warm-up round measured, the stack's start-up lines. */
  progress(line: string): void;
}

type Metric = 'ack' | 'result';
const METRICS: readonly Metric[] = ['ack', 'result'];

/** One run's seconds: the p99 in ms per metric (null: no sample that second), and the counts. */
export interface Seconds {
  ack: (number | null)[];
  result: (number | null)[];
  sent: number[];
  acked: number[];
  results: number[];
}

export function perSecond(run: LoadgenRun): Seconds {
  const out: Seconds = { ack: [], result: [], sent: [], acked: [], results: [] };
  for (const s of run.seconds) {
    for (const m of METRICS) {
      const h = secondHistogram(s, m);
      out[m].push(h === undefined || h.totalCount === 0 ? null : h.getValueAtPercentile(99) / 1000);
    }
    out.sent.push(s.sent);
    out.acked.push(s.acked);
    out.results.push(s.results);
  }
  return out;
}

/** Seconds [from, to) of a run. */
export function sliceSeconds(s: Seconds, from: number, to: number): Seconds {
  return { ack: s.ack.slice(from, to), result: s.result.slice(from, to), sent: s.sent.slice(from, to), acked: s.acked.slice(from, to), results: s.results.slice(from, to) };
}

/** The first index at which the SETTLE.windows seconds ending there are settled, or null. */
export function settledAt(s: Seconds): number | null {
  const sum = (v: number[]) => v.reduce((a, b) => a + b, 0);
  for (let end = SETTLE.windows - 1; end < s.sent.length; end++) {
    const w = sliceSeconds(s, end - SETTLE.windows + 1, end + 1);
    const steady = METRICS.every((m) => {
      if (w[m].some((v) => v === null)) return false;
      const v = w[m] as number[];
      return Math.max(...v) <= SETTLE.ratioMax * Math.max(Math.min(...v), SETTLE.floorMs);
    });
    const sent = sum(w.sent);
    const keptUp = sent > 0 && [sum(w.acked), sum(w.results)].every((n) => Math.abs(n / sent - 1) <= SETTLE.rateTolerance);
    if (steady && keptUp) return end;
  }
  return null;
}

/** Per-second rates inside the measured window, from the run's series. */
export interface WindowRates {
  sent: number;
  acked: number;
  results: number;
}

/**
 * Mean sent, acked and results per second over the measured window's seconds, leaving out any second
 * in which nothing was sent: the load generator's per-second series can show such a second mid-run
 * with its counts in the next one (seen here: a 0 at the last second of the window and the sends of
 * that second credited to the first second after it), which would read as the engine falling behind.
 */
export function windowRates(s: LoadgenSummary): WindowRates {
  const from = Number(s.options.warmupS);
  const idx = s.series.tS.slice(from, from + s.measuredS).filter((i) => s.series.sentPerS[i]! > 0);
  const mean = (v: number[]) => (idx.length === 0 ? 0 : idx.reduce((a, i) => a + v[i]!, 0) / idx.length);
  return { sent: mean(s.series.sentPerS), acked: mean(s.series.ackedPerS), results: mean(s.series.resultsPerS) };
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => (n >= 100 ? int(n) : String(Math.round(n * 10) / 10));
const secs = (n: number) => `${Math.round(n * 10) / 10} s`;

/**
 * The offered-vs-achieved sentence: the one figure a newcomer misreads most. Whether the engine kept
 * up is judged against what was sent in the same seconds (a busy machine can make the load
 * generator itself send less than its schedule offers).
 */
export function throughputSentence(offered: number, r: WindowRates): string {
  const head =
    `Throughput: the fleet offered ${int(offered)} events/s and sent ${int(r.sent)}/s; the engine made ${int(r.acked)} events/s durable in Kafka and acknowledged them, ` +
    `and ${int(r.results)} results/s came back to the devices`;
  if (r.sent === 0) return `${head}.`;
  const low = Math.min(r.acked, r.results) / r.sent;
  const high = Math.max(r.acked, r.results) / r.sent;
  if (low >= 0.95 && high <= 1.05) return `${head}: it kept up with the load (the load generator sends on a schedule, so this is the rate it offered, not the engine's limit; \`npx stratus bench\` measures the limit).`;
  if (high > 1.05) return `${head}: more than was sent, so it was still working off events sent before the window (the warm-up did not absorb all of the backlog).`;
  return `${head}: it fell behind by ${int(r.sent - Math.min(r.acked, r.results))} events/s, so events queued up, and the latencies below include that queue.`;
}

function latencySentence(l: Partial<Record<string, LatencyStats>>): string {
  const part = (what: string, s: LatencyStats | undefined) =>
    s === undefined ? `${what}: no samples` : `${what} p50 ${ms(s.p50Ms)} ms, p99 ${ms(s.p99Ms)} ms, p99.9 ${ms(s.p999Ms)} ms`;
  return `Latency, from each event's scheduled send time: ${part('acknowledged (durable in Kafka)', l.ack)}; ${part('result back at the device', l.result)}.`;
}

function stackSentence(services: ServiceReport[]): string {
  const running = services.filter((s) => s.state === 'running');
  const started = services.filter((s) => s.state === 'started');
  const name = (s: ServiceReport) => `${s.name === 'redis' ? 'Redis' : 'Kafka'} (${s.address})`;
  const parts: string[] = [];
  if (running.length > 0) parts.push(`${running.map(name).join(' and ')} ${running.length === 1 ? 'was' : 'were'} already running`);
  if (started.length > 0) parts.push(`started ${started.map((s) => `${name(s)} in ${secs((s.startMs ?? 0) / 1000)}`).join(' and ')}, as local processes (no Docker)`);
  return `Stack: ${parts.join('; ')}.`;
}

/** A stream that swallows the load generator's live progress: the demo prints its own sentences. */
function silent(): NodeJS.WritableStream {
  return new Writable({ write: (_chunk, _enc, done) => done() });
}

interface FleetRun {
  durationS: number;
  warmupS: number;
  devicePrefix: string;
}

async function fleet(engine: DemoEngine, o: DemoOptions, r: FleetRun): Promise<LoadgenRun> {
  const opts = resolveOptions(
    {
      devices: String(o.devices),
      rate: String(o.ratePerDevice),
      duration: `${r.durationS}s`,
      warmup: `${r.warmupS}s`,
      drain: `${DRAIN_S}s`,
      'device-prefix': r.devicePrefix,
    },
    engine.grpcTarget,
  );
  return runLoadgen(opts, { progress: silent() });
}

interface Check {
  sent: number;
  acked: number;
  results: number;
  missing: number;
  duplicates: number;
  wrong: number;
  unacked: number;
  rejected: number;
  errors: number;
}

function addCheck(c: Check, s: LoadgenSummary): void {
  const total = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
  c.sent += s.counts.sent;
  c.acked += s.counts.acked;
  c.results += s.counts.results;
  c.missing += s.counts.missing;
  c.duplicates += s.counts.duplicates;
  c.wrong += s.counts.wrong;
  c.unacked += s.counts.unacked;
  c.rejected += total(s.counts.rejected);
  c.errors += total(s.counts.errors);
}

function checkSentence(c: Check): string {
  const head = `Check (warm-up and measured runs): ${int(c.sent)} events sent, ${int(c.acked)} acknowledged, ${int(c.results)} results received`;
  if (c.missing + c.duplicates + c.wrong + c.unacked + c.rejected + c.errors === 0 && c.acked === c.sent && c.results === c.acked) {
    return `${head}: every event was acknowledged and got exactly one result with the right value (0 missing, 0 duplicates, 0 wrong).`;
  }
  return `${head}: ${int(c.missing)} acknowledged events got no result, ${int(c.duplicates)} results were duplicates, ${int(c.wrong)} had a wrong value, ${int(c.unacked)} events were never acknowledged nor rejected, ${int(c.rejected)} were rejected, ${int(c.errors)} calls ended in errors.`;
}

/** Runs the demo; resolves to the exit code (0: every stage ran and the check found nothing wrong). */
export async function runDemo(config: Config, o: DemoOptions, io: DemoIo): Promise<number> {
  const up = await stackUp(config, { progress: io.progress });
  io.say(stackSentence(up.services));

  const runId = randomBytes(4).toString('hex');
  let engine: DemoEngine;
  try {
    engine = await startDemoEngine(config, runId);
  } catch (err) {
    io.say(`Engine: \`stratus run\` did not start: ${(err as Error).message}`);
    return 1;
  }
  const onSignal = () => {
    io.progress('demo: stopping the engine');
    void engine.stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let code = 1;
  try {
    io.say(
      `Engine: \`stratus run\` (gateway, processor and forwarder in one process) was up in ${secs(engine.startMs / 1000)}: ` +
        `gRPC on ${engine.grpcTarget}, HTTP (/metrics, /readyz) on ${engine.httpAddress}, Kafka topics ${engine.topics.events} and ${engine.topics.results} of its own.`,
    );
    if (config.tls.cert !== '' || config.auth.tokenSecret !== '') {
      io.say('Note: TLS and device tokens are configured here; the demo\'s own engine runs without them, on 127.0.0.1 only.');
    }
    code = await measureFleet(engine, o, io);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await engine.stop();
  }
  io.say('Engine: stopped, its topics deleted; the stack keeps running (`npx stratus stack status`, `npx stratus stack down`).');
  if (code === 0) {
    io.say('Next, your own load test: `npx stratus run` in one terminal, then `npx stratus loadgen --devices 2000 --rate 1 --duration 30s --report out/` in another, and open out/report.html.');
  }
  return code;
}

async function measureFleet(engine: DemoEngine, o: DemoOptions, io: DemoIo): Promise<number> {
  const offered = o.devices * o.ratePerDevice;
  const check: Check = { sent: 0, acked: 0, results: 0, missing: 0, duplicates: 0, wrong: 0, unacked: 0, rejected: 0, errors: 0 };
  const failed = (stage: string, err: unknown) => {
    io.say(`${stage}: the load generator failed: ${(err as Error).message}`);
    return 1;
  };

  // Warm-up rounds until latency settles.
  let warmS = 0;
  let settled: { afterS: number; p99: Record<Metric, number[]> } | null = null;
  let last: Record<Metric, (number | null)[]> = { ack: [], result: [] };
  for (let round = 1; settled === null && warmS < o.warmupMaxS; round++) {
    let run: LoadgenRun;
    try {
      run = await fleet(engine, o, { durationS: WARMUP_ROUND_S, warmupS: 0, devicePrefix: `demo-w${round}-` });
    } catch (err) {
      return failed('Warm-up', err);
    }
    const s = run.summary;
    addCheck(check, s);
    if (round === 1) {
      const connected = s.fleet.fleetConnectS === null ? `${int(s.fleet.connectedPeak)} of them connected` : `connected in ${secs(s.fleet.fleetConnectS)}`;
      io.say(
        `Fleet: ${int(o.devices)} simulated devices on ${int(s.fleet.connections)} HTTP/2 connections ${connected}; each sends ${o.ratePerDevice} \`sq\` events per second on its own schedule ` +
          `(open loop: an event is due at its time whether or not the engine has answered the previous one), ${int(offered)} events/s in all.`,
      );
      if (s.counts.acked === 0) {
        io.say(`Warm-up: no event was acknowledged in the first ${WARMUP_ROUND_S} s (errors: ${JSON.stringify(s.counts.errors)}, rejects: ${JSON.stringify(s.counts.rejected)}); stopping.`);
        return 1;
      }
    }
    const all = perSecond(run);
    const spaced = (v: (number | null)[]) => v.map((x) => (x === null ? '-' : ms(x))).join(' ');
    io.progress(`demo: warm-up round ${round}, per second: sent ${all.sent.join(' ')}; acked ${all.acked.join(' ')}; results ${all.results.join(' ')}; p99 ack ${spaced(all.ack)} ms, result ${spaced(all.result)} ms`);
    // Only seconds of the load itself (not the drain after it) once the whole fleet is connected.
    const from = s.fleet.fleetConnectS === null ? WARMUP_ROUND_S : Math.ceil(s.fleet.fleetConnectS);
    const seconds = sliceSeconds(all, from, WARMUP_ROUND_S);
    const end = settledAt(seconds);
    if (end !== null) {
      const w = sliceSeconds(seconds, end - SETTLE.windows + 1, end + 1);
      settled = { afterS: Math.round(warmS + from + end + 1), p99: { ack: w.ack as number[], result: w.result as number[] } };
    }
    last = { ack: seconds.ack, result: seconds.result };
    warmS += s.runS;
  }
  const list = (v: (number | null)[]) => v.map((x) => (x === null ? '-' : ms(x))).join(', ');
  if (settled !== null) {
    io.say(
      `Warm-up: latency settled after ${settled.afterS} s: for ${SETTLE.windows} successive seconds the engine acknowledged and answered as many events as were sent, ` +
        `and the p99s stayed within a factor of ${SETTLE.ratioMax} (ack ${list(settled.p99.ack)} ms; result ${list(settled.p99.result)} ms).`,
    );
  } else {
    io.say(
      `Warm-up: latency had not settled after ${secs(warmS)} (p99 of the last seconds: ack ${list(last.ack.slice(-SETTLE.windows))} ms; result ${list(last.result.slice(-SETTLE.windows))} ms); ` +
        'measuring anyway, so the figures below include an engine that was still warming up.',
    );
  }

  // The measured run: a fresh fleet, connected before its window begins.
  io.say(`Measuring: ${o.measureS} s with a fresh fleet of ${int(o.devices)} devices, which gets ${MEASURE_LEAD_S} s to connect before the window begins.`);
  let run: LoadgenRun;
  try {
    run = await fleet(engine, o, { durationS: o.measureS, warmupS: MEASURE_LEAD_S, devicePrefix: 'demo-m-' });
  } catch (err) {
    return failed('Measuring', err);
  }
  const s = run.summary;
  addCheck(check, s);
  if (s.fleet.fleetConnectS === null || s.fleet.fleetConnectS > MEASURE_LEAD_S) {
    io.say(
      s.fleet.fleetConnectS === null
        ? `Measured fleet: only ${int(s.fleet.connectedPeak)} of ${int(o.devices)} devices connected, so the figures below are for those.`
        : `Measured fleet: it took ${s.fleet.fleetConnectS.toFixed(2)} s to connect, longer than the ${MEASURE_LEAD_S} s before the window, so the connect is in the figures below.`,
    );
  }
  io.say(throughputSentence(offered, windowRates(s)));
  io.say(latencySentence(s.latency));
  // A busy machine shows in the figures; say so rather than let them pass for the engine's.
  const lagMs = s.latency.sendLag?.p99Ms ?? 0;
  const [load] = loadavg() as [number];
  const cores = availableParallelism();
  if (lagMs > BUSY_SEND_LAG_MS || load > cores) {
    io.say(
      `Machine: busy while measuring (load average ${load.toFixed(1)} on ${cores} cores; the load generator's own sends left up to ${ms(lagMs)} ms late at p99), ` +
        'so these figures are what this machine gave at this moment, not what the engine does on an idle one.',
    );
  }
  io.say(checkSentence(check));
  const files = writeReport(o.reportDir, run);
  const html = join(o.reportDir, 'report.html');
  io.say(
    `Report: ${html}, one self-contained page (the tables and latency plots of the measured run; it needs no network): open it in a browser, ` +
      `e.g. \`xdg-open ${html}\`. Beside it: ${files.filter((f) => f !== 'report.html').join(', ')}.`,
  );
  return check.missing + check.duplicates + check.wrong + check.unacked === 0 ? 0 : 1;
}
