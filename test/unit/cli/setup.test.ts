/**
 * scripts/setup.sh, what `npm run demo` and `npm test` start with: which steps run for which flag.
 * The script runs for real, in a copy of the project's layout, with the commands it calls (apt-get,
 * dpkg-query, npm, mvn, npx, java, and scripts/setup-runtimes.sh) replaced by stubs that record
 * their arguments and times, so the test needs no network and changes nothing on the machine.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PROJECT_ROOT } from '../../../src/config.js';

interface Run {
  code: number | null;
  stderr: string;
  /** One line per stubbed call: "<name> <start|end> <epoch s> <args...>". */
  calls: string[];
}

function stub(dir: string, name: string, body: string): void {
  writeFileSync(join(dir, name), `#!/usr/bin/env bash\n${body}\n`);
  chmodSync(join(dir, name), 0o755);
}

/** Runs a copy of scripts/setup.sh with `args` in a fresh fake project; `fail` names a stub that exits 1. */
function setup(args: string[], opts: { fail?: 'mvn' } = {}): Run {
  const root = mkdtempSync(join(tmpdir(), 'setup-sh-'));
  try {
    const bin = join(root, 'stub-bin');
    const calls = join(root, 'calls.log');
    for (const d of ['scripts', 'src/stack', 'stub-bin']) mkdirSync(join(root, d), { recursive: true });
    copyFileSync(join(PROJECT_ROOT, 'scripts', 'setup.sh'), join(root, 'scripts', 'setup.sh'));
    copyFileSync(join(PROJECT_ROOT, 'package-lock.json'), join(root, 'package-lock.json'));
    copyFileSync(join(PROJECT_ROOT, 'src', 'stack', 'kafka-pom.xml'), join(root, 'src', 'stack', 'kafka-pom.xml'));
    const rec = (name: string) => `echo "${name} $1 $(date +%s.%N) \${@:2}" >>"${calls}"`;
    stub(join(root, 'scripts'), 'setup-runtimes.sh', `set -- start "$@"; ${rec('setup-runtimes')}`);
    // Every Debian package counts as installed except chromium, so apt-get is asked for it alone.
    stub(bin, 'dpkg-query', `for a in "$@"; do p=$a; done; [ "$p" = chromium ] && exit 1; echo -n 'install ok installed'`);
    stub(bin, 'apt-get', `set -- start "$@"; ${rec('apt-get')}`);
    stub(bin, 'id', 'echo 0');
    stub(bin, 'java', `echo 'openjdk version "17.0.9" 2023-10-17' >&2`);
    // npm ci waits (10 s at most) for mvn to have started, npm rebuild (the native build) for tsc: in
    // parallel they overlap, one after the other they do not.
    const waitFor = (what: string) => `for i in $(seq 100); do grep -q '^${what} start' "${calls}" && break; sleep 0.1; done`;
    stub(
      bin,
      'npm',
      `cmd=$1; set -- start "$@"; ${rec('npm')}
       case "$cmd" in ci) ${waitFor('mvn')}; mkdir -p node_modules;; rebuild) ${waitFor('npx')};; esac
       set -- end "$cmd"; ${rec('npm')}`,
    );
    stub(bin, 'node', `[ "$1" = --version ] && echo v20.0.0; exit 0`);
    stub(bin, 'npx', `set -- start "$@"; ${rec('npx')}; sleep 0.2; set -- end; ${rec('npx')}`);
    stub(
      bin,
      'mvn',
      `set -- start "$@"; ${rec('mvn')}; sleep 0.5
       for a in "$@"; do case "$a" in -DoutputDirectory=*) mkdir -p "\${a#-DoutputDirectory=}"; touch "\${a#-DoutputDirectory=}/kafka.jar";; esac; done
       set -- end; ${rec('mvn')}; ${opts.fail === 'mvn' ? 'exit 1' : 'exit 0'}`,
    );
    const r = spawnSync('bash', [join(root, 'scripts', 'setup.sh'), ...args], {
      encoding: 'utf8',
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
      timeout: 60_000,
    });
    let lines: string[] = [];
    try {
      lines = readFileSync(calls, 'utf8').trim().split('\n').filter(Boolean);
    } catch {
      // No stub was called.
    }
    return { code: r.status, stderr: r.stderr, calls: lines };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

const called = (r: Run, name: string) => r.calls.filter((c) => c.startsWith(`${name} start`));
/** When a stub started or ended; `name` may carry the subcommand: "npm ci". */
function at(r: Run, name: string, phase: 'start' | 'end'): number {
  const [cmd, sub] = name.split(' ');
  const line = r.calls.find((c) => {
    const f = c.split(' ');
    return f[0] === cmd && f[1] === phase && (sub === undefined || f[3] === sub);
  });
  assert.ok(line, `${name} ${phase} not recorded`);
  return Number(line.split(' ')[2]);
}

test('setup.sh with no flag: what the demo needs; no chromium, no bench runtimes; the Kafka jars fetched while npm ci runs', () => {
  const r = setup([]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(called(r, 'apt-get'), [], 'every package it needs is installed: apt-get is not called');
  assert.deepEqual(called(r, 'setup-runtimes'), []);
  assert.deepEqual(called(r, 'npm').map((c) => c.split(' ').slice(3, 5).join(' ')), ['ci --ignore-scripts', 'rebuild --no-audit']);
  assert.equal(called(r, 'mvn').length, 1);
  assert.match(called(r, 'npx')[0]!, /tsc -b/);
  // mvn started before npm ci ended and ended after it started; tsc ran while npm rebuild did.
  const overlap = (a: string, b: string) => at(r, a, 'start') < at(r, b, 'end') && at(r, b, 'start') < at(r, a, 'end');
  assert.ok(overlap('mvn', 'npm ci'), r.calls.join('\n'));
  assert.ok(overlap('npx', 'npm rebuild'), r.calls.join('\n'));
  assert.match(r.stderr, /Kafka jars fetched in \d+\.\d s beside npm ci/);
  assert.match(r.stderr, /node modules installed in \d+\.\d s \(the librdkafka build took \d+\.\d s, the TypeScript build \d+\.\d s beside it\)/);
  assert.match(r.stderr, /setup: ready in/);
});

test('setup.sh --for test: also chromium and the bench runtimes', () => {
  const r = setup(['--for', 'test']);
  assert.equal(r.code, 0, r.stderr);
  const apt = called(r, 'apt-get').filter((c) => / install /.test(c));
  assert.equal(apt.length, 1);
  assert.match(apt[0]!, / chromium$/);
  assert.equal(called(r, 'setup-runtimes').length, 1);
});

test('setup.sh --runtimes: the bench runtimes, still no chromium', () => {
  const r = setup(['--runtimes']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(called(r, 'apt-get'), []);
  assert.equal(called(r, 'setup-runtimes').length, 1);
});

test('setup.sh with an unknown flag: usage, exit 2, nothing run', () => {
  const r = setup(['--fast']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /usage: bash scripts\/setup.sh \[--for run\|test\|bun\] \[--runtimes\]/);
  assert.deepEqual(r.calls, []);
});

test('setup.sh when mvn fails: one line naming the cause, exit 1', () => {
  const r = setup([], { fail: 'mvn' });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /setup: FAILED: mvn could not fetch the Kafka jars/);
  assert.doesNotMatch(r.stderr, /setup: ready/);
});

test('package.json: the demo sets up without the test-only parts, npm test with them', () => {
  const { scripts } = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  assert.match(scripts.demo!, /^bash scripts\/setup\.sh && /);
  assert.match(scripts.test!, /^bash scripts\/setup\.sh --for test && /);
});
