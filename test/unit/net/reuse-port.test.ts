/**
 * probeReusePort: unsupported with the second bind's error where net ignores reusePort (Node 20),
 * supported on Node 24 (run from .stratus/cache/runtimes when there), and nothing left bound.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { PROJECT_ROOT } from '../../../src/config.js';
import { probeReusePort } from '../../../src/net/reuse-port.js';

const NODE24 = join(PROJECT_ROOT, '.stratus', 'cache', 'runtimes', 'node24', 'bin', 'node');

test('on this runtime: Node < 22.12 ignores reusePort (the second bind is EADDRINUSE); newer honours it', async () => {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  const honours = major > 22 || (major === 22 && minor >= 12);
  const probe = await probeReusePort('127.0.0.1');
  assert.equal(probe.supported, honours, JSON.stringify(probe));
  if (!honours) assert.match(probe.reason!, /^a second listener with reusePort on port \d+ failed \(EADDRINUSE\)$/);
  else assert.equal(probe.reason, null);
});

test('Node 24 (from .stratus/cache/runtimes): supported', (t) => {
  if (!existsSync(NODE24)) return t.skip('no Node 24 in .stratus/cache/runtimes (bash scripts/setup-runtimes.sh)');
  const module = pathToFileURL(join(PROJECT_ROOT, 'dist', 'src', 'net', 'reuse-port.js')).href;
  const out = execFileSync(NODE24, ['--input-type=module', '-e', `const { probeReusePort } = await import(${JSON.stringify(module)}); console.log(JSON.stringify(await probeReusePort('127.0.0.1')));`], { encoding: 'utf8' });
  assert.deepEqual(JSON.parse(out), { supported: true, reason: null });
});

test('the probe leaves nothing bound: no TCP server handle remains after it', async () => {
  // A closed server's handle is released by libuv a turn after its 'close' event: count after that.
  const servers = async () => {
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    return process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length;
  };
  const before = await servers();
  for (let i = 0; i < 20; i++) await probeReusePort('127.0.0.1');
  assert.equal(await servers(), before);
});
