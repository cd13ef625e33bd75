/**
 * Scenario 5: sustainable throughput at 10,000 devices. One engine (all roles, one process,
 * CPU-profiled) for the whole scenario. First the fleet connects and idles (10 events/s in all)
 * while the engine's RSS is sampled: its growth over the RSS before is the memory per connected idle
 * device (target <= 20 KiB). Then load-generator probes (iot profile, open loop, full round trip
 * with the checker on, the generator on two worker threads so that it is not the bottleneck, each
 * measured only after its whole fleet connected plus a warm-up) search for the highest total rate at
 * which ack p99 stays under 20 ms with every event acked once and every result right
 * (bench/search.ts: doubling, then bisection until the bracket is within 10%). Then a run at 50%
 * of it gives the latency percentiles.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeProfile, readProfileDir, type ProfileSummary } from '../cpu-profile.js';
import { searchRate } from '../search.js';
import type { LoadgenSummary } from '../../loadgen/summary.js';
import { loadgen, perSInWindow, startEngine } from '../engine.js';
import { ratio, type BenchContext, type Scenario, type Side } from '../scenario.js';

const BOUND_MS = 20;

interface Probe {
  ratePerS: number;
  ok: boolean;
  why: string;
  figures: Record<string, number>;
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? NaN : Number(m[1]) * 1024;
}

function judge(s: LoadgenSummary, rate: number): Probe {
  const c = s.counts;
  const ackP99 = s.latency.ack?.p99Ms ?? null;
  const acked = perSInWindow(s, 'ackedPerS');
  const why: string[] = [];
  if (ackP99 === null || ackP99 >= BOUND_MS) why.push(`ack p99 ${ackP99 ?? 'none'} ms`);
  if (c.missing + c.duplicates + c.wrong + c.unacked > 0) why.push(`missing ${c.missing}, duplicates ${c.duplicates}, wrong ${c.wrong}, unacked ${c.unacked}`);
  if (Object.keys(c.errors).length > 0 || Object.keys(c.rejected).length > 0) why.push(`errors ${JSON.stringify(c.errors)}, rejected ${JSON.stringify(c.rejected)}`);
  // Kept up: the window's acks match the window's sends (at low per-device rates the window's
  // sends are not exactly the nominal rate: each device sends once every devices/rate seconds).
  const sent = perSInWindow(s, 'sentPerS');
  if (acked < sent * 0.95) why.push(`acked ${acked}/s of ${sent}/s sent`);
  const figures: Record<string, number> = { ackedPerS: acked, ackP99Ms: ackP99 ?? NaN, sendLagP99Ms: s.latency.sendLag?.p99Ms ?? NaN, loadgenCores: Math.round(s.footprint.cpuShare * 100) / 100 };
  for (const [k, v] of Object.entries(figures)) if (!Number.isFinite(v)) delete figures[k];
  return { ratePerS: rate, ok: why.length === 0, why: why.join('; '), figures };
}

function side(name: string, s: LoadgenSummary, rate: number, extra: Record<string, number> = {}): Side {
  const a = s.latency.ack;
  const r = s.latency.result;
  const f: Record<string, number> = {
    offeredPerS: rate,
    ackedPerS: perSInWindow(s, 'ackedPerS'),
    resultsPerS: perSInWindow(s, 'resultsPerS'),
    ackP50Ms: a?.p50Ms ?? NaN,
    ackP90Ms: a?.p90Ms ?? NaN,
    ackP99Ms: a?.p99Ms ?? NaN,
    ackP999Ms: a?.p999Ms ?? NaN,
    ackMaxMs: a?.maxMs ?? NaN,
    resultP50Ms: r?.p50Ms ?? NaN,
    resultP99Ms: r?.p99Ms ?? NaN,
    resultP999Ms: r?.p999Ms ?? NaN,
    sendLagP99Ms: s.latency.sendLag?.p99Ms ?? NaN,
    missing: s.counts.missing,
    duplicates: s.counts.duplicates,
    wrong: s.counts.wrong,
    ...extra,
  };
  for (const [k, v] of Object.entries(f)) if (!Number.isFinite(v)) delete f[k];
  return { name, figures: f };
}

export const sustainable: Scenario = {
  id: 'sustainable',
  title: 'Sustainable throughput at 10,000 devices',
  async run(ctx: BenchContext) {
    const devices = ctx.quick ? 1000 : 10_000;
    // The fleet connects before each probe's window opens (10,000 devices on 100 connections: about
    // 5 s here); the window starts once all are connected plus the warm-up.
    const base = { devices, durationS: ctx.quick ? 2 : 10, warmupS: ctx.quick ? 2 : 5, drainS: 10, workers: 2 };
    const startRate = ctx.quick ? 500 : 1000;
    const profileDir = mkdtempSync(join(tmpdir(), 'stratus-bench-prof-'));
    const engine = await startEngine({ nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profileDir] });
    let profile: ProfileSummary | undefined;
    try {
      const pid = engine.service.child.pid!;
      const rssIdle = rssBytes(pid);
      // Memory per connected idle device: the fleet connected, 10 events/s in all. The engine's RSS
      // is sampled every 250 ms; the reading is the median of the samples inside the load
      // generator's measured window (all devices connected, then its warm-up: the connect storm's
      // transient garbage is collected by then).
      const samples: { atMs: number; rss: number }[] = [];
      const idleSampler = setInterval(() => samples.push({ atMs: Date.now(), rss: rssBytes(pid) }), 250);
      const idleStartedMs = Date.now();
      let idleRun: LoadgenSummary;
      try {
        idleRun = await loadgen(ctx, engine.target, { ...base, totalRate: 10, durationS: ctx.quick ? 2 : 5 });
      } finally {
        clearInterval(idleSampler);
      }
      const windowFromMs = idleStartedMs + idleRun.window.startS * 1000;
      const inWindow = samples.filter((x) => x.atMs >= windowFromMs && x.atMs <= windowFromMs + idleRun.measuredS * 1000).map((x) => x.rss).sort((a, b) => a - b);
      const rssConnected = inWindow.length > 0 ? inWindow[Math.floor(inWindow.length / 2)]! : Math.max(...samples.map((x) => x.rss));
      const search = await searchRate(startRate, async (rate) => judge(await loadgen(ctx, engine.target, { ...base, totalRate: rate }), rate), { tolerance: 0.1, probesMax: ctx.quick ? 2 : 14, step: 50, log: ctx.log });
      const probes = search.probes;
      const found = search.found;
      const half = Math.max(Math.round((found === 0 ? startRate / 4 : found) / 2), 50);
      // The engine's peak RSS during the 50% run, sampled every 250 ms while the fleet is connected.
      let rssLoaded = rssIdle;
      const sampler = setInterval(() => (rssLoaded = Math.max(rssLoaded, rssBytes(pid))), 250);
      let atHalf: LoadgenSummary;
      try {
        atHalf = await loadgen(ctx, engine.target, { ...base, totalRate: half });
      } finally {
        clearInterval(sampler);
      }
      const idleKiBPerDevice = Math.round(((rssConnected - rssIdle) / devices / 1024) * 10) / 10;
      const kbPerDevice = Math.round(((rssLoaded - rssIdle) / devices / 1024) * 10) / 10;
      const memory = { engineRssIdleMiB: Math.round(rssIdle / 1048576), engineRssConnectedIdleMiB: Math.round(rssConnected / 1048576), enginePeakRssMiB: Math.round(rssLoaded / 1048576), engineKiBPerIdleDevice: idleKiBPerDevice, engineKiBPerDeviceUnderLoad: kbPerDevice };
      const sides: Side[] = [
        { name: 'search', figures: { sustainablePerS: found, boundMs: BOUND_MS, probes: probes.length, ...(search.bracket === null ? {} : { bracketPct: Math.round(search.bracket * 100) }) } },
        side(`at 50% of it (${half.toLocaleString('en-US')}/s)`, atHalf, half, memory),
      ];
      await engine.stop();
      profile = readProfile(profileDir, ctx);
      return {
        id: this.id,
        title: this.title,
        params: { devices, connections: Math.ceil(devices / 100), profile: 'iot', loop: 'open', ackP99BoundMs: BOUND_MS, probeDurationS: base.durationS, probeWarmupS: base.warmupS, loadgenWorkers: base.workers, searchTolerance: '10%', startRatePerS: startRate, engine: 'stratus run (all roles, 1 process)' },
        sides,
        ratios: [
          ratio('engine KiB per connected idle device', idleKiBPerDevice, { op: '<=', value: 20 }),
          ratio(`sustainable events/s at ack p99 < ${BOUND_MS} ms`, found, { op: '>=', value: 5000 }),
          ...(atHalf.latency.ack === undefined ? [] : [ratio(`ack p99 at 50% / ${BOUND_MS} ms bound`, atHalf.latency.ack.p99Ms / BOUND_MS)]),
        ],
        reading:
          (found > 0
            ? `With ${devices.toLocaleString('en-US')} devices connected, the highest total rate probed at which ack p99 stayed under ${BOUND_MS} ms, with every event acked once and every result right, was ${found.toLocaleString('en-US')} events/s. `
            : `With ${devices.toLocaleString('en-US')} devices connected, ack p99 did not stay under ${BOUND_MS} ms at any rate probed (down to ${Math.min(...probes.map((p) => p.ratePerS)).toLocaleString('en-US')} events/s): ${probes.at(-1)?.why}. `) +
          `Probes (the load generator on ${base.workers} worker threads): ${probes.map((p) => `${p.ratePerS.toLocaleString('en-US')}/s ${p.ok ? 'held' : 'failed'} (ack p99 ${p.figures.ackP99Ms ?? '–'} ms, sendLag p99 ${p.figures.sendLagP99Ms ?? '–'} ms)`).join(', ')}. A high sendLag p99 means the load generator, which shares the machine, was late itself. ` +
          `With the fleet connected and idle, the engine process grew from ${memory.engineRssIdleMiB} MiB of RSS to ${memory.engineRssConnectedIdleMiB} MiB (median inside the measured window): ${idleKiBPerDevice} KiB per connected idle device. At ${half.toLocaleString('en-US')} events/s it peaked at ${memory.enginePeakRssMiB} MiB (${kbPerDevice} KiB per device, an upper bound: it also holds what the load of the earlier probes grew the heap to).` +
          (profile === undefined ? '' : ` ${describeProfile(profile, 'the engine')}`),
        plots: [
          {
            id: 'latency',
            title: `Ack and result latency by percentile at ${half.toLocaleString('en-US')} events/s, ${devices.toLocaleString('en-US')} devices`,
            series: [
              { name: 'ack', distribution: atHalf.latency.ack?.distribution ?? [] },
              { name: 'result', distribution: atHalf.latency.result?.distribution ?? [] },
            ],
          },
        ],
        raw: profile === undefined ? { probes } : { probes, engineProfile: profile },
      };
    } finally {
      // Stopped above on success (its profile is written when it exits); stop() twice is harmless.
      await engine.stop();
      rmSync(profileDir, { recursive: true, force: true });
    }
  },
};

function readProfile(dir: string, ctx: BenchContext): ProfileSummary | undefined {
  try {
    return readProfileDir(dir);
  } catch (err) {
    ctx.log(`  no CPU profile of the engine: ${(err as Error).message}`);
    return undefined;
  }
}
