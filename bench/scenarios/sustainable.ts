/**
 * Scenario 5: sustainable throughput at 10,000 devices. One engine (all roles, one process) for
 * the whole scenario; load-generator probes (iot profile, open loop, full round trip with the
 * checker on) search for the highest total rate at which ack p99 stays under a bound (20 ms by
 * default) with every event acked once and every result right: doubling up from a start rate, then
 * halving the gap. Then a run at 50% of it gives the latency percentiles, and the engine's RSS with
 * the fleet connected gives its memory per connected device (target <= 20 KB).
 */
import { readFileSync } from 'node:fs';
import type { LoadgenSummary } from '../../loadgen/summary.js';
import { loadgen, perSInWindow, startEngine } from '../engine.js';
import { ratio, type BenchContext, type Scenario, type Side } from '../scenario.js';

const BOUND_MS = 20;

interface Probe {
  ratePerS: number;
  ok: boolean;
  why: string;
  ackP99Ms: number | null;
  sendLagP99Ms: number | null;
  ackedPerS: number;
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
  return { ratePerS: rate, ok: why.length === 0, why: why.join('; '), ackP99Ms: ackP99, sendLagP99Ms: s.latency.sendLag?.p99Ms ?? null, ackedPerS: acked };
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
    // The fleet connects during the warm-up (10,000 devices on 100 connections: about 5 s here).
    const base = { devices, durationS: ctx.quick ? 2 : 10, warmupS: ctx.quick ? 2 : 8, drainS: 10 };
    const startRate = ctx.quick ? 500 : 1000;
    const probesMax = ctx.quick ? 2 : 6;
    const engine = await startEngine();
    const probes: Probe[] = [];
    try {
      const pid = engine.service.child.pid!;
      const rssIdle = rssBytes(pid);
      const probe = async (rate: number) => {
        const p = judge(await loadgen(ctx, engine.target, { ...base, totalRate: rate }), rate);
        ctx.log(`  probe ${rate}/s: ${p.ok ? 'holds' : `fails (${p.why})`}`);
        probes.push(p);
        return p.ok;
      };
      // Doubling, then bisection between the highest rate that held and the lowest that failed.
      let good = 0;
      let bad = Infinity;
      let rate = startRate;
      while (probes.length < probesMax) {
        if (await probe(rate)) good = rate;
        else bad = rate;
        if (bad === Infinity) rate *= 2;
        else if (good === 0) rate = Math.round(rate / 2);
        else rate = Math.round((good + bad) / 2);
        if (bad !== Infinity && good !== 0 && bad - good <= Math.max(100, good * 0.1)) break;
      }
      const found = good;
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
      const kbPerDevice = Math.round(((rssLoaded - rssIdle) / devices / 1024) * 10) / 10;
      const memory = { engineRssIdleMiB: Math.round(rssIdle / 1048576), enginePeakRssMiB: Math.round(rssLoaded / 1048576), engineKiBPerDevice: kbPerDevice };
      const sides: Side[] = [
        { name: 'search', figures: { sustainablePerS: found, boundMs: BOUND_MS, probes: probes.length } },
        side(`at 50% of it (${half.toLocaleString('en-US')}/s)`, atHalf, half, memory),
      ];
      return {
        id: this.id,
        title: this.title,
        params: { devices, connections: Math.ceil(devices / 100), profile: 'iot', loop: 'open', ackP99BoundMs: BOUND_MS, probeDurationS: base.durationS, probeWarmupS: base.warmupS, startRatePerS: startRate, engine: 'stratus run (all roles, 1 process)' },
        sides,
        ratios: [
          ratio('engine KiB per connected device', kbPerDevice, { op: '<=', value: 20 }),
          ...(atHalf.latency.ack === undefined ? [] : [ratio(`ack p99 at 50% / ${BOUND_MS} ms bound`, atHalf.latency.ack.p99Ms / BOUND_MS)]),
        ],
        reading:
          (found > 0
            ? `With ${devices.toLocaleString('en-US')} devices connected, the highest total rate probed at which ack p99 stayed under ${BOUND_MS} ms, with every event acked once and every result right, was ${found.toLocaleString('en-US')} events/s. `
            : `With ${devices.toLocaleString('en-US')} devices connected, ack p99 did not stay under ${BOUND_MS} ms at any rate probed (down to ${Math.min(...probes.map((p) => p.ratePerS)).toLocaleString('en-US')} events/s): ${probes.at(-1)?.why}. `) +
          `Probes: ${probes.map((p) => `${p.ratePerS.toLocaleString('en-US')}/s ${p.ok ? 'held' : 'failed'} (ack p99 ${p.ackP99Ms ?? '–'} ms, sendLag p99 ${p.sendLagP99Ms ?? '–'} ms)`).join(', ')}. ` +
          `At ${half.toLocaleString('en-US')} events/s the engine process (gateway, processor and forwarder in one) peaked at ${memory.enginePeakRssMiB} MiB of RSS against ${memory.engineRssIdleMiB} MiB before the fleet connected: ${kbPerDevice} KiB per connected device, an upper bound (it also holds what the load of the earlier probes grew the heap to). A high sendLag p99 means the load generator, which shares the machine, was late itself.`,
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
        raw: { probes },
      };
    } finally {
      await engine.stop();
    }
  },
};
