/**
 * Scenario 2: the whole round trip (device -> durable ack -> processor -> result at the device).
 *
 * (a) The sustainable rate (bench/search.ts): 1,000 devices, open loop, one event per uplink, the
 * highest rate at which result p99 stays under 200 ms with every result right and the window's
 * results keeping up with its sends: Stratus (one `stratus run`, all roles, CPU-profiled) against
 * the same search on a bare grpc-js server that answers each event's result at once
 * (baselines/grpc-ceiling --results), the same load generator. Then a run at Stratus's sustainable
 * rate measures the CPU per round-tripped event of the engine, the Kafka broker and Redis.
 *
 * (b) Against the same flow done the naive way (bench/baselines/naive-pipeline: every produce, GET
 * and PUBLISH awaited one at a time). Same load-generator fleet against each: (1) offered more
 * than either sustains, results/s inside the window; (2) both at 50% of the naive pipeline's
 * sustained rate, where both keep up, for the latency percentiles. Targets: >= 10x the naive
 * pipeline's sustained results/s, and a lower result p99.
 */
import { randomUUID } from 'node:crypto';
import type { LoadgenSummary } from '../../loadgen/summary.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stackPaths } from '../../src/stack/paths.js';
import { describeProfile, readProfileDir, type ProfileSummary } from '../cpu-profile.js';
import { dist, startService } from '../child.js';
import { kafkaPid, loadFigures, loadgen, perSInWindow, startEngine, withCpu, type Fleet } from '../engine.js';
import { searchRate, type Probe, type Search } from '../search.js';
import { ratio, type BenchContext, type Scenario, type Side } from '../scenario.js';

type Target = { target: string; stop(): Promise<void> };

/**
 * The naive pipeline in a process of its own. Full runs wait until its consumers own partitions;
 * --quick does not (a loaded CI machine once took over 90 s to join them): its consumers then join
 * during the warm-up and read the fresh topics from the beginning.
 */
async function naive(ctx: BenchContext): Promise<Target> {
  const svc = await startService(process.execPath, [dist('bench', 'baselines', 'naive-pipeline.js'), '--prefix', `naive.${randomUUID().slice(0, 8)}.`, '--brokers', ctx.config.kafka.brokers.join(','), '--redis-port', String(ctx.config.redis.port), '--ready', ctx.quick ? 'listening' : 'joined'], /listening on (\S+)/, { timeoutMs: 120_000 });
  return { target: svc.match[1]!, stop: () => svc.stop() };
}

async function stratus(): Promise<Target> {
  const e = await startEngine();
  return { target: e.target, stop: () => e.stop() };
}

/** One load-generator run against a fresh instance (no backlog left from an earlier run). */
async function once(ctx: BenchContext, start: () => Promise<Target>, fleet: Fleet): Promise<LoadgenSummary> {
  const t = await start();
  try {
    return await loadgen(ctx, t.target, fleet);
  } finally {
    await t.stop();
  }
}

function side(name: string, m: { steady?: LoadgenSummary; sustained: number; commonRate?: number }): Side {
  if (m.steady === undefined) return { name, figures: { sustainedResultsPerS: m.sustained } };
  const f = loadFigures(m.steady);
  return {
    name,
    figures: {
      sustainedResultsPerS: m.sustained,
      commonRatePerS: m.commonRate!,
      ackP50Ms: f.ackP50Ms ?? NaN,
      ackP99Ms: f.ackP99Ms ?? NaN,
      resultP50Ms: f.resultP50Ms ?? NaN,
      resultP99Ms: f.resultP99Ms ?? NaN,
      resultMaxMs: m.steady.latency.result?.maxMs ?? NaN,
      missing: f.missing!,
      duplicates: f.duplicates!,
      wrong: f.wrong!,
      sendLagP99Ms: f.sendLagP99Ms ?? NaN,
    },
  };
}

const RESULT_BOUND_MS = 200;

/** A probe of the round-trip search: result p99 under the bound, every result right, keeping up. */
function judgeRoundTrip(s: LoadgenSummary, rate: number): Probe {
  const c = s.counts;
  const p99 = s.latency.result?.p99Ms ?? null;
  const why: string[] = [];
  if (p99 === null || p99 >= RESULT_BOUND_MS) why.push(`result p99 ${p99 ?? 'none'} ms`);
  if (c.missing + c.duplicates + c.wrong > 0) why.push(`missing ${c.missing}, duplicates ${c.duplicates}, wrong ${c.wrong}`);
  if (Object.keys(c.errors).length > 0 || Object.keys(c.rejected).length > 0) why.push(`errors ${JSON.stringify(c.errors)}, rejected ${JSON.stringify(c.rejected)}`);
  const sent = perSInWindow(s, 'sentPerS');
  const results = perSInWindow(s, 'resultsPerS');
  if (results < sent * 0.95) why.push(`results ${results}/s of ${sent}/s sent`);
  const f = loadFigures(s);
  const figures: Record<string, number> = { resultsPerS: results, resultP50Ms: f.resultP50Ms!, resultP99Ms: f.resultP99Ms!, ackP99Ms: f.ackP99Ms!, sendLagP99Ms: f.sendLagP99Ms!, loadgenCores: f.loadgenCores! };
  for (const [k, v] of Object.entries(figures)) if (!Number.isFinite(v)) delete figures[k];
  return { ratePerS: rate, ok: why.length === 0, why: why.join('; '), figures };
}

