import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { ErrorCode, StratusError } from '../errors.js';
import { LOG_GROUPS, logFiles, stackDown, stackStatus, stackUp, type LogGroup, type ServiceReport, type StackShape } from '../stack/stack.js';
import { tail } from '../stack/processes.js';
import type { Command } from './command.js';

function row(s: ServiceReport): string {
  const took = s.startMs === null ? '' : `  (ready in ${(s.startMs / 1000).toFixed(1)} s)`;
  const pid = s.pid === null ? '' : `  pid ${s.pid}`;
  const answer = s.state === 'running' || s.state === 'started' ? (s.answering ? '' : '  NOT ANSWERING') : '';
  return `${s.name.padEnd(11)}  ${s.state.padEnd(8)}  ${s.address}${pid}${took}${answer}`;
}

/**
 * --kafka-nodes, not --kafka-brokers: that flag is already the kafka.brokers config option (the
 * bootstrap list, `--kafka-brokers 127.0.0.1:9192`), which every command accepts. A bare count
 * (`stack up --kafka-brokers 3`) cannot be a bootstrap list, so it is read as --kafka-nodes.
 */
export function kafkaBrokersCountAsNodes(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const inline = /^--kafka-brokers=(\d+)$/.exec(a);
    if (inline !== null) out.push(`--kafka-nodes=${inline[1]}`);
    else if (a === '--kafka-brokers' && /^\d+$/.test(argv[i + 1] ?? '')) out.push('--kafka-nodes', argv[++i]!);
    else out.push(a);
  }
  return out;
}

function stackShape(flags: Record<string, unknown>): StackShape {
  const raw = flags['kafka-nodes'];
  if (raw !== undefined && !/^\d+$/.test(String(raw))) throw new StratusError(ErrorCode.USAGE, `--kafka-nodes must be a whole number, 1 or 3 (got ${JSON.stringify(raw)})`);
  // stack.ts says which counts the layout has ports for.
  return { kafkaNodes: raw === undefined ? 1 : Number(raw), redisCluster: flags['redis-cluster'] === true, postgres: flags.postgres === true };
}

export const stackCommand: Command = {
  name: 'stack',
  summary: 'Run the local Kafka (KRaft) and Redis (and PostgreSQL for the archive): up | down | status | logs.',
  usage: [
    'stack up [--fresh] [--kafka-nodes 3] [--redis-cluster] [--postgres]',
    '                                      start (or find) Kafka and Redis (and PostgreSQL), wait until they answer, create the topics',
    '       stratus stack down [--kafka-nodes 3] [--redis-cluster] [--postgres]',
    '                                      stop everything `up` started; with a cluster flag, only that cluster (and PostgreSQL with --postgres)',
    '       stratus stack status [--kafka-nodes 3] [--redis-cluster] [--postgres]',
    '                                      what runs and whether it answers (exit 0 all asked for up, 3 otherwise)',
    '       stratus stack logs [kafka|redis|postgres|kafka-cluster|redis-cluster] [--lines N] [--follow]',
  ].join('\n'),
  flags: {
    fresh: { type: 'boolean', doc: 'up: stop the services it starts and wipe their data first (PostgreSQL\'s only with --postgres)' },
    postgres: { type: 'boolean', doc: 'up: also PostgreSQL for the archive, on the host and port of archive.postgresUrl (default 127.0.0.1:5433), data in <dataDir>/postgres; status: its row counts for the exit code; down with a cluster flag: stop it too' },
    'kafka-nodes': { type: 'string', doc: 'up, status, down: 3 for a three-node KRaft cluster on 127.0.0.1:19092,19094,19096 instead of the single broker (default 1); `--kafka-brokers 3` says the same' },
    'redis-cluster': { type: 'boolean', doc: 'up, status, down: a six-node Redis Cluster on 127.0.0.1:17001-17006 (3 masters, 1 replica each) instead of the single Redis' },
    lines: { type: 'string', short: 'n', doc: 'logs: how many lines from the end (default 50)' },
    follow: { type: 'boolean', short: 'f', doc: 'logs: keep printing as the log grows' },
  },
  usesConfig: true,
  rewriteArgs: kafkaBrokersCountAsNodes,
  words: { subcommands: { up: 0, down: 0, status: 0, logs: 1 } },
  async run({ positionals, flags, config }) {
    const sub = positionals[0];
    switch (sub) {
      case 'up': {
        const t0 = performance.now();
        const report = await stackUp(config, { ...stackShape(flags), fresh: flags.fresh === true, progress: (l) => process.stderr.write(`${l}\n`) });
        for (const s of report.services) process.stdout.write(row(s) + '\n');
        const replicas = (n: number) => (n === 1 ? '' : `, replication ${n}`);
        process.stdout.write(`topics ${report.topics.map((t) => `${t.topic} (${t.partitions} partitions${replicas(t.replicationFactor)})`).join(', ')}\n`);
        process.stdout.write(`stack up in ${((performance.now() - t0) / 1000).toFixed(1)} s; data in ${config.dataDir}\n`);
        return 0;
      }
      case 'down': {
        for (const s of await stackDown(config, stackShape(flags))) process.stdout.write(row(s) + '\n');
        return 0;
      }
      case 'status': {
        const report = await stackStatus(config, stackShape(flags));
        for (const s of report) process.stdout.write(row(s) + (s.informational ? '  (not asked about)' : '') + '\n');
        return report.every((s) => s.informational || (s.state === 'running' && s.answering)) ? 0 : 3;
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
  if (which !== undefined && !(LOG_GROUPS as readonly string[]).includes(which)) {
    throw new StratusError(ErrorCode.USAGE, `unknown service ${JSON.stringify(which)}: use ${LOG_GROUPS.join(', ')}`);
  }
  const lines = flags.lines === undefined ? 50 : Number(flags.lines);
  if (!Number.isInteger(lines) || lines < 1) throw new StratusError(ErrorCode.USAGE, `--lines must be a whole number >= 1 (got ${JSON.stringify(flags.lines)})`);
  const names: readonly LogGroup[] = which === undefined ? LOG_GROUPS : [which as LogGroup];
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
