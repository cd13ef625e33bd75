/**
 * `stratus` entry point: finds the command, parses its flags, runs it, and turns operating
 * conditions (StratusError) into one line on stderr and exit code 1. Anything else is a bug and
 * keeps its stack trace.
 */
import { isStratusError } from '../errors.js';
import { commandHelp, parseCommand, type Command } from './command.js';
import { benchCommand } from './bench-command.js';
import { configCommand } from './config-command.js';
import { demoCommand } from './demo-command.js';
import { loadgenCommand } from './loadgen-command.js';
import { runCommand } from './run-command.js';
import { stackCommand } from './stack-command.js';
import { workerCommand } from './worker-command.js';

export const COMMANDS: readonly Command[] = [stackCommand, runCommand, workerCommand, loadgenCommand, benchCommand, configCommand, demoCommand];

function mainHelp(): string {
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
    process.stdout.write(mainHelp() + '\n');
    return name === undefined ? 2 : 0;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (cmd === undefined) {
    process.stderr.write(`stratus: unknown command ${JSON.stringify(name)}; run \`stratus --help\` for the list\n`);
    return 2;
  }
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
