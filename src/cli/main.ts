/**
 * `stratus` entry point: finds the command, parses its flags, runs it, and turns a StratusError
 * into one line on stderr and an exit code. Anything else is a bug and keeps its stack trace.
 *
 * Exit codes, decided here and nowhere else (a command may return its own: `stack status` 3,
 * `loadgen` 99 for a failed --threshold):
 *   0  done
 *   1  an operating failure: Redis or Kafka unreachable, a port in use, a TLS file unreadable...
 *   2  a usage error, found before anything connects: an unknown command, subcommand or flag,
 *      a missing or extra word, a flag without its value or a value it cannot take (a bad number,
 *      duration or choice), a bad config value from a flag, STRATUS_* or .env. Fix the command line.
 * The rule for configuration: every error thrown while the command line is parsed (util.parseArgs,
 * then loadConfig over flags, environment and .env) is a usage error, as is StratusError(USAGE)
 * from a command's own checks; a CONFIG_INVALID found once the command runs (a TLS file that
 * cannot be read, an address that is not this machine's) depends on the machine and exits 1.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../config.js';
import { ErrorCode, isStratusError } from '../errors.js';
import { commandHelp, parseCommand, type Command } from './command.js';
import { didYouMean } from './did-you-mean.js';

export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/**
 * Commands are imported when run, not all at start: `stratus loadgen` then never loads the
 * librdkafka addon, so it runs where the addon does not (Bun, a machine without the native build),
 * and every command starts faster.
 */
const ENTRIES: readonly { name: string; load(): Promise<Command> }[] = [
  { name: 'stack', load: async () => (await import('./stack-command.js')).stackCommand },
  { name: 'run', load: async () => (await import('./run-command.js')).runCommand },
  { name: 'worker', load: async () => (await import('./worker-command.js')).workerCommand },
  { name: 'loadgen', load: async () => (await import('./loadgen-command.js')).loadgenCommand },
  { name: 'query', load: async () => (await import('./query-command.js')).queryCommand },
  { name: 'report', load: async () => (await import('./report-command.js')).reportCommand },
  { name: 'bench', load: async () => (await import('./bench-command.js')).benchCommand },
  { name: 'token', load: async () => (await import('./token-command.js')).tokenCommand },
  { name: 'config', load: async () => (await import('./config-command.js')).configCommand },
  { name: 'demo', load: async () => (await import('./demo-command.js')).demoCommand },
];

const HELP_WORDS = ['--help', '-h', 'help'];
const VERSION_WORDS = ['--version', '-V', 'version'];

/** Every command, loaded (for the top-level help and the tests). */
export async function allCommands(): Promise<Command[]> {
  const cmds = await Promise.all(ENTRIES.map((e) => e.load()));
  for (const [i, c] of cmds.entries()) assert.equal(c.name, ENTRIES[i]!.name);
  return cmds;
}

/** `stratus 0.1.0 (node v20.20.2, linux x64)`: the package's version and the runtime it runs on. */
export function versionLine(): string {
  const { version } = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
  const runtime = process.versions.bun !== undefined ? `bun ${process.versions.bun}` : `node ${process.version}`;
  return `stratus ${version} (${runtime}, ${process.platform} ${process.arch})`;
}

async function mainHelp(): Promise<string> {
  const COMMANDS = await allCommands();
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'stratus: an ingestion engine for device fleets (gRPC -> Kafka -> processors -> Redis -> device).',
    '',
    'Usage: stratus <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `stratus <command> --help` for a command\'s options; `stratus --version` for the version.',
    'Exit codes: 0 done, 1 an operating failure (Redis, Kafka, a port...), 2 a usage error.',
  ].join('\n');
}

/** A usage error found before any command runs: one line, exit 2. */
function usageError(line: string): number {
  process.stderr.write(`stratus: ${line}\n`);
  return EXIT_USAGE;
}

/** The entry of `name`, or a usage error naming the nearest commands. */
function findEntry(name: string): (typeof ENTRIES)[number] | string {
  const entry = ENTRIES.find((c) => c.name === name);
  if (entry !== undefined) return entry;
  const hint = didYouMean(name, [...ENTRIES.map((e) => e.name), 'help', 'version']);
  return `unknown command ${JSON.stringify(name)}${hint || '; run `stratus --help` for the list'}`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stdout.write((await mainHelp()) + '\n');
    return EXIT_USAGE;
  }
  if (HELP_WORDS.includes(name)) {
    // `stratus help loadgen` is `stratus loadgen --help`.
    if (rest.length === 0) {
      process.stdout.write((await mainHelp()) + '\n');
      return 0;
    }
    if (rest.length > 1) return usageError(`${name} takes one command at most (got ${rest.map((w) => JSON.stringify(w)).join(' ')})`);
    const entry = findEntry(rest[0]!);
    if (typeof entry === 'string') return usageError(entry);
    process.stdout.write(commandHelp(await entry.load()) + '\n');
    return 0;
  }
  if (VERSION_WORDS.includes(name)) {
    if (rest.length > 0) return usageError(`${name} takes no arguments (got ${JSON.stringify(rest[0])})`);
    process.stdout.write(versionLine() + '\n');
    return 0;
  }
  if (name.startsWith('-')) {
    const hint = didYouMean(name.replace(/^-+/, ''), ['help', 'version'], (n) => `--${n}`);
    return usageError(`unknown option ${name}${hint || '; the command comes first: stratus <command> [options]'}`);
  }
  const entry = findEntry(name);
  if (typeof entry === 'string') return usageError(entry);
  const cmd = await entry.load();
  let parsed;
  try {
    parsed = parseCommand(cmd, rest);
  } catch (err) {
    // Whatever the command line asked is wrong (a flag, a word, a config value): exit 2, nothing tried.
    if (isStratusError(err)) {
      process.stderr.write(`stratus ${cmd.name}: ${err.message}\n`);
      return EXIT_USAGE;
    }
    throw err;
  }
  if (parsed.kind === 'help') {
    process.stdout.write(commandHelp(cmd) + '\n');
    return 0;
  }
  if (parsed.kind === 'version') {
    process.stdout.write(versionLine() + '\n');
    return 0;
  }
  try {
    return await cmd.run(parsed.ctx);
  } catch (err) {
    if (isStratusError(err)) {
      process.stderr.write(`stratus ${cmd.name}: ${err.message}\n`);
      return err.code === ErrorCode.USAGE ? EXIT_USAGE : EXIT_FAILED;
    }
    throw err;
  }
}
