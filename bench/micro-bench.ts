/**
 * The shape of every micro-benchmark under bench/ (one file per hot function, mirroring
 * src/): a tinybench run of the function and its alternatives, in one process, one after the
 * other, so the ratios between them hold on a noisy machine even when the absolutes drift.
 *
 * Prints a table on stderr and JSON on stdout: { name, tasks: [{ name, opsPerS, rmePct,
 * latencyNsP50, latencyNsP99, samples }], baseline, ratios: { task: opsPerS / baseline's } }.
 * `--quick` shortens each task to 100 ms (the test suite's smoke run); the default is 1 s.
 */
import { parseArgs } from 'node:util';
import { Bench } from 'tinybench';

export interface MicroTask {
  name: string;
  fn: () => unknown;
}

export interface MicroResult {
  name: string;
  tasks: { name: string; opsPerS: number; rmePct: number; latencyNsP50: number; latencyNsP99: number; samples: number }[];
  /** The task the others are compared with: the project's own implementation. */
  baseline: string;
  ratios: Record<string, number>;
}

export async function microBench(name: string, tasks: MicroTask[]): Promise<MicroResult> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' } }, strict: false });
  const bench = new Bench({ time: values.quick ? 100 : 1000, warmupTime: values.quick ? 20 : 200 });
  for (const t of tasks) bench.add(t.name, t.fn);
  await bench.run();
  const out: MicroResult = { name, tasks: [], baseline: tasks[0]!.name, ratios: {} };
  for (const t of bench.tasks) {
    const r = t.result;
    if (r.state !== 'completed') throw new Error(`${name}: task ${t.name} did not complete (${r.state})`);
    out.tasks.push({
      name: t.name,
      opsPerS: Math.round(r.throughput.mean),
      rmePct: Math.round(r.throughput.rme * 100) / 100,
      latencyNsP50: Math.round(r.latency.p50 * 1e6),
      latencyNsP99: Math.round(r.latency.p99 * 1e6),
      samples: r.latency.samplesCount,
    });
  }
  const base = out.tasks[0]!.opsPerS;
  for (const t of out.tasks) out.ratios[t.name] = Math.round((t.opsPerS / base) * 1000) / 1000;
  process.stderr.write(`${name}\n`);
  for (const t of out.tasks) process.stderr.write(`  ${t.name.padEnd(44)} ${t.opsPerS.toLocaleString('en-US').padStart(14)} ops/s ±${t.rmePct}%  x${out.ratios[t.name]}\n`);
  process.stdout.write(JSON.stringify(out) + '\n');
  return out;
}
