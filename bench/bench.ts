/**
 * `stratus bench`: runs the scenarios against the local stack, writes the raw run to
 * bench/results/<date>-<commit>.json (with the environment, and the --scenario filter if one was
 * given), and regenerates RESULTS.md from the newest full run in that folder (the newest run of any
 * kind if there is no full run yet) with newer `--scenario` runs' scenarios over it.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../src/config.js';
import { benchEnvironment } from './environment.js';
import { mergeRuns, plotsDirOf, renderPlots, renderResultsMd, type BenchRun } from './results-md.js';
import type { Scenario } from './scenario.js';
import { archive } from './scenarios/archive.js';
import { durableAck } from './scenarios/durable-ack.js';
import { listPath } from './scenarios/list-path.js';
import { micro } from './scenarios/micro.js';
import { producer } from './scenarios/producer.js';
import { replication } from './scenarios/replication.js';
import { roundTrip } from './scenarios/round-trip.js';
import { runtimesScenario } from './scenarios/runtimes.js';
import { scaling } from './scenarios/scaling.js';
import { security } from './scenarios/security.js';
import { sustainable } from './scenarios/sustainable.js';

export const SCENARIOS: readonly Scenario[] = [durableAck, roundTrip, listPath, producer, sustainable, scaling, replication, runtimesScenario, micro, security, archive];

export interface BenchOptions {
  quick: boolean;
  /** Scenario ids to run; all when empty. */
  only: string[];
  resultsDir: string;
  resultsMd: string;
  log(line: string): void;
}

export async function runBench(config: Config, opts: BenchOptions): Promise<{ file: string; run: BenchRun }> {
  const chosen = opts.only.length === 0 ? SCENARIOS : SCENARIOS.filter((s) => opts.only.includes(s.id));
  const run: BenchRun = { version: 1, quick: opts.quick, environment: await benchEnvironment(config), scenarios: [], failures: [] };
  // A partial run: RESULTS.md takes its scenarios over the newest full run's (results-md.ts mergeRuns).
  if (opts.only.length > 0) run.scenarioFilter = [...opts.only];
  for (const s of chosen) {
    opts.log(`bench: ${s.title}`);
    try {
      run.scenarios.push(await s.run({ quick: opts.quick, config, log: opts.log }));
    } catch (err) {
      opts.log(`bench: ${s.id} failed: ${(err as Error).message}`);
      run.failures.push({ id: s.id, error: (err as Error).message });
    }
  }
  mkdirSync(opts.resultsDir, { recursive: true });
  const stamp = run.environment.date.replace(/:\d\d\.\d+Z$/, '').replace(/[-:]/g, '').replace('T', '-');
  const file = `${stamp}-${run.environment.commit}${opts.quick ? '-quick' : ''}.json`;
  writeFileSync(join(opts.resultsDir, file), JSON.stringify(run, null, 2) + '\n');
  regenerateResultsMd(opts.resultsDir, opts.resultsMd);
  return { file, run };
}

/**
 * RESULTS.md from the results folder: the newest full run (not quick, no --scenario; else the
 * newest run of any kind), with each scenario a newer non-quick `--scenario` run measured taken
 * from the newest such run, its section naming that run (mergeRuns in results-md.ts). The plots of
 * each run shown are drawn into <resultsDir>/plots/<run>/, and the plots of any other run are
 * removed (they are derived from the JSON, which stays).
 */
export function regenerateResultsMd(resultsDir: string, resultsMd: string): void {
  const files = readdirSync(resultsDir).filter((f) => f.endsWith('.json')).sort();
  const merged = mergeRuns(files.map((file) => ({ file, run: JSON.parse(readFileSync(join(resultsDir, file), 'utf8')) as BenchRun })));
  if (merged === null) return;
  const { file, run, from } = merged;
  const plotsRoot = join(resultsDir, 'plots');
  rmSync(plotsRoot, { recursive: true, force: true });
  for (const s of run.scenarios) {
    const plots = renderPlots({ ...run, scenarios: [s] });
    if (plots.length === 0) continue;
    const dir = join(plotsRoot, plotsDirOf(from.get(s.id)?.file ?? file));
    mkdirSync(dir, { recursive: true });
    for (const p of plots) writeFileSync(join(dir, p.file), p.svg);
  }
  writeFileSync(resultsMd, renderResultsMd(run, file, from));
}
