/**
 * This project as Node 24 runs it, for tests of what Node 20 cannot do (`run --shard threads` needs
 * net's reusePort). scripts/setup-runtimes.sh fetches Node 24 and builds the native Kafka addon for
 * it into .stratus/cache/runtimes/node24-tree; that tree links one checkout's dist/. This builds,
 * in a temp dir, the same tree for PROJECT_ROOT (so a worktree's own build is what runs): bin,
 * dist, proto, package.json and node_modules linked entry by entry, except the addon, taken from
 * the cached tree. Null when the runtime or its addon is not there (the caller skips).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/config.js';

const RUNTIMES = join(PROJECT_ROOT, '.stratus', 'cache', 'runtimes');
const ADDON = join('@confluentinc', 'kafka-javascript');

export interface Node24Tree {
  /** The command line before `run ...`: node24 with preserved symlinks and the tree's bin/stratus.js. */
  readonly argv: readonly [string, ...string[]];
  remove(): void;
}

export function node24Tree(): Node24Tree | null {
  const node = join(RUNTIMES, 'node24', 'bin', 'node');
  const addon = join(RUNTIMES, 'node24-tree', 'node_modules', ADDON);
  if (!existsSync(node) || !existsSync(join(addon, 'build'))) return null;
  const tree = mkdtempSync(join(tmpdir(), 'stratus-node24-'));
  for (const f of ['bin', 'dist', 'proto', 'package.json']) symlinkSync(join(PROJECT_ROOT, f), join(tree, f));
  const modules = join(PROJECT_ROOT, 'node_modules');
  mkdirSync(join(tree, 'node_modules', '@confluentinc'), { recursive: true });
  for (const name of readdirSync(modules)) {
    if (name === '@confluentinc') continue;
    symlinkSync(join(modules, name), join(tree, 'node_modules', name));
  }
  for (const name of readdirSync(join(modules, '@confluentinc'))) {
    symlinkSync(name === 'kafka-javascript' ? addon : join(modules, '@confluentinc', name), join(tree, 'node_modules', '@confluentinc', name));
  }
  return {
    argv: [node, '--preserve-symlinks', '--preserve-symlinks-main', join(tree, 'bin', 'stratus.js')],
    remove: () => rmSync(tree, { recursive: true, force: true }),
  };
}
