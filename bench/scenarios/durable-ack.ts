/**
 * Scenario 1: the durable ack against the grpc-js ceiling. The same load-generator fleet against
 * (a) `stratus run --roles gateway` (every event durable in Kafka before its ack) and (b)
 * bench/baselines/grpc-ceiling (acks on decode). Closed loop (ghz-style: each device keeps one
 * uplink outstanding, so the fleet's concurrency is its device count) at a schedule faster than
 * either side acks: each side runs at its own maximum, and the load generator spends its CPU only on
 * events the server takes (an open loop far beyond capacity spends it on a backlog, and on two
 * shared cores that starves the server it measures). Acks/s and ack latency, ratio Stratus /
 * ceiling (target >= 0.7); and the servers' CPU per acked event, which holds better than
 * throughput when the machine is shared.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { stackPaths } from '../../src/stack/paths.js';
import type { LoadgenSummary } from '../../loadgen/summary.js';
import { dist, startService } from '../child.js';
import { describeProfile, readProfileDir, type ProfileSummary } from '../cpu-profile.js';
import { kafkaPid, loadgen, perSInWindow, startEngine, withCpu, type Fleet } from '../engine.js';
import { ratio, type BenchContext, type Scenario, type Side } from '../scenario.js';

/** CPU of the measured processes over one load-generator run, per acked event. */
interface CpuUse { serverUsPerAck: number; kafkaUsPerAck?: number; redisUsPerAck?: number }

async function measured(ctx: BenchContext, target: string, fleet: Fleet, pids: { server: number; kafka?: number; redis?: number }): Promise<{ summary: LoadgenSummary; cpu: CpuUse }> {
  const { result: summary, cpuS } = await withCpu(pids.kafka === undefined || pids.redis === undefined ? [pids.server] : [pids.server, pids.kafka, pids.redis], () => loadgen(ctx, target, fleet));
  const per = (s: number) => Math.round((s / Math.max(summary.counts.acked, 1)) * 1e6 * 10) / 10;
  const cpu: CpuUse = { serverUsPerAck: per(cpuS[0]!) };
  if (cpuS.length === 3) {
    cpu.kafkaUsPerAck = per(cpuS[1]!);
    cpu.redisUsPerAck = per(cpuS[2]!);
  }
  return { summary, cpu };
}

function side(name: string, s: LoadgenSummary, cpu: CpuUse): Side {
  const ack = s.latency.ack;
  // A latency with no samples (no event of the window acked before the drain ended) is left out.
  const figures: Record<string, number> = {
    ackedPerS: perSInWindow(s, 'ackedPerS'),
    ackP50Ms: ack?.p50Ms ?? NaN,
    ackP99Ms: ack?.p99Ms ?? NaN,
    ackP999Ms: ack?.p999Ms ?? NaN,
    sendLagP99Ms: s.latency.sendLag?.p99Ms ?? NaN,
    serverCpuUsPerAck: cpu.serverUsPerAck,
    kafkaBrokerCpuUsPerAck: cpu.kafkaUsPerAck ?? NaN,
    redisCpuUsPerAck: cpu.redisUsPerAck ?? NaN,
    loadgenCores: Math.round(s.footprint.cpuShare * 100) / 100,
    errors: Object.values(s.counts.errors).reduce((a, b) => a + b, 0),
    rejected: Object.values(s.counts.rejected).reduce((a, b) => a + b, 0),
    unackedAtEnd: s.counts.sent - s.counts.acked,
  };
  for (const [k, v] of Object.entries(figures)) if (!Number.isFinite(v)) delete figures[k];
  return { name, figures };
}

