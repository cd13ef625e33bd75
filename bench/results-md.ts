/**
 * RESULTS.md, rendered from one bench run's JSON and nothing else: the same JSON always gives the
 * same text (the test regenerates it and compares), and no figure is ever typed by hand.
 */
import { linePlot } from '../loadgen/svg-plot.js';
import type { BenchEnvironment } from './environment.js';
import type { LatencyPlot, ScenarioResult } from './scenario.js';

export interface BenchRun {
  version: 1;
  quick: boolean;
  environment: BenchEnvironment;
  scenarios: ScenarioResult[];
  /** Scenarios that failed to run, with why: reported, never hidden. */
  failures: { id: string; error: string }[];
  /**
   * The scenarios asked for with --scenario, when some were (a partial run); absent in a run of
   * every scenario the bench had then (a full run, when not quick too).
   */
  scenarioFilter?: string[];
}

/** Where a section of a merged RESULTS.md comes from, when not from the run named at the top. */
export interface SectionSource {
  file: string;
  environment: BenchEnvironment;
}

/** A run as it sits in the results folder: its file name (date-stamped, so names sort by time) and content. */
export interface RunFile {
  file: string;
  run: BenchRun;
}

const isFull = (r: BenchRun) => !r.quick && r.scenarioFilter === undefined;

/**
 * What RESULTS.md shows, from the runs of the results folder: the newest full run (not quick, no
 * --scenario filter; the newest run of any kind if there is no full one), and over it, for each
 * scenario that a newer non-quick partial run measured, the newest such run's result (replacing the
 * full run's, or added). `from` names the run of every section taken from a partial run.
 */
export function mergeRuns(runs: readonly RunFile[]): { file: string; run: BenchRun; from: Map<string, SectionSource> } | null {
  const sorted = [...runs].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  const base = sorted.filter((r) => isFull(r.run)).at(-1) ?? sorted.at(-1);
  if (base === undefined) return null;
  const from = new Map<string, SectionSource>();
  const scenarios = [...base.run.scenarios];
  let failures = [...base.run.failures];
  for (const p of sorted.filter((r) => r.file > base.file && !r.run.quick && r.run.scenarioFilter !== undefined)) {
    for (const s of p.run.scenarios) {
      const i = scenarios.findIndex((x) => x.id === s.id);
      if (i >= 0) scenarios[i] = s;
      else scenarios.push(s);
      failures = failures.filter((f) => f.id !== s.id);
      from.set(s.id, { file: p.file, environment: p.run.environment });
    }
  }
  return from.size === 0 ? { file: base.file, run: base.run, from } : { file: base.file, run: { ...base.run, scenarios, failures }, from };
}

/** The bench issue's scenarios, in its order; those not measured yet are listed as such. */
export const SCENARIO_PLAN: readonly { id: string; title: string }[] = [
  { id: 'durable-ack', title: '1. Durable ack vs the grpc-js ceiling' },
  { id: 'round-trip', title: '2. Whole round trip: sustainable rate vs bare gRPC, and vs a naive pipeline' },
  { id: 'list-path', title: '3. List path vs a per-event awaited push and redis-benchmark -P 64' },
  { id: 'producer', title: '4. Events topic vs ProducerPerformance' },
  { id: 'sustainable', title: '5. Sustainable throughput at 10,000 devices' },
  { id: 'scaling', title: '6. Scaling: threads and piscina shards' },
  { id: 'runtimes', title: '7. Runtimes × Kafka client × front-end sharding' },
  { id: 'micro', title: '8. Micro-benchmarks' },
  { id: 'security', title: '9. TLS and device tokens vs plaintext' },
  { id: 'replication', title: '10. Replication: Kafka replication 1 vs 3, Redis WAIT on vs off (local clusters)' },
];

/**
 * What a scenario's figures advise, written from the run's own figures (a paragraph after its
 * reading); null when the scenario has no advice or the run lacks the figures.
 */
