/**
 * The shape every `stratus` command takes. Commands stay thin: parse flags, load Config, call in.
 */
import { parseArgs } from 'node:util';
import { configFlagOptions, loadConfig, type Config } from '../config.js';
import { ErrorCode, StratusError } from '../errors.js';

export interface FlagSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  doc: string;
}

export interface Command {
  name: string;
  summary: string;
  /** Lines after `Usage:`; positional words first. */
  usage: string;
  flags: Record<string, FlagSpec>;
  /** Whether the command reads Config (then every config flag is accepted too). */
  usesConfig: boolean;
  run(ctx: CommandContext): Promise<number>;
}

export interface CommandContext {
  positionals: string[];
  flags: Record<string, string | boolean | string[] | undefined>;
  config: Config;
}

export function commandHelp(cmd: Command): string {
  const lines = [`stratus ${cmd.name}: ${cmd.summary}`, '', `Usage: stratus ${cmd.usage}`];
  const entries = Object.entries(cmd.flags);
  if (entries.length > 0) {
    lines.push('', 'Options:');
    const width = Math.max(...entries.map(([n, f]) => flagLabel(n, f).length));
    for (const [n, f] of entries) lines.push(`  ${flagLabel(n, f).padEnd(width)}  ${f.doc}`);
  }
  if (cmd.usesConfig) lines.push('', 'Every configuration option is also a flag (see `stratus config print --help`).');
  return lines.join('\n');
}

function flagLabel(name: string, f: FlagSpec): string {
  return `${f.short ? `-${f.short}, ` : ''}--${name}${f.type === 'string' ? ' VALUE' : ''}`;
}

export function parseCommand(cmd: Command, argv: string[]): { help: true } | { help: false; ctx: CommandContext } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {
    ...(cmd.usesConfig ? configFlagOptions() : {}),
    help: { type: 'boolean', short: 'h' },
  };
  for (const [n, f] of Object.entries(cmd.flags)) options[n] = { type: f.type, ...(f.short ? { short: f.short } : {}), ...(f.multiple ? { multiple: true } : {}) };
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new StratusError(ErrorCode.USAGE, `${(err as Error).message.replace(/\. To specify.*$/s, '')}; see \`stratus ${cmd.name} --help\``);
  }
  if (parsed.values.help) return { help: true };
  const config = loadConfig({ flags: parsed.values });
  return { help: false, ctx: { positionals: parsed.positionals, flags: parsed.values as CommandContext['flags'], config } };
}
