import { formatConfig, OPTIONS, envName, flagName } from '../config.js';
import type { Command } from './command.js';

export const configCommand: Command = {
  name: 'config',
  summary: 'Show the effective configuration (secrets masked) or the table of options.',
  usage: 'config print [config flags]\n       stratus config options',
  flags: {},
  usesConfig: true,
  async run({ positionals, config }) {
    const sub = positionals[0] ?? 'print';
    if (sub === 'print') {
      process.stdout.write(formatConfig(config) + '\n');
      return 0;
    }
    if (sub === 'options') {
      for (const [key, spec] of Object.entries(OPTIONS)) {
        process.stdout.write(`${key}\t--${flagName(key)}\t${envName(key)}\t${spec.default}\t${'unit' in spec ? spec.unit : ''}\t${spec.doc}\n`);
      }
      return 0;
    }
    process.stderr.write(`stratus config: unknown subcommand ${JSON.stringify(sub)}; use print or options\n`);
    return 2;
  },
};
