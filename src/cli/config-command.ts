import { formatConfig, optionsMarkdown } from '../config.js';
import type { Command } from './command.js';

export const configCommand: Command = {
  name: 'config',
  summary: 'Show the effective configuration (secrets masked), or every option as a Markdown table.',
  usage: 'config print [config flags]\n       stratus config options',
  flags: {},
  usesConfig: true,
  words: { subcommands: { print: 0, options: 0 }, defaultSubcommand: 'print' },
  async run({ positionals, config }) {
    const sub = positionals[0] ?? 'print';
    if (sub === 'print') {
      process.stdout.write(formatConfig(config) + '\n');
      return 0;
    }
    if (sub === 'options') {
      process.stdout.write(optionsMarkdown() + '\n');
      return 0;
    }
    process.stderr.write(`stratus config: unknown subcommand ${JSON.stringify(sub)}; use print or options\n`);
    return 2;
  },
};