const ADVICE: Record<string, (s: ScenarioResult) => string | null> = {
  runtimes(s) {
    const engines = s.sides.filter((side) => side.name.startsWith('engine: '));
    const one = engines.filter((side) => side.name.endsWith('1 front end') && side.figures.resultsPerS !== undefined && side.figures.ackedPerS !== undefined);
    if (one.length < 2) return null;
    const name = (side: { name: string }) => side.name.slice('engine: '.length);
    const by = (key: string) => [...one].sort((a, b) => b.figures[key]! - a.figures[key]!);
    const rt = by('resultsPerS');
    const gw = by('ackedPerS');
    const shard = (runtime: string) => {
      const t = engines.find((x) => x.name.includes(runtime) && x.name.endsWith('2 threads'));
      const p = engines.find((x) => x.name.includes(runtime) && x.name.endsWith('2 processes'));
      if (t === undefined || p === undefined || !(p.figures.ackedPerS! > 0) || !(p.figures.resultsPerS! > 0)) return null;
      const r = (k: string) => fmt(t.figures[k]! / p.figures[k]!);
      return `on ${runtime} threads / processes were ${r('ackedPerS')}× the gateway's acks/s, ${r('gatewayRssKiBPerDevice')}× its memory per device and ${r('resultsPerS')}× the whole engine's results/s`;
    };
    const shards = ['Node v24', 'Bun'].map(shard).filter((x): x is string => x !== null);
    // Single runs here differ by up to about a tenth with nothing changed (RESULTS §10: identical
    // sides 0.95×), so cells within NOISE of the best are equivalent; below it they are slower.
    const NOISE = 0.1;
    const best = rt[0]!.figures.resultsPerS!;
    const equal = rt.filter((x) => x.figures.resultsPerS! >= best * (1 - NOISE));
    const slower = rt.filter((x) => x.figures.resultsPerS! < best * (1 - NOISE));
    return (
      `**Which to run.** For the whole engine, the cells within a tenth of the most results per second (${fmt(best)}/s, ${name(rt[0]!)}) are ` +
      `${equal.map((x) => `${name(x)} (${fmt(x.figures.resultsPerS)}/s)`).join(', ')}: run whichever of them fits (on Bun the client is @platformatic/kafka, its only one; on Node librdkafka is the default). ` +
      (slower.length === 0 ? '' : `Slower by more than that: ${slower.map((x) => `${name(x)} (${fmt(x.figures.resultsPerS! / best)}× the best)`).join(', ')}. `) +
      `The gateway alone acknowledged the most on ${name(gw[0]!)} (${fmt(gw[0]!.figures.ackedPerS)}/s; the lowest was ${fmt(gw.at(-1)!.figures.ackedPerS! / gw[0]!.figures.ackedPerS!)}× that). ` +
      'A tenth is what one setting varies by between runs on this shared 2-core machine, so a smaller gap picks nothing: measure on your own hardware with `stratus bench --scenario runtimes`. ' +
      (shards.length === 0 ? '' : `Sharding with \`--threads 2\`: ${shards.join('; ')}. `) +
      '`--shard processes` stays the default: it runs everywhere (Node 20 has no reusePort for threads) and threads did not win the whole engine clearly here; `--shard threads` saves memory where it runs.'
    );
  },
};

const titleOf = (s: ScenarioResult) => SCENARIO_PLAN.find((p) => p.id === s.id)?.title ?? s.title;
const planIndex = (id: string) => {
  const i = SCENARIO_PLAN.findIndex((p) => p.id === id);
  return i < 0 ? SCENARIO_PLAN.length : i;
};
const planOrder = (s: ScenarioResult) => planIndex(s.id);

const fmt = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '–' : Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en-US') : String(Math.round(v * 100) / 100));
const cell = (s: string) => s.replace(/\|/g, '\\|');

/** The folder (under bench/results/plots/) holding the plots of the run in `sourceFile`. */
export const plotsDirOf = (sourceFile: string) => sourceFile.replace(/\.json$/, '');
const plotFile = (s: ScenarioResult, p: LatencyPlot) => `${s.id}-${p.id}.svg`.replace(/[^A-Za-z0-9._-]/g, '_');

/**
 * The latency plots of a run, as SVG files named relative to bench/results/plots/<run>/. Like the
 * text, the same JSON always gives the same bytes.
 */
export function renderPlots(run: BenchRun): { file: string; svg: string }[] {
  return run.scenarios.flatMap((s) =>
    (s.plots ?? []).map((p) => ({
      file: plotFile(s, p),
      svg:
        linePlot({
          id: `${s.id}-${p.id}`,
          title: p.title,
          xLabel: 'percentile',
          yLabel: 'latency (ms, log scale)',
          xLog: 'percentile',
          yLog: true,
          series: p.series.map((x) => ({ name: x.name, points: x.distribution })),
        }) + '\n',
    })),
  );
}

