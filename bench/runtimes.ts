/**
 * The other runtimes the bench and the fault suite run the engine on: Node 24 LTS and Bun from the
 * npm registry, under .stratus/cache/runtimes (scripts/setup-runtimes.sh fetches them; Node 24 runs
 * a tree whose librdkafka addon was rebuilt against its headers).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../src/config.js';
import { STRATUS_BIN } from './child.js';

const RUNTIMES = join(PROJECT_ROOT, '.stratus', 'cache', 'runtimes');
export type Runtime = { name: string; exec: string; args: string[]; bin: string };

/**
 * Runs scripts/setup-runtimes.sh (a moment when everything is there; a few minutes the first time,
 * most of it building the librdkafka addon for Node 24), its progress lines going to the bench's log.
 */
export async function ensureRuntimes(ctx: { log(line: string): void }): Promise<void> {
  const child = spawn('bash', [join(PROJECT_ROOT, 'scripts', 'setup-runtimes.sh')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let pending = '';
  const lines: string[] = [];
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    pending += chunk;
    for (let i = pending.indexOf('\n'); i >= 0; i = pending.indexOf('\n')) {
      const line = pending.slice(0, i);
      pending = pending.slice(i + 1);
      lines.push(line);
      ctx.log(`  ${line}`);
    }
  });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c, s) => resolve([c, s]));
  });
  if (pending !== '') lines.push(pending);
  if (code !== 0) throw new Error(`scripts/setup-runtimes.sh exited with ${code ?? signal}: ${lines.at(-1) ?? 'no output'} (log: .stratus/setup.log)`);
}

export function runtimes(): { node20: Runtime; node24: Runtime; bun: Runtime } {
  const node24 = join(RUNTIMES, 'node24', 'bin', 'node');
  const bun = join(RUNTIMES, 'bun', 'bin', 'bun');
  const tree = join(RUNTIMES, 'node24-tree');
  for (const f of [node24, bun, join(tree, '.stamp')]) if (!existsSync(f)) throw new Error(`${f} is missing after scripts/setup-runtimes.sh ran: see .stratus/setup.log`);
  return {
    node20: { name: `Node ${process.version}`, exec: process.execPath, args: [], bin: STRATUS_BIN },
    node24: { name: `Node ${execFileSync(node24, ['--version'], { encoding: 'utf8' }).trim()}`, exec: node24, args: ['--preserve-symlinks', '--preserve-symlinks-main'], bin: join(tree, 'bin', 'stratus.js') },
    bun: { name: `Bun ${execFileSync(bun, ['--version'], { encoding: 'utf8' }).trim()}`, exec: bun, args: [], bin: STRATUS_BIN },
  };
}

