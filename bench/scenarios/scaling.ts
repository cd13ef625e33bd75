/**
 * Scenario 6: scaling. (a) Front-end threads: `stratus run --roles gateway --threads 1` vs
 * `--threads 2` (gateway processes sharing the port, node:cluster), the same closed-loop fleet as
 * the durable ack, each at its maximum; ratio 2 / 1, target >= 1.6. (b) piscina shards for the
 * processor's compute (processor.threads off / 1 / 2) with the CPU-heavy `sha256` processor, the
 * whole engine running, offered more than one thread computes: results/s inside the window.
 */
import { availableParallelism } from 'node:os';
import type { LoadgenSummary } from '../../loadgen/summary.js';
import { kafkaPid, loadFigures, loadgen, perSInWindow, startEngine, withCpu, type Fleet } from '../engine.js';
import { ratio, type BenchContext, type Scenario, type Side } from '../scenario.js';

async function frontEnd(ctx: BenchContext, threads: number, fleet: Fleet): Promise<{ side: Side; summary: LoadgenSummary }> {
  const engine = await startEngine({ roles: 'gateway', threads });
  try {
    const pids = [...engine.pids(), kafkaPid(ctx)];
    const { result: s, cpuS } = await withCpu(pids, () => loadgen(ctx, engine.target, fleet));
    const gatewayCpu = cpuS.slice(0, -1).reduce((a, b) => a + b, 0);
    const figures = loadFigures(s);
    figures.gatewayCores = Math.round((gatewayCpu / s.runS) * 100) / 100;
    figures.kafkaBrokerCores = Math.round((cpuS.at(-1)! / s.runS) * 100) / 100;
    return { side: { name: `gateway, --threads ${threads}`, figures }, summary: s };
  } finally {
    await engine.stop();
  }
}

async function shards(ctx: BenchContext, threads: number, fleet: Fleet): Promise<{ side: Side; summary: LoadgenSummary }> {
  const engine = await startEngine({ env: { STRATUS_PROCESSOR_THREADS: String(threads) } });
  try {
    const s = await loadgen(ctx, engine.target, fleet);
    const f = loadFigures(s);
    // Under overload the backlog outlives the drain: what is left is not lost (it was acked and
    // stays in Kafka), so only the rates and the checker's wrong/duplicate counts are reported.
    const figures: Record<string, number> = { resultsPerS: perSInWindow(s, 'resultsPerS'), ackedPerS: f.ackedPerS!, sendLagP99Ms: f.sendLagP99Ms ?? 0, loadgenCores: f.loadgenCores!, duplicates: f.duplicates!, wrong: f.wrong! };
    return { side: { name: `sha256, processor threads ${threads === 0 ? 'off' : threads}`, figures }, summary: s };
  } finally {
    await engine.stop();
  }
}

export const scaling: Scenario = {
  id: 'scaling',
  title: 'Scaling: threads and piscina shards',
  async run(ctx) {
    const fe: Fleet = ctx.quick
      ? { devices: 200, totalRate: 8000, durationS: 3, warmupS: 2, drainS: 3, extra: ['--ack-only', '--closed-loop'] }
      : { devices: 1000, totalRate: 50000, durationS: 15, warmupS: 5, workers: 2, extra: ['--ack-only', '--closed-loop'] };
    const oneRun = await frontEnd(ctx, 1, fe);
    const twoRun = await frontEnd(ctx, 2, fe);
    const [one, two] = [oneRun.side, twoRun.side];
    // sha256 does max(1, value) rounds, value uniform in -1000..1000: about 250 rounds an event.
    // Not in --quick (its 2-minute budget): piscina's threads start too slowly for a window of seconds.
    const heavy: Fleet = { devices: 500, totalRate: 4000, durationS: 15, warmupS: 5, drainS: 3, extra: ['--type', 'sha256'] };
    const sha = ctx.quick ? [] : [await shards(ctx, 0, heavy), await shards(ctx, 1, heavy), await shards(ctx, 2, heavy)];
    const r = (a: Side, b: Side, k: string) => a.figures[k]! / Math.max(b.figures[k]!, 1);
    const t = r(two, one, 'ackedPerS');
    const [off, s1, s2] = sha;
    return {
      id: this.id,
      title: this.title,
      params: { cores: availableParallelism(), frontEndDevices: fe.devices, frontEndSchedulePerS: fe.totalRate, frontEndLoop: 'closed, ack-only', durationS: fe.durationS, ...(off === undefined ? { sha256: 'not in --quick' } : { sha256Devices: heavy.devices, sha256OfferedPerS: heavy.totalRate }) },
      sides: [one, two, ...sha.map((x) => x.side)],
      ratios: [
        ratio('acked/s: 2 gateway threads / 1', t, { op: '>=', value: 1.6 }),
        ...(off === undefined || s1 === undefined || s2 === undefined
          ? []
          : [ratio('results/s (sha256): 1 shard / off', r(s1.side, off.side, 'resultsPerS')), ratio('results/s (sha256): 2 shards / off', r(s2.side, off.side, 'resultsPerS'))]),
      ],
      reading:
        `Two gateway processes acknowledged ${two.figures.ackedPerS!.toLocaleString('en-US')} events/s against one's ${one.figures.ackedPerS!.toLocaleString('en-US')} (${t.toFixed(2)}x). ` +
        `This machine has ${availableParallelism()} cores, shared by the gateway processes, the Kafka broker and the load generator (their cores are in the table): a second gateway process can only go faster by the CPU the others leave it. ` +
        (off === undefined || s1 === undefined || s2 === undefined
          ? 'The piscina shards part does not run in --quick.'
          : `With the CPU-heavy sha256 processor offered ${heavy.totalRate.toLocaleString('en-US')} events/s, the engine produced ${off.side.figures.resultsPerS!.toLocaleString('en-US')} results/s with compute on the consumer's thread, ${s1.side.figures.resultsPerS!.toLocaleString('en-US')} with one piscina thread and ${s2.side.figures.resultsPerS!.toLocaleString('en-US')} with two; the rest of the offered load waited in Kafka (acked, not lost).`),
      plots: [
        {
          id: 'ack',
          title: 'Ack latency by percentile: 1 vs 2 gateway threads (closed loop)',
          series: [oneRun, twoRun].map((x) => ({ name: x.side.name, distribution: x.summary.latency.ack?.distribution ?? [] })),
        },
        ...(sha.length === 0
          ? []
          : [{ id: 'result', title: 'Result latency by percentile, sha256: processor threads off / 1 / 2', series: sha.map((x) => ({ name: x.side.name, distribution: x.summary.latency.result?.distribution ?? [] })) }]),
      ],
    };
  },
};