const probesText = (x: Search) => x.probes.map((p) => `${p.ratePerS.toLocaleString('en-US')}/s ${p.ok ? 'held' : 'failed'} (result p99 ${p.figures.resultP99Ms ?? '–'} ms)`).join(', ');

interface Sustainable {
  stratus: Search;
  ceiling: Search;
  /** CPU µs per round-tripped event at Stratus's sustainable rate. */
  cpu: { engineUs: number; kafkaUs: number; redisUs: number; ratePerS: number; resultP99Ms: number };
  profile?: ProfileSummary;
}

async function sustainableRoundTrip(ctx: BenchContext): Promise<Sustainable> {
  const fleet = (rate: number): Fleet => (ctx.quick ? { devices: 200, totalRate: rate, durationS: 2, warmupS: 1, drainS: 10 } : { devices: 1000, totalRate: rate, durationS: 10, warmupS: 3, drainS: 20 });
  const opts = { tolerance: 0.1, probesMax: ctx.quick ? 2 : 14, step: 50, log: ctx.log };
  ctx.log('  round trip, bare grpc-js answering results at once:');
  const ceilingSvc = await startService(process.execPath, [dist('bench', 'baselines', 'grpc-ceiling.js'), '--results'], /listening on (\S+)/);
  let ceiling: Search;
  try {
    ceiling = await searchRate(ctx.quick ? 1000 : 4000, async (rate) => judgeRoundTrip(await loadgen(ctx, ceilingSvc.match[1]!, fleet(rate)), rate), opts);
  } finally {
    await ceilingSvc.stop();
  }
  ctx.log('  round trip, Stratus:');
  const profileDir = mkdtempSync(join(tmpdir(), 'stratus-bench-prof-'));
  const engine = await startEngine({ nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profileDir] });
  let stratus: Search;
  let cpu: Sustainable['cpu'];
  let profile: ProfileSummary | undefined;
  try {
    stratus = await searchRate(ctx.quick ? 500 : 2000, async (rate) => judgeRoundTrip(await loadgen(ctx, engine.target, fleet(rate)), rate), opts);
    const rate = Math.max(stratus.found, 100);
    const redisPid = Number(readFileSync(stackPaths(ctx.config).redisPid, 'utf8').trim());
    const measuredRun = await withCpu([...engine.pids(), kafkaPid(ctx), redisPid], () => loadgen(ctx, engine.target, fleet(rate)));
    const events = Math.max(measuredRun.result.counts.acked, 1);
    const us = (cpuS: number) => Math.round((cpuS / events) * 1e6 * 10) / 10;
    const engineS = measuredRun.cpuS.slice(0, -2).reduce((a, b) => a + b, 0);
    cpu = { engineUs: us(engineS), kafkaUs: us(measuredRun.cpuS.at(-2)!), redisUs: us(measuredRun.cpuS.at(-1)!), ratePerS: rate, resultP99Ms: measuredRun.result.latency.result?.p99Ms ?? NaN };
  } finally {
    await engine.stop();
    try {
      profile = readProfileDir(profileDir);
    } catch (err) {
      ctx.log(`  no CPU profile of the engine: ${(err as Error).message}`);
    }
    rmSync(profileDir, { recursive: true, force: true });
  }
  return { stratus, ceiling, cpu, profile };
}

