/** The CLI as a user runs it: a child process, exit codes, stdout/stderr. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { COMMANDS } from '../../../src/cli/main.js';
import { PROJECT_ROOT } from '../../../src/config.js';

function stratus(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [join(PROJECT_ROOT, 'bin', 'stratus.js'), ...args], {
    env: { PATH: process.env.PATH ?? '', STRATUS_ENV_FILE: '/nonexistent', ...env },
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('--help lists every command, and every command has --help', () => {
  const top = stratus(['--help']);
  assert.equal(top.code, 0);
  for (const c of COMMANDS) {
    assert.match(top.stdout, new RegExp(`^  ${c.name}\\s`, 'm'));
    const h = stratus([c.name, '--help']);
    assert.equal(h.code, 0, `${c.name} --help`);
    assert.match(h.stdout, new RegExp(`^Usage: stratus ${c.name}`, 'm'));
  }
});

test('usage errors and bad config are one line on stderr, never a stack trace', () => {
  const unknown = stratus(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);

  const bad = stratus(['config', 'print', '--redis-port', 'abc']);
  assert.equal(bad.code, 1);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
  assert.match(bad.stderr, /config redis\.port must be an integer from 1 to 65535/);
  assert.doesNotMatch(bad.stderr, /\n\s+at /);

  const flag = stratus(['stack', 'status', '--bogus']);
  assert.equal(flag.code, 1);
  assert.match(flag.stderr, /Unknown option '--bogus'; see `stratus stack --help`/);
});

test('config print shows the effective values and never a secret', () => {
  const r = stratus(['config', 'print', '--kafka-partitions', '7'], { STRATUS_REDIS_PASSWORD: 'hunter2', STRATUS_GRPC_PORT: '6000' });
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^kafka\.partitions\s+7$/m);
  assert.match(r.stdout, /^grpc\.port\s+6000$/m);
  assert.match(r.stdout, /^redis\.password\s+\*\*\*$/m);
  assert.doesNotMatch(r.stdout + r.stderr, /hunter2/);
});
