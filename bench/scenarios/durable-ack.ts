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
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { stackPaths } from '../../src/stack/paths.js';
import { describeProfile, readProfileDir, type ProfileSummary } from '../cpu-profile.js';
import { deleteTopics } from '../../src/kafka/admin.js';
import { topology } from '../../src/topology.js';
import { loadConfig } from '../../src/config.js';
import type { LoadgenSummary } from '../../loadgen/summary.js';
import { unusedPort } from '../../test/helpers/ports.js';
import { cpuSeconds, dist, runJson, startService, STRATUS_BIN } from '../child.js';
import { ratio, type BenchContext, type Scenario, type Side } from '../scenario.js';

async function loadgen(ctx: BenchContext, target: string, fleet: { devices: number; totalRate: number; durationS: number; warmupS: number; workers: number }): Promise<LoadgenSummary> {
  const [summary] = await runJson<LoadgenSummary>(process.execPath, [
    STRATUS_BIN, 'loadgen', '--json', '--ack-only', '--target', target,
    '--devices', String(fleet.devices), '--total-rate', String(fleet.totalRate), '--connections', String(Math.ceil(fleet.devices / 100)),
    '--duration', `${fleet.durationS}s`, '--warmup', `${fleet.warmupS}s`, '--drain', '15s', '--seed', '1', '--workers', String(fleet.workers), '--closed-loop',
  ]);
  ctx.log(`  ${target}: acked ${ackedInWindowPerS(summary!)}/s in the window, ack p99 ${summary!.latency.ack?.p99Ms} ms, sendLag p99 ${summary!.latency.sendLag?.p99Ms} ms`);
  return summary!;
}

/**
 * Acks that happened inside the measured window, per second. (The summary's throughput counts the
 * window's events acked by the end of the drain: under overload that is the offered rate, late.)
 */
function ackedInWindowPerS(s: LoadgenSummary): number {
  const from = Number(s.options.warmupS);
  const to = from + s.measuredS;
  const acks = s.series.ackedPerS.filter((_, i) => i >= from && i < to);
  return Math.round(acks.reduce((a, b) => a + b, 0) / acks.length);
}

/** CPU of the measured processes over one load-generator run, per acked event. */
interface CpuUse { serverUsPerAck: number; kafkaUsPerAck?: number }

async function measured(pids: { server: number; kafka?: number }, run: () => Promise<LoadgenSummary>): Promise<{ summary: LoadgenSummary; cpu: CpuUse }> {
  const before = { server: cpuSeconds(pids.server), kafka: pids.kafka === undefined ? 0 : cpuSeconds(pids.kafka) };
  const summary = await run();
  const per = (s: number) => Math.round((s / Math.max(summary.counts.acked, 1)) * 1e6 * 10) / 10;
  const cpu: CpuUse = { serverUsPerAck: per(cpuSeconds(pids.server) - before.server) };
  if (pids.kafka !== undefined) cpu.kafkaUsPerAck = per(cpuSeconds(pids.kafka) - before.kafka);
  return { summary, cpu };
}

function side(name: string, s: LoadgenSummary, cpu: CpuUse): Side {
  const ack = s.latency.ack;
  // A latency with no samples (no event of the window acked before the drain ended) is left out.
  const figures: Record<string, number> = {
    ackedPerS: ackedInWindowPerS(s),
    ackP50Ms: ack?.p50Ms ?? NaN,
    ackP99Ms: ack?.p99Ms ?? NaN,
    ackP999Ms: ack?.p999Ms ?? NaN,
    sendLagP99Ms: s.latency.sendLag?.p99Ms ?? NaN,
    serverCpuUsPerAck: cpu.serverUsPerAck,
    kafkaBrokerCpuUsPerAck: cpu.kafkaUsPerAck ?? NaN,
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
    const fleet = ctx.quick ? { devices: 200, totalRate: 8000, durationS: 4, warmupS: 2, workers: 1 } : { devices: 1000, totalRate: 50000, durationS: 20, warmupS: 5, workers: 2 };
    const ceiling = await startService(process.execPath, [dist('bench', 'baselines', 'grpc-ceiling.js')], /listening on (\S+)/);
    let ceilingRun: Awaited<ReturnType<typeof measured>>;
    try {
      ceilingRun = await measured({ server: ceiling.child.pid! }, () => loadgen(ctx, ceiling.match[1]!, fleet));
    } finally {
      await ceiling.stop();
    }
    const prefix = `bench.${randomUUID().slice(0, 8)}.`;
    const env = { STRATUS_KAFKA_TOPIC_PREFIX: prefix, STRATUS_REDIS_KEY_PREFIX: `${prefix}:`, STRATUS_GATEWAY_INFLIGHT_MAX: '100000', STRATUS_REDIS_DEVICE_STATE_TTL_MS: '600000' };
    const port = await unusedPort();
    const profileDir = mkdtempSync(join(tmpdir(), 'stratus-bench-prof-'));
    const engine = await startService(process.execPath, ['--cpu-prof', '--cpu-prof-dir', profileDir, STRATUS_BIN, 'run', '--roles', 'gateway', '--grpc-port', String(port), '--http-port', String(await unusedPort()), '--instance-id', `bench-${port}`], /stratus run: gateway/, { env });
    const kafkaPid = Number(readFileSync(stackPaths(ctx.config).kafkaPid, 'utf8').trim());
    let stratusRun: Awaited<ReturnType<typeof measured>>;
    let profile: ProfileSummary | undefined;
    try {
      stratusRun = await measured({ server: engine.child.pid!, kafka: kafkaPid }, () => loadgen(ctx, `127.0.0.1:${port}`, fleet));
    } finally {
      await engine.stop();
      try {
        profile = readProfileDir(profileDir);
      } catch (err) {
        ctx.log(`  no CPU profile of the gateway: ${(err as Error).message}`);
      }
      rmSync(profileDir, { recursive: true, force: true });
      const c = loadConfig({ flags: { 'kafka-topic-prefix': prefix } });
      await deleteTopics(c, [topology(c).topics.events, topology(c).topics.results]).catch(() => {});
    }
    const stratusSummary = stratusRun.summary;
    const ceilingSummary = ceilingRun.summary;
    const a = side('Stratus gateway (durable in Kafka)', stratusSummary, stratusRun.cpu);
    const b = side('grpc-js ceiling (ack on decode)', ceilingSummary, ceilingRun.cpu);
    const r = a.figures.ackedPerS! / b.figures.ackedPerS!;
    return {
      id: this.id,
      title: this.title,
      params: { loop: 'closed (one uplink outstanding per device)', devices: fleet.devices, schedulePerS: fleet.totalRate, durationS: fleet.durationS, warmupS: fleet.warmupS, connections: Math.ceil(fleet.devices / 100), loadgenWorkers: fleet.workers },
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
        `Per acked event the gateway process used ${a.figures.serverCpuUsPerAck} µs of CPU and the Kafka broker ${a.figures.kafkaBrokerCpuUsPerAck} µs, against ${b.figures.serverCpuUsPerAck} µs for the bare server.`,
        `The load generator, Kafka and the server share this machine's ${availableParallelism()} cores: loadgenCores is the generator's own share, and what it and the broker take is not available to the server.`,
        profile === undefined ? '' : describeProfile(profile, 'the Stratus gateway'),
      ]
        .filter((x) => x !== '')
        .join(' '),
      raw: profile === undefined ? undefined : { gatewayProfile: profile },
    };
  },
};
