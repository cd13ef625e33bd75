/**
 * The model test from the command line: `node dist/test/model/run.js --runs N [--seed S]
 * [--ops i,j,k] [--ops-max N] [--no-kills] [--shrink N] [--shrink-tries T] [--kind K] [--plain] [--budget-s S]`; --plain: only plain
 * schedules (one Connect stream per device, increasing seqs); --kind shrinks
 * the first failure showing violation kind K, for that kind only. Prints one line per
 * schedule, the shrunk schedule and replay line of the first failure, and a summary; exits 1 when
 * any schedule broke the contract. STRATUS_MODEL_SEED / STRATUS_MODEL_OPS work here too.
 */
import { parseArgs } from 'node:util';
import { ModelEngine } from '../helpers/model-engine.js';
import { campaign, formatSummary, MODEL_ENV, optionsFromEnv } from './campaign.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '10' },
    seed: { type: 'string' },
    ops: { type: 'string' },
    'ops-max': { type: 'string', default: '40' },
    'no-kills': { type: 'boolean', default: false },
    shrink: { type: 'string', default: '24' },
    'shrink-tries': { type: 'string', default: '2' },
    'budget-s': { type: 'string', default: '3600' },
    kind: { type: 'string' },
    plain: { type: 'boolean', default: false },
  },
});

const opts = optionsFromEnv(MODEL_ENV, {
  runs: Number(values.runs),
  budgetMs: Number(values['budget-s']) * 1000,
  shrinkReruns: Number(values.shrink),
  shrinkTries: Number(values['shrink-tries']),
  opsMax: Number(values['ops-max']),
  kills: !values['no-kills'],
  plain: values.plain,
  // The generation options are part of a seed's schedule: the replay line repeats them.
  replayEntry: `node dist/test/model/run.js --ops-max ${values['ops-max']}${values['no-kills'] ? ' --no-kills' : ''}${values.plain ? ' --plain' : ''}`,
  print: (line) => process.stdout.write(`${line}\n`),
});
if (values.seed !== undefined) opts.seed = Number(values.seed) >>> 0;
if (values.kind !== undefined) opts.shrinkKind = values.kind;
if (values.ops !== undefined) opts.ops = values.ops.split(',').map(Number);

const engine = await ModelEngine.start();
let code = 0;
try {
  const s = await campaign(engine, opts);
  process.stdout.write(`${formatSummary(s)}\n`);
  code = s.violations > 0 ? 1 : 0;
} finally {
  await engine.stop();
}
process.exit(code);
