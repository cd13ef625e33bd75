/**
 * `stratus` entry point: finds the command, parses its flags, runs it, and turns operating
 * conditions (StratusError) into one line on stderr and exit code 1. Anything else is a bug and
 * keeps its stack trace.
 */
import assert from 'node:assert/strict';
import { isStratusError } from '../errors.js';
import { commandHelp, parseCommand, type Command } from './command.js';

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
  { name: 'bench', load: async () => (await import('./bench-command.js')).benchCommand },
  { name: 'token', load: async () => (await import('./token-command.js')).tokenCommand },
  { name: 'config', load: async () => (await import('./config-command.js')).configCommand },
  { name: 'demo', load: async () => (await import('./demo-command.js')).demoCommand },
];

/** Every command, loaded (for the top-level help and the tests). */
export async function allCommands(): Promise<Command[]> {
  const cmds = await Promise.all(ENTRIES.map((e) => e.load()));
  for (const [i, c] of cmds.entries()) assert.equal(c.name, ENTRIES[i]!.name);
  return cmds;
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
    'Run `stratus <command> --help` for a command\'s options.',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write((await mainHelp()) + '\n');
    return name === undefined ? 2 : 0;
  }
  const entry = ENTRIES.find((c) => c.name === name);
  if (entry === undefined) {
    process.stderr.write(`stratus: unknown command ${JSON.stringify(name)}; run \`stratus --help\` for the list\n`);
    return 2;
  }
  const cmd = await entry.load();
  try {
    const parsed = parseCommand(cmd, rest);
    if (parsed.help) {
      process.stdout.write(commandHelp(cmd) + '\n');
      return 0;
    }
    return await cmd.run(parsed.ctx);
  } catch (err) {
    if (isStratusError(err)) {
      process.stderr.write(`stratus ${cmd.name}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
