/**
 * Scenario 7: runtimes. Node 20 (the machine's), Node 24 LTS and Bun, from the npm registry
 * (scripts/setup-runtimes.sh, which this scenario runs first: nothing else needs them, so set-up does
 * not fetch them unless asked; Node 24 runs a tree whose librdkafka addon was rebuilt against its
 * headers). (1) The load generator on each runtime, against the bare grpc-js ceiling server (on
 * Node 20), closed loop at a schedule beyond what it drives: the acks/s it achieves and its own CPU.
 * (2) The gateway (`stratus run --roles gateway`, durable acks) on Node 20 and Node 24, driven by
 * the same Node 20 load generator. (3) The gateway on Bun: tried, and what fails is recorded.
 */
import { spawnSync } from 'node:child_process';
import { cpuSeconds, dist, startService } from '../child.js';
import { ensureRuntimes, runtimes, type Runtime } from '../runtimes.js';
import { loadFigures, loadgen, startEngine, type Fleet } from '../engine.js';
import { ratio, type BenchContext, type Scenario, type Side } from '../scenario.js';

/** Tries `stratus run --roles gateway` on Bun; returns null if it started (then it is stopped), else why not. */
function bunGateway(bun: Runtime): string | null {
  const r = spawnSync(bun.exec, [bun.bin, 'run', '--roles', 'gateway', '--grpc-port', '0', '--http-port', '0', '--instance-id', 'bench-bun'], { encoding: 'utf8', timeout: 15_000, env: { ...process.env, STRATUS_KAFKA_TOPIC_PREFIX: 'bench.bun.', STRATUS_REDIS_KEY_PREFIX: 'bench.bun.:' } });
  const text = `${r.stdout}\n${r.stderr}`;
  // The engine's `started` line (JSON, src/log.ts).
  if (/"msg":"started"/.test(text)) return null;
  const line = text.split('\n').find((l) => /error/i.test(l)) ?? text.trim().split('\n')[0] ?? `exit ${r.status}`;
  return line.trim().slice(0, 300);
}

export const runtimesScenario: Scenario = {
  id: 'runtimes',
  title: 'Runtimes: Node 20, Node 24, Bun',
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
        sides.push({ name: `load generator on ${r.name}`, figures: { ackedPerS: f.ackedPerS!, ackP99Ms: f.ackP99Ms ?? NaN, loadgenCores: f.loadgenCores!, loadgenRssMiB: Math.round(s.footprint.rssBytesPeak / 1048576) } });
      }
    } finally {
      await ceiling.stop();
    }
    const gw: Record<string, number> = {};
    if (!ctx.quick) {
      for (const r of [rt.node20, rt.node24]) {
        const engine = await startEngine({ roles: 'gateway', runtime: r });
        try {
          const pid = engine.service.child.pid!;
          const before = cpuSeconds(pid);
          const s = await loadgen(ctx, engine.target, lgFleet);
          const f = loadFigures(s);
          gw[r.name] = f.ackedPerS!;
          sides.push({ name: `gateway on ${r.name}`, figures: { ackedPerS: f.ackedPerS!, ackP99Ms: f.ackP99Ms ?? NaN, serverCpuUsPerAck: Math.round(((cpuSeconds(pid) - before) / Math.max(s.counts.acked, 1)) * 1e7) / 10 } });
        } finally {
          await engine.stop();
        }
      }
    }
    for (const s of sides) for (const [k, v] of Object.entries(s.figures)) if (!Number.isFinite(v)) delete s.figures[k];
    const bunGatewayError = bunGateway(rt.bun);
    const n20 = rt.node20.name;
    return {
      id: this.id,
      title: this.title,
      params: { node20: rt.node20.name, node24: rt.node24.name, bun: rt.bun.name, devices: lgFleet.devices, schedulePerS: lgFleet.totalRate, loop: 'closed, ack-only', durationS: lgFleet.durationS, gatewayOnBun: bunGatewayError === null ? 'runs' : 'does not run' },
      sides,
      ratios: [
        ratio(`load generator acks/s: ${rt.node24.name} / ${n20}`, lg[rt.node24.name]! / lg[n20]!),
        ratio(`load generator acks/s: ${rt.bun.name} / ${n20}`, lg[rt.bun.name]! / lg[n20]!),
        ...(ctx.quick ? [] : [ratio(`gateway acks/s: ${rt.node24.name} / ${n20}`, gw[rt.node24.name]! / gw[n20]!)]),
      ],
      reading:
        `Against the same bare grpc-js server, the load generator drove ${Object.entries(lg).map(([k, v]) => `${v.toLocaleString('en-US')} acks/s on ${k}`).join(', ')}. ` +
        (ctx.quick ? 'The gateway runs are not in --quick. ' : `The gateway acknowledged ${Object.entries(gw).map(([k, v]) => `${v.toLocaleString('en-US')} events/s durably on ${k}`).join(' and ')}. `) +
        (bunGatewayError === null
          ? 'The gateway also starts on Bun.'
          : `The gateway does not run on Bun. It tried (\`bun bin/stratus.js run --roles gateway\`) and stopped loading @confluentinc/kafka-javascript, a native addon written with NAN against V8's C++ API and built here for Node 20's ABI: "${bunGatewayError}". Building the addon for Bun's ABI was not tried; Bun implements only part of the V8 API that NAN addons call. The load generator runs on Bun because the CLI imports a command only when it runs, so \`stratus loadgen\` never loads the addon.`),
      raw: { bunGatewayError },
    };
  },
};
