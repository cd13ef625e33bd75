/**
 * Scenario 7: runtimes x Kafka client x front-end sharding. Node 20 (the machine's), Node 24 LTS and
 * Bun, from the npm registry (scripts/setup-runtimes.sh, which this scenario runs first: nothing
 * else needs them, so set-up does not fetch them unless asked; Node 24 runs a tree whose librdkafka
 * addon was rebuilt against its headers).
 *
 * (1) The load generator on each runtime, against the bare grpc-js ceiling server (on Node 20),
 *     closed loop at a schedule beyond what it drives: the acks/s it achieves and its own CPU.
 * (2) The engine on each runtime with each Kafka client it can load (librdkafka: Node only;
 *     @platformatic/kafka: Node >= 22.22 and Bun), driven by the same Node 20 load generator:
 *     the gateway alone (durable acks, closed loop) and the whole engine (results, closed loop),
 *     with one front end, then --threads 2 sharded by worker threads (reusePort) and by processes.
 *     Per cell: acks/s, ack p99, results/s, result p99, engine CPU per ack and RSS per device.
 */
import { readFileSync } from 'node:fs';
import { cpuSeconds, dist, startService } from '../child.js';
import { ensureRuntimes, runtimes, type Runtime } from '../runtimes.js';
import { loadFigures, loadgen, startEngine, type Fleet } from '../engine.js';
import { ratio, type BenchContext, type Scenario, type Side } from '../scenario.js';

/** One cell of the matrix: where the engine runs, which Kafka client it uses, and how its front end is sharded. */
interface Cell {
  runtime: Runtime;
  client: 'native' | 'platformatic';
  /** 1: one front end; else 2 front ends sharded by threads or processes. */
  shard: 'one' | 'threads' | 'processes';
}

const cellName = (c: Cell) => `${c.runtime.name} · ${c.client === 'native' ? 'librdkafka' : '@platformatic/kafka'} · ${c.shard === 'one' ? '1 front end' : `2 ${c.shard}`}`;

function rssBytes(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      total += m === null ? 0 : Number(m[1]) * 1024;
    } catch {
      // Gone since the listing.
    }
  }
  return total;
}

/** Runs one cell: the gateway alone, then the whole engine; figures of both. */
async function runCell(ctx: BenchContext, c: Cell, fleet: Fleet): Promise<Record<string, number>> {
  const env: Record<string, string> = { STRATUS_KAFKA_CLIENT: c.client };
  const threads = c.shard === 'one' ? undefined : 2;
  const shardArgs = c.shard === 'one' ? {} : { threads, shard: c.shard };
  const figures: Record<string, number> = {};
  for (const roles of ['gateway', undefined] as const) {
    const engine = await startEngine({ roles, runtime: c.runtime, env, ...shardArgs });
    try {
      const pids = engine.pids();
      const before = pids.map(cpuSeconds);
      let rssPeak = 0;
      const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssBytes(engine.pids()))), 500);
      const s = await loadgen(ctx, engine.target, roles === 'gateway' ? { ...fleet, extra: ['--ack-only', '--closed-loop'] } : { ...fleet, extra: ['--closed-loop'] }).finally(() => clearInterval(sampler));
      const cpu = engine.pids().reduce((sum, pid) => sum + cpuSeconds(pid), 0) - before.reduce((a, b) => a + b, 0);
      const f = loadFigures(s);
      if (roles === 'gateway') {
        Object.assign(figures, { ackedPerS: f.ackedPerS!, ackP99Ms: f.ackP99Ms ?? NaN, gatewayCpuUsPerAck: Math.round((cpu / Math.max(s.counts.acked, 1)) * 1e7) / 10, gatewayRssKiBPerDevice: Math.round(rssPeak / 1024 / fleet.devices) });
      } else {
        Object.assign(figures, { roundTripAckedPerS: f.ackedPerS!, resultsPerS: f.resultsPerS!, resultP99Ms: f.resultP99Ms ?? NaN, engineCpuUsPerResult: Math.round((cpu / Math.max(s.counts.results ?? 0, 1)) * 1e7) / 10, missing: f.missing ?? NaN, duplicates: f.duplicates ?? NaN });
      }
    } finally {
      await engine.stop();
    }
  }
  for (const [k, v] of Object.entries(figures)) if (!Number.isFinite(v)) delete figures[k];
  return figures;
}

