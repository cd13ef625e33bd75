/**
 * `stratus report compare A B [--out DIR]`: compares two `stratus loadgen --report` folders without
 * running any load. Writes DIR/compare.html (default: B's folder, next to B's report.html) with both
 * runs' latency-by-percentile curves overlaid and a table of deltas, and prints the table. A is the
 * baseline. A folder that is not a report is one error line naming it.
 */
import { compareReports, deltaText } from '../../loadgen/compare.js';
import { ErrorCode, StratusError } from '../errors.js';
import type { Command } from './command.js';

const USAGE = 'report compare A B [--out DIR]';

export const reportCommand: Command = {
  name: 'report',
  summary: 'Compare two load-generator reports: latency curves overlaid and a table of deltas (compare.html).',
  usage: USAGE,
  flags: {
    out: { type: 'string', doc: 'folder to write compare.html into (default: B)' },
  },
  usesConfig: false,
  words: { subcommands: { compare: 2 } },
  async run({ positionals, flags }) {
    if (positionals.length !== 3) {
      throw new StratusError(ErrorCode.USAGE, `usage: stratus ${USAGE} (A is the baseline; each a \`stratus loadgen --report\` folder)`);
    }
    const [, dirA, dirB] = positionals as [string, string, string];
    const outDir = typeof flags.out === 'string' ? flags.out : dirB;
    const { file, a, b } = compareReports(dirA, dirB, outDir);
    process.stdout.write(deltaText(a, b));
    process.stderr.write(`stratus report: wrote ${file}\n`);
    return 0;
  },
};
