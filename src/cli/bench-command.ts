/**
 * `stratus bench`: the benchmark suite (see bench/bench.ts). Exit 0 when every chosen scenario
 * ran (targets met or not: they are reported, not enforced), 1 when one failed to run.
 */
import { join } from 'node:path';
import { runBench, SCENARIOS } from '../../bench/bench.js';
import { PROJECT_ROOT } from '../config.js';
import { ErrorCode, StratusError } from '../errors.js';
import { stackUp } from '../stack/stack.js';
import type { Command } from './command.js';

export const benchCommand: Command = {
  name: 'bench',
  summary: 'Run the benchmark suite against the local stack; write bench/results/*.json and RESULTS.md.',
  usage: 'bench [--quick] [--scenario ID ...]',
  flags: {
    quick: { type: 'boolean', doc: 'short and small (about 2 minutes): checks the bench works; not for quoting' },
    scenario: { type: 'string', multiple: true, doc: `run only these: ${SCENARIOS.map((s) => s.id).join(', ')}` },
    'results-dir': { type: 'string', doc: 'where the run JSON goes (default bench/results)' },
    'results-md': { type: 'string', doc: 'the RESULTS.md to regenerate (default RESULTS.md at the top of the project)' },
  },
  usesConfig: true,
  async run({ flags, config }) {
    const only = (flags.scenario as string[] | undefined) ?? [];
    const unknown = only.filter((id) => !SCENARIOS.some((s) => s.id === id));
    if (unknown.length > 0) throw new StratusError(ErrorCode.USAGE, `--scenario must be one of ${SCENARIOS.map((s) => s.id).join(', ')} (got ${unknown.map((u) => JSON.stringify(u)).join(', ')})`);
    await stackUp(config, { progress: (l) => process.stderr.write(`${l}\n`) });
    const { file, run } = await runBench(config, {
      quick: flags.quick === true,
      only,
      resultsDir: String(flags['results-dir'] ?? join(PROJECT_ROOT, 'bench', 'results')),
      resultsMd: String(flags['results-md'] ?? join(PROJECT_ROOT, 'RESULTS.md')),
      log: (l) => process.stderr.write(`${l}\n`),
    });
    process.stderr.write(`stratus bench: wrote ${file}; ${run.scenarios.length} scenario(s) measured, ${run.failures.length} failed\n`);
    return run.failures.length === 0 ? 0 : 1;
  },
};
