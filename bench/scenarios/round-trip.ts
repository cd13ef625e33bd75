/**
 * Scenario 2: the whole round trip (device -> durable ack -> processor -> result at the device)
 * against the same flow done the naive way (bench/baselines/naive-pipeline: every produce, GET
 * and PUBLISH awaited one at a time). Same load-generator fleet against each: (1) offered more
 * than either sustains, results/s inside the window; (2) both at 50% of the naive pipeline's
 * sustained rate, where both keep up, for the latency percentiles. Targets: >= 10x the naive
 * pipeline's sustained results/s, and a lower result p99.
 */
import { randomUUID } from 'node:crypto';
import type { LoadgenSummary } from '../../loadgen/summary.js';
import { dist, startService } from '../child.js';
import { loadFigures, loadgen, perSInWindow, startEngine, type Fleet } from '../engine.js';
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

export const roundTrip: Scenario = {
  id: 'round-trip',
  title: 'Whole round trip vs a naive pipeline',
  async run(ctx) {
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
      params: { devices: overload.devices, offeredOverloadPerS: overload.totalRate, commonRatePerS: ctx.quick ? 'not in --quick' : commonRate, durationS: overload.durationS, profile: 'iot', loop: 'open' },
      sides: [a, b],
      ratios: [
        ratio('sustained results/s: Stratus / naive', tput, { op: '>=', value: 10 }),
        ...(Number.isFinite(p99) ? [ratio(`result p99 at ${commonRate}/s: Stratus / naive`, p99, { op: '<=', value: 1 })] : []),
      ],
      reading:
        `Offered ${overload.totalRate.toLocaleString('en-US')} events/s, Stratus delivered ${s.sustained.toLocaleString('en-US')} results/s to the devices and the naive pipeline ${n.sustained.toLocaleString('en-US')} (${tput.toFixed(1)}x); the naive pipeline's processor awaits each result's produce before taking the next event, so one delivery report at a time bounds it. ` +
        (ctx.quick
          ? 'The common-rate latency runs do not run in --quick.'
          : `At ${commonRate.toLocaleString('en-US')} events/s, half the naive pipeline's sustained rate, each on a fresh instance, result p99 was ${a.figures.resultP99Ms ?? '–'} ms for Stratus and ${b.figures.resultP99Ms ?? '–'} ms for the naive pipeline. Missing, duplicates and wrong are the load generator's checker at that rate.`),
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