export const runtimesScenario: Scenario = {
  id: 'runtimes',
  title: 'Runtimes × Kafka client × front-end sharding',
  async run(ctx: BenchContext) {
    await ensureRuntimes(ctx);
    const rt = runtimes();
    const lgFleet: Fleet = ctx.quick
      ? { devices: 200, totalRate: 20000, durationS: 2, warmupS: 1, drainS: 2, extra: ['--ack-only', '--closed-loop'] }
      : { devices: 1000, totalRate: 50000, durationS: 10, warmupS: 3, drainS: 5, extra: ['--ack-only', '--closed-loop'] };
    const sides: Side[] = [];
    const ceiling = await startService(process.execPath, [dist('bench', 'baselines', 'grpc-ceiling.js')], /listening on (\S+)/);
    const lg: Record<string, number> = {};
    try {
      for (const r of [rt.node20, rt.node24, rt.bun]) {
        const s = await loadgen(ctx, ceiling.match[1]!, { ...lgFleet, runtime: r });
        const f = loadFigures(s);
        lg[r.name] = f.ackedPerS!;
        sides.push({ name: `load generator on ${r.name} (bare grpc-js server)`, figures: { ackedPerS: f.ackedPerS!, ackP99Ms: f.ackP99Ms ?? NaN, loadgenCores: f.loadgenCores!, loadgenRssMiB: Math.round(s.footprint.rssBytesPeak / 1048576) } });
      }
    } finally {
      await ceiling.stop();
    }
    // librdkafka cannot load on Bun (a NAN addon; Bun lacks V8 C++ symbols it calls) and
    // @platformatic/kafka 2.x cannot run on Node 20 (src/kafka/factory.ts): those cells do not exist.
    const cells: Cell[] = ctx.quick
      ? [{ runtime: rt.node24, client: 'platformatic', shard: 'one' }, { runtime: rt.bun, client: 'platformatic', shard: 'one' }]
      : [
          { runtime: rt.node20, client: 'native', shard: 'one' },
          { runtime: rt.node24, client: 'native', shard: 'one' },
          { runtime: rt.node24, client: 'platformatic', shard: 'one' },
          { runtime: rt.bun, client: 'platformatic', shard: 'one' },
          { runtime: rt.node20, client: 'native', shard: 'processes' },
          { runtime: rt.node24, client: 'native', shard: 'processes' },
          { runtime: rt.node24, client: 'native', shard: 'threads' },
          { runtime: rt.bun, client: 'platformatic', shard: 'processes' },
          { runtime: rt.bun, client: 'platformatic', shard: 'threads' },
        ];
    const engineFleet: Fleet = ctx.quick ? { devices: 100, totalRate: 20000, durationS: 2, warmupS: 1, drainS: 3 } : { devices: 1000, totalRate: 50000, durationS: 10, warmupS: 3, drainS: 8 };
    const byCell = new Map<string, Record<string, number>>();
    const failed: Record<string, string> = {};
    for (const c of cells) {
      const name = cellName(c);
      ctx.log(`  engine: ${name}`);
      try {
        const figures = await runCell(ctx, c, engineFleet);
        byCell.set(name, figures);
        sides.push({ name: `engine: ${name}`, figures });
      } catch (err) {
        failed[name] = String((err as Error).message ?? err).split('\n')[0]!.slice(0, 300);
        ctx.log(`  ${name} failed: ${failed[name]}`);
      }
    }
    for (const s of sides) for (const [k, v] of Object.entries(s.figures)) if (!Number.isFinite(v)) delete s.figures[k];
    const n20 = rt.node20.name;
    const cell = (runtime: Runtime, client: Cell['client'], shard: Cell['shard']) => byCell.get(cellName({ runtime, client, shard }));
    const ratioOf = (label: string, a: Record<string, number> | undefined, b: Record<string, number> | undefined, key: string) =>
      a?.[key] !== undefined && b?.[key] !== undefined && b[key] > 0 ? [ratio(label, a[key] / b[key])] : [];
    const base = cell(rt.node20, 'native', 'one');
    const ratios = [
      ratio(`load generator acks/s: ${rt.node24.name} / ${n20}`, lg[rt.node24.name]! / lg[n20]!),
      ratio(`load generator acks/s: ${rt.bun.name} / ${n20}`, lg[rt.bun.name]! / lg[n20]!),
      ...ratioOf(`gateway acks/s: ${rt.node24.name} librdkafka / ${n20} librdkafka`, cell(rt.node24, 'native', 'one'), base, 'ackedPerS'),
      ...ratioOf(`gateway acks/s: ${rt.node24.name} @platformatic/kafka / librdkafka`, cell(rt.node24, 'platformatic', 'one'), cell(rt.node24, 'native', 'one'), 'ackedPerS'),
      ...ratioOf(`gateway acks/s: ${rt.bun.name} @platformatic/kafka / ${n20} librdkafka`, cell(rt.bun, 'platformatic', 'one'), base, 'ackedPerS'),
      ...ratioOf(`round-trip results/s: ${rt.node24.name} @platformatic/kafka / librdkafka`, cell(rt.node24, 'platformatic', 'one'), cell(rt.node24, 'native', 'one'), 'resultsPerS'),
      ...ratioOf(`round-trip results/s: ${rt.bun.name} @platformatic/kafka / ${n20} librdkafka`, cell(rt.bun, 'platformatic', 'one'), base, 'resultsPerS'),
      ...ratioOf(`gateway acks/s, 2 front ends on ${rt.node24.name}: threads / processes`, cell(rt.node24, 'native', 'threads'), cell(rt.node24, 'native', 'processes'), 'ackedPerS'),
      ...ratioOf(`gateway CPU per ack, 2 front ends on ${rt.node24.name}: threads / processes`, cell(rt.node24, 'native', 'threads'), cell(rt.node24, 'native', 'processes'), 'gatewayCpuUsPerAck'),
      ...ratioOf(`gateway RSS per device, 2 front ends on ${rt.node24.name}: threads / processes`, cell(rt.node24, 'native', 'threads'), cell(rt.node24, 'native', 'processes'), 'gatewayRssKiBPerDevice'),
      ...ratioOf(`gateway acks/s, 2 front ends on ${rt.bun.name}: threads / processes`, cell(rt.bun, 'platformatic', 'threads'), cell(rt.bun, 'platformatic', 'processes'), 'ackedPerS'),
    ];
    const best = [...byCell.entries()].filter(([, f]) => f.resultsPerS !== undefined).sort((a, b) => b[1].resultsPerS! - a[1].resultsPerS!)[0];
    return {
      id: this.id,
      title: this.title,
      params: { node20: rt.node20.name, node24: rt.node24.name, bun: rt.bun.name, loadgenDevices: lgFleet.devices, engineDevices: engineFleet.devices, schedulePerS: lgFleet.totalRate, loop: 'closed (gateway: ack-only; round trip: results)', durationS: lgFleet.durationS, loadgenRuntime: n20 },
      sides,
      ratios,
      reading:
        `Against the same bare grpc-js server, the load generator drove ${Object.entries(lg).map(([k, v]) => `${v.toLocaleString('en-US')} acks/s on ${k}`).join(', ')}. ` +
        `The engine ran in ${byCell.size} of ${cells.length} cells` +
        (Object.keys(failed).length === 0 ? '. ' : ` (failed: ${Object.entries(failed).map(([k, v]) => `${k}: ${v}`).join('; ')}). `) +
        (best === undefined ? '' : `The most results per second came from ${best[0]} (${best[1].resultsPerS!.toLocaleString('en-US')}/s). `) +
        'librdkafka does not load on Bun and @platformatic/kafka 2.x does not run on Node 20, so those cells are absent; worker threads need reusePort, which Node 20 lacks.',
      raw: { failed },
    };
  },
};
