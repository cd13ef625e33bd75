/**
 * Scenario 1: the durable ack against the grpc-js ceiling. The same load-generator fleet, open
 * loop, offered more than either side can take, against (a) `stratus run --roles gateway` (every
 * event durable in Kafka before its ack) and (b) bench/baselines/grpc-ceiling (acks on decode).
 * Sustained acks/s and ack latency; ratio Stratus / ceiling, target >= 0.7.
 */
import { randomUUID } from 'node:crypto';
import { deleteTopics } from '../../src/kafka/admin.js';
import { topology } from '../../src/topology.js';
import { loadConfig } from '../../src/config.js';
import type { LoadgenSummary } from '../../loadgen/summary.js';
import { unusedPort } from '../../test/helpers/ports.js';
import { dist, runJson, startService, STRATUS_BIN } from '../child.js';
import { ratio, type BenchContext, type Scenario, type Side } from '../scenario.js';

async function loadgen(ctx: BenchContext, target: string, fleet: { devices: number; totalRate: number; durationS: number; warmupS: number; workers: number }): Promise<LoadgenSummary> {
  const [summary] = await runJson<LoadgenSummary>(process.execPath, [
    STRATUS_BIN, 'loadgen', '--json', '--ack-only', '--target', target,
    '--devices', String(fleet.devices), '--total-rate', String(fleet.totalRate), '--connections', String(Math.ceil(fleet.devices / 100)),
    '--duration', `${fleet.durationS}s`, '--warmup', `${fleet.warmupS}s`, '--drain', '15s', '--seed', '1', '--workers', String(fleet.workers),
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

function side(name: string, s: LoadgenSummary): Side {
  const ack = s.latency.ack;
  // A latency with no samples (no event of the window acked before the drain ended) is left out.
  const figures: Record<string, number> = {
    offeredPerS: Number(s.options.totalRate),
    ackedPerS: ackedInWindowPerS(s),
    ackP50Ms: ack?.p50Ms ?? NaN,
    ackP99Ms: ack?.p99Ms ?? NaN,
    ackP999Ms: ack?.p999Ms ?? NaN,
    sendLagP99Ms: s.latency.sendLag?.p99Ms ?? NaN,
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
    // Offered beyond what either side takes on this kind of machine, so both run saturated.
    const fleet = ctx.quick ? { devices: 200, totalRate: 8000, durationS: 4, warmupS: 2, workers: 1 } : { devices: 1000, totalRate: 50000, durationS: 20, warmupS: 5, workers: 2 };
    const ceiling = await startService(process.execPath, [dist('bench', 'baselines', 'grpc-ceiling.js')], /listening on (\S+)/);
    let ceilingSummary: LoadgenSummary;
    try {
      ceilingSummary = await loadgen(ctx, ceiling.match[1]!, fleet);
    } finally {
      await ceiling.stop();
    }
    const prefix = `bench.${randomUUID().slice(0, 8)}.`;
    const env = { STRATUS_KAFKA_TOPIC_PREFIX: prefix, STRATUS_REDIS_KEY_PREFIX: `${prefix}:`, STRATUS_GATEWAY_INFLIGHT_MAX: '100000', STRATUS_REDIS_DEVICE_STATE_TTL_MS: '600000' };
    const port = await unusedPort();
    const engine = await startService(process.execPath, [STRATUS_BIN, 'run', '--roles', 'gateway', '--grpc-port', String(port), '--http-port', String(await unusedPort()), '--instance-id', `bench-${port}`], /stratus run: gateway/, { env });
    let stratusSummary: LoadgenSummary;
    try {
      stratusSummary = await loadgen(ctx, `127.0.0.1:${port}`, fleet);
    } finally {
      await engine.stop();
      const c = loadConfig({ flags: { 'kafka-topic-prefix': prefix } });
      await deleteTopics(c, [topology(c).topics.events, topology(c).topics.results]).catch(() => {});
    }
    const a = side('Stratus gateway (durable in Kafka)', stratusSummary);
    const b = side('grpc-js ceiling (ack on decode)', ceilingSummary);
    const r = a.figures.ackedPerS! / b.figures.ackedPerS!;
    return {
      id: this.id,
      title: this.title,
      params: { devices: fleet.devices, offeredPerS: fleet.totalRate, durationS: fleet.durationS, warmupS: fleet.warmupS, connections: Math.ceil(fleet.devices / 100), loadgenWorkers: fleet.workers },
      sides: [a, b],
      plots: [
        {
          id: 'ack',
          title: 'Ack latency by percentile, both sides saturated',
          series: [
            { name: a.name, distribution: stratusSummary.latency.ack?.distribution ?? [] },
            { name: b.name, distribution: ceilingSummary.latency.ack?.distribution ?? [] },
          ],
        },
      ],
      ratios: [
        ratio('acked/s: Stratus / ceiling', r, { op: '>=', value: 0.7 }),
        ...(a.figures.ackP99Ms !== undefined && b.figures.ackP99Ms !== undefined ? [ratio('ack p99: Stratus / ceiling', a.figures.ackP99Ms / b.figures.ackP99Ms)] : []),
      ],
      reading: `Offered ${fleet.totalRate.toLocaleString('en-US')} events/s (open loop), Stratus acknowledged ${a.figures.ackedPerS!.toLocaleString('en-US')}/s durably, ${(r * 100).toFixed(0)}% of what a bare grpc-js server acknowledges (${b.figures.ackedPerS!.toLocaleString('en-US')}/s). Both sides are overloaded on purpose, so their ack latencies are queueing times, not service times; a side without ack percentiles acknowledged none of the window's events before the drain ended. A high sendLag p99 means the load generator, not the server, was the limit.`,
    };
  },
};
