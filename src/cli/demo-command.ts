/**
 * `stratus demo`: what a newcomer sees after `npm run demo`: the local stack, a real engine, and a
 * simulated fleet through the whole pipeline, measured once the engine is warm (src/demo/demo.ts).
 */
import { join, resolve } from 'node:path';
import { parseDurationS } from '../../loadgen/options.js';
import { PROJECT_ROOT } from '../config.js';
import { DEMO_DEFAULTS, runDemo } from '../demo/demo.js';
import { ErrorCode, StratusError } from '../errors.js';
import type { Command } from './command.js';

const DEVICES_MAX = 100_000;

function positiveInt(raw: string | undefined, flag: string, fallback: number, max: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(n) || n < 1 || n > max) throw new StratusError(ErrorCode.USAGE, `${flag} must be a whole number from 1 to ${max} (got ${JSON.stringify(raw)})`);
  return n;
}

export const demoCommand: Command = {
  name: 'demo',
  summary: 'Start the local stack and an engine, drive a simulated fleet through it once it is warm, and say what was measured.',
  usage: 'demo [--devices N] [--rate R] [--duration D] [--warmup-max D] [--report DIR]',
  flags: {
    devices: { type: 'string', doc: `simulated devices (default ${DEMO_DEFAULTS.devices})` },
    rate: { type: 'string', doc: `events per second per device (default ${DEMO_DEFAULTS.ratePerDevice})` },
    duration: { type: 'string', doc: `measured window, after the warm-up (default ${DEMO_DEFAULTS.measureS}s)` },
    'warmup-max': { type: 'string', doc: `longest warm-up: measure even if latency has not settled by then, and say so (default ${DEMO_DEFAULTS.warmupMaxS}s)` },
    report: { type: 'string', doc: 'folder for the measured run\'s report.html, summary.json and histograms (default .stratus/demo)' },
  },
  usesConfig: true,
  async run({ flags, config }) {
    const str = (name: string) => (flags[name] === undefined ? undefined : String(flags[name]));
    const rate = str('rate') === undefined ? DEMO_DEFAULTS.ratePerDevice : Number(str('rate'));
    if (!(Number.isFinite(rate) && rate > 0 && rate <= 1000)) throw new StratusError(ErrorCode.USAGE, `--rate must be a number above 0, at most 1000 (got ${JSON.stringify(str('rate'))})`);
    const options = {
      devices: positiveInt(str('devices'), '--devices', DEMO_DEFAULTS.devices, DEVICES_MAX),
      ratePerDevice: rate,
      // Whole seconds: the load generator's per-second series are what the window is read from.
      measureS: Math.ceil(str('duration') === undefined ? DEMO_DEFAULTS.measureS : parseDurationS('--duration', str('duration')!, false)),
      warmupMaxS: str('warmup-max') === undefined ? DEMO_DEFAULTS.warmupMaxS : parseDurationS('--warmup-max', str('warmup-max')!, true),
      reportDir: resolve(str('report') ?? join(PROJECT_ROOT, '.stratus', 'demo')),
    };
    return runDemo(config, options, {
      say: (line) => process.stdout.write(`${line}\n`),
      progress: (line) => process.stderr.write(`${line}\n`),
    });
  },
};
