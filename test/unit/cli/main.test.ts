/**
 * The CLI as a user runs it: `node bin/stratus.js` as a child process (after the build), its exit
 * codes, stdout and stderr. The child gets a bare environment (PATH, no .env file) plus what a test
 * sets, so neither the real environment nor a .env in the working folder can change an outcome.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { allCommands } from '../../../src/cli/main.js';
import { PROJECT_ROOT } from '../../../src/config.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function stratus(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(PROJECT_ROOT, 'bin', 'stratus.js'), ...args], {
      env: { PATH: process.env.PATH ?? '', STRATUS_ENV_FILE: '/nonexistent/.env', ...env },
      cwd: tmpdir(),
      encoding: 'utf8',
      timeout: 30_000,
    }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

/** An operating condition reported to a user: one line on stderr, no stack trace. */
function assertOneLine(r: Run, what: string): void {
  assert.equal(r.stderr.trimEnd().split('\n').length, 1, `${what}: stderr is not one line:\n${r.stderr}`);
  assert.ok(!r.stderr.includes('    at '), `${what}: stack trace on stderr:\n${r.stderr}`);
}

test('--help lists every command, and every `<command> --help` exits 0 with a Usage line', async () => {
  const COMMANDS = await allCommands();
  assert.ok(COMMANDS.length >= 4);
  for (const args of [['--help'], ['-h'], ['help']]) {
    const top = await stratus(args);
    assert.equal(top.code, 0, args.join(' '));
    assert.match(top.stdout, /^Usage: stratus <command>/m);
    for (const c of COMMANDS) assert.match(top.stdout, new RegExp(`^  ${c.name}\\s+\\S`, 'm'), `${args.join(' ')} does not list ${c.name}`);
  }
  const helps = await Promise.all(COMMANDS.map(async (c) => [c.name, await stratus([c.name, '--help'])] as const));
  for (const [name, h] of helps) {
    assert.equal(h.code, 0, `${name} --help: ${h.stderr}`);
    assert.match(h.stdout, new RegExp(`^Usage: stratus ${name}\\b`, 'm'), `${name} --help`);
    assert.equal(h.stderr, '', `${name} --help wrote to stderr`);
  }
});

test('no command prints the help and exits 2; an unknown command exits 2', async () => {
  const none = await stratus([]);
  assert.equal(none.code, 2);
  assert.match(none.stdout, /^Usage: stratus <command>/m);

  const unknown = await stratus(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.equal(unknown.stdout, '');
  assert.match(unknown.stderr, /unknown command "frobnicate"; run `stratus --help`/);
  assertOneLine(unknown, 'unknown command');
});

test('bad configuration exits 1 with one line on stderr naming the option, and no stack trace', async () => {
  const flag = await stratus(['config', 'print', '--redis-port', 'abc']);
  assert.equal(flag.code, 1);
  assert.equal(flag.stdout, '');
  assert.equal(flag.stderr, 'stratus config: config redis.port must be an integer from 1 to 65535 (port) (got "abc"; set by --redis-port or STRATUS_REDIS_PORT)\n');
  assertOneLine(flag, 'bad flag');

  const env = await stratus(['config', 'print'], { STRATUS_REDIS_PORT: '70000' });
  assert.equal(env.code, 1);
  assert.match(env.stderr, /config redis\.port must be an integer from 1 to 65535 \(port\) \(got "70000"/);
  assertOneLine(env, 'bad environment value');

  const typo = await stratus(['config', 'print'], { STRATUS_REDIS_PROT: '1' });
  assert.equal(typo.code, 1);
  assert.match(typo.stderr, /unknown setting STRATUS_REDIS_PROT/);
  assertOneLine(typo, 'unknown variable');

  const option = await stratus(['stack', 'status', '--bogus']);
  assert.equal(option.code, 1);
  assert.match(option.stderr, /Unknown option '--bogus'; see `stratus stack --help`/);
  assertOneLine(option, 'unknown flag');
});

test('config print shows the effective values and never the Redis password', async (t) => {
  const r = await stratus(['config', 'print', '--kafka-partitions', '7'], { STRATUS_REDIS_PASSWORD: 'hunter2', STRATUS_GRPC_PORT: '6000' });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^kafka\.partitions\s+7$/m);
  assert.match(r.stdout, /^grpc\.port\s+6000$/m);
  assert.match(r.stdout, /^redis\.password\s+\*\*\*$/m);
  assert.ok(!(r.stdout + r.stderr).includes('hunter2'), 'config print leaked the password');

  // The same from a .env file, from a flag, next to a bad value, and in `config options`.
  const dir = mkdtempSync(join(tmpdir(), 'stratus-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, '.env');
  writeFileSync(file, 'STRATUS_REDIS_PASSWORD=hunter2\n');
  const runs = await Promise.all([
    stratus(['config', 'print'], { STRATUS_ENV_FILE: file }),
    stratus(['config', 'print', '--redis-password', 'hunter2']),
    stratus(['config', 'print', '--redis-port', 'abc'], { STRATUS_REDIS_PASSWORD: 'hunter2' }),
    stratus(['config', 'options'], { STRATUS_REDIS_PASSWORD: 'hunter2' }),
  ]);
  assert.deepEqual(runs.map((x) => x.code), [0, 0, 1, 0]);
  assert.match(runs[0]!.stdout, /^redis\.password\s+\*\*\*$/m);
  assert.match(runs[1]!.stdout, /^redis\.password\s+\*\*\*$/m);
  for (const x of runs) assert.ok(!(x.stdout + x.stderr).includes('hunter2'), `leaked the password:\n${x.stdout}${x.stderr}`);
  const unset = await stratus(['config', 'print']);
  assert.match(unset.stdout, /^redis\.password\s+\(unset\)$/m);
});

test('`stratus loadgen` does not load the librdkafka addon (commands are imported when run); `stratus run` does', async () => {
  const probe = (cmd: string) =>
    new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `const { main } = await import(${JSON.stringify(new URL('../../../src/cli/main.js', import.meta.url).href)});
           const out = process.stdout.write.bind(process.stdout); process.stdout.write = () => true;
           await main([${JSON.stringify(cmd)}, '--help']);
           const { createRequire } = await import('node:module');
           out(String(Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('kafka-javascript'))));`,
        ],
        (err, stdout) => (err ? reject(err) : resolve(stdout.trim())),
      ),
    );
  assert.equal(await probe('loadgen'), 'false');
  assert.equal(await probe('run'), 'true', 'the probe sees the addon when a command does load it');
});