export const roundTrip: Scenario = {
  id: 'round-trip',
  title: 'Whole round trip: sustainable rate vs bare gRPC, and vs a naive pipeline',
  async run(ctx) {
    const sus = await sustainableRoundTrip(ctx);
    const overload: Fleet = ctx.quick ? { devices: 200, totalRate: 1500, durationS: 2, warmupS: 1, drainS: 1 } : { devices: 1000, totalRate: 4000, durationS: 15, warmupS: 5, drainS: 3 };
    const nOver = perSInWindow(await once(ctx, () => naive(ctx), overload), 'resultsPerS');
    const sOver = perSInWindow(await once(ctx, stratus, overload), 'resultsPerS');
    // Both at half the naive pipeline's sustained rate, each on a fresh instance. Not in --quick
    // (its 2-minute budget).
    const commonRate = Math.max(20, Math.round(nOver / 2));
    const common: Fleet = { devices: overload.devices, totalRate: commonRate, durationS: 15, warmupS: 5, drainS: 30 };
    const nSteady = ctx.quick ? undefined : await once(ctx, () => naive(ctx), common);
    const sSteady = ctx.quick ? undefined : await once(ctx, stratus, common);
    const n = { sustained: nOver, steady: nSteady, commonRate };
    const s = { sustained: sOver, steady: sSteady, commonRate };
    const a = side('Stratus (stratus run, all roles)', s);
    const b = side('naive pipeline (each step awaited)', n);
    const tput = s.sustained / Math.max(n.sustained, 1);
    const p99 = (a.figures.resultP99Ms ?? NaN) / (b.figures.resultP99Ms ?? NaN);
    for (const x of [a, b]) for (const [k, v] of Object.entries(x.figures)) if (!Number.isFinite(v)) delete x.figures[k];
    return {
      id: this.id,
      title: this.title,
      params: { devices: overload.devices, offeredOverloadPerS: overload.totalRate, commonRatePerS: ctx.quick ? 'not in --quick' : commonRate, durationS: overload.durationS, profile: 'iot', loop: 'open', searchBound: `result p99 < ${RESULT_BOUND_MS} ms`, searchTolerance: '10%', searchProbeS: ctx.quick ? 2 : 10 },
      sides: [
        { name: 'Stratus: sustainable round trip', figures: { sustainablePerS: sus.stratus.found, probes: sus.stratus.probes.length, ...(sus.stratus.bracket === null ? {} : { bracketPct: Math.round(sus.stratus.bracket * 100) }), engineCpuUsPerEvent: sus.cpu.engineUs, kafkaBrokerCpuUsPerEvent: sus.cpu.kafkaUs, redisCpuUsPerEvent: sus.cpu.redisUs } },
        { name: 'bare grpc-js: sustainable round trip', figures: { sustainablePerS: sus.ceiling.found, probes: sus.ceiling.probes.length, ...(sus.ceiling.bracket === null ? {} : { bracketPct: Math.round(sus.ceiling.bracket * 100) }) } },
        a,
        b,
      ],
      ratios: [
        ratio(`sustainable events/s at result p99 < ${RESULT_BOUND_MS} ms: Stratus`, sus.stratus.found, { op: '>=', value: 8000 }),
        ratio('sustainable events/s: Stratus / bare grpc-js', sus.stratus.found / Math.max(sus.ceiling.found, 1)),
        ratio('sustained results/s: Stratus / naive', tput, { op: '>=', value: 10 }),
        ...(Number.isFinite(p99) ? [ratio(`result p99 at ${commonRate}/s: Stratus / naive`, p99, { op: '<=', value: 1 })] : []),
      ],
      reading:
        `With 1,000 devices sending one event per uplink (open loop), Stratus held result p99 under ${RESULT_BOUND_MS} ms, every result right, up to ${sus.stratus.found.toLocaleString('en-US')} events/s${sus.stratus.failedAt === null ? '' : ` (failed at ${sus.stratus.failedAt.toLocaleString('en-US')})`}; a bare grpc-js server answering each result at once, driven by the same load generator, held up to ${sus.ceiling.found.toLocaleString('en-US')}${sus.ceiling.failedAt === null ? ' (the highest probed)' : ''} (${(sus.stratus.found / Math.max(sus.ceiling.found, 1)).toFixed(2)}x). ` +
        `Stratus probes: ${probesText(sus.stratus)}. Bare grpc-js probes: ${probesText(sus.ceiling)}. ` +
        `At ${sus.cpu.ratePerS.toLocaleString('en-US')} events/s (result p99 ${sus.cpu.resultP99Ms} ms in that run), each round-tripped event cost ${sus.cpu.engineUs} µs of CPU in the engine (gateway, processor, forwarder and exporter in one process, librdkafka's threads included), ${sus.cpu.kafkaUs} µs in the Kafka broker and ${sus.cpu.redisUs} µs in Redis. ` +
        (sus.profile === undefined ? '' : `${describeProfile(sus.profile, 'that engine')} `) +
        `Offered ${overload.totalRate.toLocaleString('en-US')} events/s, Stratus delivered ${s.sustained.toLocaleString('en-US')} results/s to the devices and the naive pipeline ${n.sustained.toLocaleString('en-US')} (${tput.toFixed(1)}x); the naive pipeline's processor awaits each result's produce before taking the next event, so one delivery report at a time bounds it. ` +
        (ctx.quick
          ? 'The common-rate latency runs do not run in --quick.'
          : `At ${commonRate.toLocaleString('en-US')} events/s, half the naive pipeline's sustained rate, each on a fresh instance, result p99 was ${a.figures.resultP99Ms ?? '–'} ms for Stratus and ${b.figures.resultP99Ms ?? '–'} ms for the naive pipeline. Missing, duplicates and wrong are the load generator's checker at that rate.`),
      raw: sus.profile === undefined ? { searches: { stratus: sus.stratus, ceiling: sus.ceiling } } : { searches: { stratus: sus.stratus, ceiling: sus.ceiling }, engineProfile: sus.profile },
      plots:
        sSteady === undefined || nSteady === undefined
          ? []
          : [
              {
                id: 'result',
                title: `Result latency by percentile at ${commonRate.toLocaleString('en-US')} events/s`,
                series: [
                  { name: a.name, distribution: sSteady.latency.result?.distribution ?? [] },
                  { name: b.name, distribution: nSteady.latency.result?.distribution ?? [] },
                ],
              },
            ],
    };
  },
};