/** The environment table of a run: date, commit, machine, versions. */
function environmentTable(e: BenchEnvironment): string[] {
  return [
    '| date | commit | CPU | cores | RAM | kernel | Node | librdkafka | Kafka | Redis |',
    '|---|---|---|---|---|---|---|---|---|---|',
    `| ${e.date} | ${e.commit} | ${cell(e.cpuModel)} | ${e.cores} | ${e.memoryGiB} GiB | ${e.kernel} | ${e.node} | ${e.librdkafka} | ${e.kafka} | ${e.redis} |`,
  ];
}

/**
 * RESULTS.md for `run` (read from `sourceFile`). `from`: the sections whose scenario comes from
 * another (later, partial) run, each drawn with that run's file, date, commit and environment.
 */
export function renderResultsMd(run: BenchRun, sourceFile: string, from: ReadonlyMap<string, SectionSource> = new Map()): string {
  const e = run.environment;
  const others = [...new Set([...from.values()].map((x) => x.file))].sort();
  const out: string[] = [
    '# RESULTS',
    '',
    `Generated by \`npx stratus bench\` from [bench/results/${sourceFile}](bench/results/${sourceFile}); do not edit by hand.${run.quick ? ' **This is a `--quick` run: short and small, for checking the bench works, not for quoting.**' : ''}`,
    '',
    'Every scenario measures Stratus and its baseline in the same run on the same machine; the machines are shared and noisy, so read the ratios, not the absolutes.',
    '',
    ...environmentTable(e),
    '',
    ...(others.length === 0
      ? []
      : [
          `Measured again or added since by \`--scenario\` runs (${others.map((f) => `[bench/results/${f}](bench/results/${f})`).join(', ')}): ${[...from.keys()].sort((a, b) => planIndex(a) - planIndex(b)).map((id) => `**${id}**`).join(', ')}. Each of those sections names its own run, date, commit and environment; everything else is from the run above.`,
          '',
        ]),
    '## Targets',
    '',
    '| scenario | ratio | measured | target | |',
    '|---|---|---|---|---|',
  ];
  const scenarios = [...run.scenarios].sort((a, b) => planOrder(a) - planOrder(b));
  for (const s of scenarios) {
    for (const r of s.ratios.filter((r) => r.target !== undefined)) {
      out.push(`| ${cell(titleOf(s))} | ${cell(r.name)} | ${fmt(r.value)} | ${r.target!.op} ${r.target!.value} | ${r.met ? 'met' : 'not met'} |`);
    }
  }
  const measured = new Set(run.scenarios.map((s) => s.id));
  const failed = new Map(run.failures.map((f) => [f.id, f.error]));
  for (const p of SCENARIO_PLAN) {
    if (measured.has(p.id)) continue;
    out.push(`| ${cell(p.title)} | | | | ${failed.has(p.id) ? 'failed to run' : 'not measured yet'} |`);
  }
  for (const s of scenarios) {
    out.push('', `## ${titleOf(s)}`, '');
    const source = from.get(s.id);
    if (source !== undefined) out.push(`From a later \`--scenario\` run, [bench/results/${source.file}](bench/results/${source.file}), not the run at the top:`, '', ...environmentTable(source.environment), '');
    out.push(s.reading, '');
    const advice = ADVICE[s.id]?.(s) ?? null;
    if (advice !== null) out.push(advice, '');
    out.push(`Parameters: ${Object.entries(s.params).map(([k, v]) => `${k} ${typeof v === 'number' ? fmt(v) : v}`).join(', ')}.`, '');
    const keys = [...new Set(s.sides.flatMap((side) => Object.keys(side.figures)))];
    out.push(`| | ${s.sides.map((side) => cell(side.name)).join(' | ')} |`, `|---|${s.sides.map(() => '---').join('|')}|`);
    for (const k of keys) out.push(`| ${cell(k)} | ${s.sides.map((side) => fmt(side.figures[k])).join(' | ')} |`);
    out.push('', '| ratio | value | target |', '|---|---|---|');
    for (const r of s.ratios) out.push(`| ${cell(r.name)} | ${fmt(r.value)} | ${r.target === undefined ? '' : `${r.target.op} ${r.target.value}: ${r.met ? 'met' : 'not met'}`} |`);
    for (const p of s.plots ?? []) out.push('', `![${p.title.replace(/[[\]]/g, '')}](bench/results/plots/${plotsDirOf(source?.file ?? sourceFile)}/${plotFile(s, p)})`);
  }
  if (run.failures.length > 0) {
    out.push('', '## Scenarios that failed to run', '');
    for (const f of run.failures) out.push(`- **${f.id}**: ${f.error}`);
  }
  return out.join('\n') + '\n';
}
