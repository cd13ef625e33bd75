/**
 * Scenario 8: micro-benchmarks, one file per hot function mirroring src/ (bench/wire, bench/gateway, bench/processor), each
 * comparing the project's implementation with its alternatives in the same process.
 */
import type { MicroResult } from '../micro-bench.js';
import { dist, runJson } from '../child.js';
import { ratio, type Scenario, type ScenarioResult } from '../scenario.js';

const FILES = ['wire/event-record', 'wire/result-record', 'wire/delivery-frame', 'gateway/session-flush', 'gateway/flush-scheduler', 'processor/compute-worker'];

export const micro: Scenario = {
  id: 'micro',
  title: 'Micro-benchmarks (tinybench)',
  async run(ctx): Promise<ScenarioResult> {
    const all: MicroResult[] = [];
    for (const f of FILES) {
      const results = await runJson<MicroResult>(process.execPath, [dist('bench', `${f}.js`), ...(ctx.quick ? ['--quick'] : [])]);
      for (const r of results) ctx.log(`  ${r.name}: ${r.tasks.map((t) => `${t.name} ${t.opsPerS.toLocaleString('en-US')}/s`).join(', ')}`);
      all.push(...results);
    }
    // One side per implementation role: the project's own, and the best alternative of each file.
    return {
      id: this.id,
      title: this.title,
      params: { files: FILES.join(', '), taskTimeMs: ctx.quick ? 100 : 1000 },
      sides: [
        { name: 'Stratus', figures: Object.fromEntries(all.map((r) => [r.name, r.tasks[0]!.opsPerS])) },
        { name: 'best alternative', figures: Object.fromEntries(all.map((r) => [r.name, Math.max(...r.tasks.slice(1).map((t) => t.opsPerS))])) },
      ],
      ratios: all.map((r) => ratio(`${r.name}: Stratus / best alternative`, r.tasks[0]!.opsPerS / Math.max(...r.tasks.slice(1).map((t) => t.opsPerS)))),
      raw: all,
      reading: 'Operations per second of each hot function against its best alternative in the same process (ratio > 1: ours is faster). Per-task tables with every alternative are in the raw JSON. An operation is what the task name says (one encode, a batch of 256 events, a turn of 1,024 delivery reports). Not here, having no JS of their own to measure: routing a device to a partition (librdkafka\'s native murmur2_random on the key) and the forwarder\'s grouping of results per gateway instance (the Lua deliver script, run inside Redis).',
    };
  },
};