export const durableAck: Scenario = {
  id: 'durable-ack',
  title: 'Durable ack vs the grpc-js ceiling',
  async run(ctx) {
    // A schedule (50 uplinks/s per device) faster than either side acks, so both run at their maximum.
    const fleet: Fleet = ctx.quick
      ? { devices: 200, totalRate: 8000, durationS: 4, warmupS: 2, workers: 1, extra: ['--ack-only', '--closed-loop'] }
      : { devices: 1000, totalRate: 50000, durationS: 20, warmupS: 5, workers: 2, extra: ['--ack-only', '--closed-loop'] };
    const ceiling = await startService(process.execPath, [dist('bench', 'baselines', 'grpc-ceiling.js')], /listening on (\S+)/);
    let ceilingRun: Awaited<ReturnType<typeof measured>>;
    try {
      ceilingRun = await measured(ctx, ceiling.match[1]!, fleet, { server: ceiling.child.pid! });
    } finally {
      await ceiling.stop();
    }
    const profileDir = mkdtempSync(join(tmpdir(), 'stratus-bench-prof-'));
    const engine = await startEngine({ roles: 'gateway', nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profileDir] });
    let stratusRun: Awaited<ReturnType<typeof measured>>;
    let profile: ProfileSummary | undefined;
    try {
      stratusRun = await measured(ctx, engine.target, fleet, { server: engine.service.child.pid!, kafka: kafkaPid(ctx), redis: Number(readFileSync(stackPaths(ctx.config).redisPid, 'utf8').trim()) });
    } finally {
      await engine.stop();
      try {
        profile = readProfileDir(profileDir);
      } catch (err) {
        ctx.log(`  no CPU profile of the gateway: ${(err as Error).message}`);
      }
      rmSync(profileDir, { recursive: true, force: true });
    }
    const stratusSummary = stratusRun.summary;
    const ceilingSummary = ceilingRun.summary;
    const a = side('Stratus gateway (durable in Kafka)', stratusSummary, stratusRun.cpu);
    const b = side('grpc-js ceiling (ack on decode)', ceilingSummary, ceilingRun.cpu);
    const r = a.figures.ackedPerS! / b.figures.ackedPerS!;
    return {
      id: this.id,
      title: this.title,
      params: { loop: 'closed (one uplink outstanding per device)', devices: fleet.devices, schedulePerS: fleet.totalRate, durationS: fleet.durationS, warmupS: fleet.warmupS, connections: Math.ceil(fleet.devices / 100), loadgenWorkers: fleet.workers! },
      sides: [a, b],
      plots: [
        {
          id: 'ack',
          title: 'Ack latency by percentile, each side at its maximum (closed loop)',
          series: [
            { name: a.name, distribution: stratusSummary.latency.ack?.distribution ?? [] },
            { name: b.name, distribution: ceilingSummary.latency.ack?.distribution ?? [] },
          ],
        },
      ],
      ratios: [
        ratio('acked/s: Stratus / ceiling', r, { op: '>=', value: 0.7 }),
        ...(a.figures.ackP99Ms !== undefined && b.figures.ackP99Ms !== undefined ? [ratio('ack p99: Stratus / ceiling', a.figures.ackP99Ms / b.figures.ackP99Ms)] : []),
        ratio('server CPU per ack: Stratus gateway / ceiling', a.figures.serverCpuUsPerAck! / b.figures.serverCpuUsPerAck!),
        ratio('CPU per ack: (gateway + Kafka broker) / ceiling', (a.figures.serverCpuUsPerAck! + a.figures.kafkaBrokerCpuUsPerAck!) / b.figures.serverCpuUsPerAck!),
      ],
      reading: [
        `With ${fleet.devices.toLocaleString('en-US')} devices each keeping one uplink outstanding, Stratus acknowledged ${a.figures.ackedPerS!.toLocaleString('en-US')} events/s durably (each on every in-sync replica before its ack), ${(r * 100).toFixed(0)}% of what a bare grpc-js server acknowledges on decode (${b.figures.ackedPerS!.toLocaleString('en-US')}/s).`,
        `Per acked event the gateway process used ${a.figures.serverCpuUsPerAck} µs of CPU, the Kafka broker ${a.figures.kafkaBrokerCpuUsPerAck} µs and Redis (the admission script) ${a.figures.redisCpuUsPerAck} µs, against ${b.figures.serverCpuUsPerAck} µs for the bare server.`,
        `The load generator, Kafka and the server share this machine's ${availableParallelism()} cores: loadgenCores is the generator's own share, and what it and the broker take is not available to the server.`,
        profile === undefined ? '' : describeProfile(profile, 'the Stratus gateway'),
      ]
        .filter((x) => x !== '')
        .join(' '),
      raw: profile === undefined ? undefined : { gatewayProfile: profile },
    };
  },
};
