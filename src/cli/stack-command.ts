import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { ErrorCode, StratusError } from '../errors.js';
import { logFiles, stackDown, stackStatus, stackUp, type ServiceName, type ServiceReport } from '../stack/stack.js';
import { tail } from '../stack/processes.js';
import type { Command } from './command.js';

function row(s: ServiceReport): string {
  const took = s.startMs === null ? '' : `  (ready in ${(s.startMs / 1000).toFixed(1)} s)`;
  const pid = s.pid === null ? '' : `  pid ${s.pid}`;
  const answer = s.state === 'running' || s.state === 'started' ? (s.answering ? '' : '  NOT ANSWERING') : '';
  return `${s.name.padEnd(5)}  ${s.state.padEnd(8)}  ${s.address}${pid}${took}${answer}`;
}

export const stackCommand: Command = {
  name: 'stack',
  summary: 'Run the local Kafka (KRaft) and Redis: up | down | status | logs.',
  usage: [
    'stack up [--fresh]     start (or find) Kafka and Redis, wait until they answer, create the topics',
    '       stratus stack down             stop exactly what `up` started',
    '       stratus stack status           what runs and whether it answers (exit 0 all up, 3 otherwise)',
    '       stratus stack logs [kafka|redis] [--lines N] [--follow]',
  ].join('\n'),
  flags: {
    fresh: { type: 'boolean', doc: 'up: stop the stack and wipe its data dir first' },
    lines: { type: 'string', short: 'n', doc: 'logs: how many lines from the end (default 50)' },
    follow: { type: 'boolean', short: 'f', doc: 'logs: keep printing as the log grows' },
  },
  usesConfig: true,
  words: { subcommands: { up: 0, down: 0, status: 0, logs: 1 } },
  async run({ positionals, flags, config }) {
    const sub = positionals[0];
    switch (sub) {
      case 'up': {
        const t0 = performance.now();
        const report = await stackUp(config, { fresh: flags.fresh === true, progress: (l) => process.stderr.write(`${l}\n`) });
        for (const s of report.services) process.stdout.write(row(s) + '\n');
        process.stdout.write(`topics ${report.topics.map((t) => `${t.topic} (${t.partitions} partitions)`).join(', ')}\n`);
        process.stdout.write(`stack up in ${((performance.now() - t0) / 1000).toFixed(1)} s; data in ${config.dataDir}\n`);
        return 0;
      }
      case 'down': {
        for (const s of await stackDown(config)) process.stdout.write(row(s) + '\n');
        return 0;
      }
      case 'status': {
        const report = await stackStatus(config);
        for (const s of report) process.stdout.write(row(s) + '\n');
        return report.every((s) => s.state === 'running' && s.answering) ? 0 : 3;
      }
      case 'logs':
        return logs(config, positionals[1], flags);
      default:
        throw new StratusError(ErrorCode.USAGE, `${sub === undefined ? 'a subcommand is needed' : `unknown subcommand ${JSON.stringify(sub)}`}: use up, down, status or logs`);
    }
  },
};

async function logs(config: Parameters<typeof logFiles>[0], which: string | undefined, flags: Record<string, unknown>): Promise<number> {
  const all = logFiles(config);
  if (which !== undefined && which !== 'kafka' && which !== 'redis') {
    throw new StratusError(ErrorCode.USAGE, `unknown service ${JSON.stringify(which)}: use kafka or redis`);
  }
  const lines = flags.lines === undefined ? 50 : Number(flags.lines);
  if (!Number.isInteger(lines) || lines < 1) throw new StratusError(ErrorCode.USAGE, `--lines must be a whole number >= 1 (got ${JSON.stringify(flags.lines)})`);
  const names: ServiceName[] = which === undefined ? ['kafka', 'redis'] : [which];
  const files = names.flatMap((n) => all[n]).filter((f) => existsSync(f));
  if (files.length === 0) {
    process.stderr.write(`no logs yet under ${config.dataDir}/logs: run \`stratus stack up\` first\n`);
    return 1;
  }
  if (flags.follow === true) {
    const child = spawn('tail', ['-n', String(lines), '-F', ...files], { stdio: 'inherit' });
    return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 0)));
  }
  for (const f of files) {
    process.stdout.write(`==> ${f} <==\n${tail(f, lines)}\n`);
  }
  return 0;
}
