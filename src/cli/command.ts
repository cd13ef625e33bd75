/**
 * The shape every `stratus` command takes. Commands stay thin: parse flags, load Config, call in.
 *
 * Everything wrong with a command line is found here, before a command runs or anything connects,
 * and thrown as StratusError(USAGE) with one line naming the word and the fix (main.ts exits 2):
 * an unknown flag (with the nearest known ones), a flag missing its value, a value given to a
 * boolean flag, a missing, unknown or extra word, and (from loadConfig) a bad config value.
 */
import { parseArgs } from 'node:util';
import { configFlagOptions, loadConfig, type Config } from '../config.js';
import { ErrorCode, StratusError } from '../errors.js';
import { didYouMean, orList } from './did-you-mean.js';

export interface FlagSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  doc: string;
}

/**
 * The words after the command's name. `subcommands` maps each subcommand to how many more words
 * it takes at most; the first word must name one, unless `defaultSubcommand` stands in for it.
 */
export interface WordsSpec {
  subcommands: Readonly<Record<string, number>>;
  defaultSubcommand?: string;
}

export interface Command {
  name: string;
  summary: string;
  /** Lines after `Usage:`; positional words first. */
  usage: string;
  flags: Record<string, FlagSpec>;
  /** Whether the command reads Config (then every config flag is accepted too). */
  usesConfig: boolean;
  /** The words the command takes; absent: none (`stratus run foo` is a usage error). */
  words?: WordsSpec;
  /** Rewrites the arguments before they are parsed (a flag spelled as another command's option). */
  rewriteArgs?(argv: readonly string[]): string[];
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
  lines.push('', '-h, --help shows this; -V, --version prints the version.');
  return lines.join('\n');
}

function flagLabel(name: string, f: FlagSpec): string {
  return `${f.short ? `-${f.short}, ` : ''}--${name}${f.type === 'string' ? ' VALUE' : ''}`;
}

type OptionDefs = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

export type Parsed = { kind: 'help' } | { kind: 'version' } | { kind: 'run'; ctx: CommandContext };

export function parseCommand(cmd: Command, argvGiven: string[]): Parsed {
  const argv = cmd.rewriteArgs?.(argvGiven) ?? argvGiven;
  const options: OptionDefs = {
    ...(cmd.usesConfig ? configFlagOptions() : {}),
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean', short: 'V' },
  };
  for (const [n, f] of Object.entries(cmd.flags)) options[n] = { type: f.type, ...(f.short ? { short: f.short } : {}), ...(f.multiple ? { multiple: true } : {}) };
  // A line that ends in a suggestion ("did you mean --duration?") says enough; others point to --help.
  const usage = (what: string) => new StratusError(ErrorCode.USAGE, what.endsWith('?') ? what : `${what}; see \`stratus ${cmd.name} --help\``);
  // Not strict: util.parseArgs's own errors are sentences for a programmer ("Unknown option
  // '--x'. To specify a positional argument starting with a '-', ..."); the tokens let each
  // problem be said here in one line, with the nearest known flag.
  const { values, positionals, tokens } = parseArgs({ args: argv, options, allowPositionals: true, strict: false, tokens: true });
  // Asked for help or the version: that answer, whatever else is on the line.
  const asked = (name: string) => tokens.some((t) => t.kind === 'option' && t.name === name && t.value === undefined);
  if (asked('help')) return { kind: 'help' };
  if (asked('version')) return { kind: 'version' };
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    const def = options[t.name];
    if (def === undefined) {
      // A short option is one letter: nothing to compare; a long one gets the nearest known flags.
      const hint = t.rawName.startsWith('--') ? didYouMean(t.name, Object.keys(options), (n) => `--${n}`) : '';
      throw usage(`unknown option ${t.rawName}${hint}`);
    }
    if (def.type === 'boolean' && t.value !== undefined) throw usage(`${t.rawName} takes no value (got ${JSON.stringify(t.value)})`);
    if (def.type === 'string') {
      if (t.value === undefined) throw usage(`${t.rawName} needs a value`);
      // As util.parseArgs's strict mode: `--target --devices 5` is a forgotten value, not a target.
      if (!t.inlineValue && t.value.length > 1 && t.value.startsWith('-')) {
        throw usage(`${t.rawName} needs a value (got the option ${JSON.stringify(t.value)} next; for a value that starts with "-" write ${t.rawName}=${t.value})`);
      }
    }
  }
  checkWords(cmd, positionals, usage);
  const config = loadConfig({ flags: values });
  return { kind: 'run', ctx: { positionals, flags: values as CommandContext['flags'], config } };
}

function checkWords(cmd: Command, words: readonly string[], usage: (what: string) => StratusError): void {
  const spec = cmd.words;
  if (spec === undefined) {
    if (words.length > 0) throw usage(`unexpected argument ${JSON.stringify(words[0])} (${cmd.name} takes options only)`);
    return;
  }
  const names = Object.keys(spec.subcommands);
  const [first] = words;
  if (first === undefined) {
    if (spec.defaultSubcommand === undefined) throw usage(`a subcommand is needed: ${orList(names)}`);
    return;
  }
  if (!Object.hasOwn(spec.subcommands, first)) {
    throw usage(`unknown subcommand ${JSON.stringify(first)}${didYouMean(first, names) || `: use ${orList(names)}`}`);
  }
  const more = spec.subcommands[first]!;
  if (words.length - 1 > more) throw usage(`unexpected argument ${JSON.stringify(words[1 + more])} after \`${cmd.name} ${words.slice(0, 1 + more).join(' ')}\``);
}
