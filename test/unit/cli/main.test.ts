/**
 * The CLI as a user runs it: `node bin/stratus.js` as a child process (after the build), its exit
 * codes, stdout and stderr. The child gets a bare environment (PATH, no .env file) plus what a test
 * sets, so neither the real environment nor a .env in the working folder can change an outcome.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
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

test('no command prints the help and exits 2; an unknown command exits 2, naming the nearest ones', async () => {
  const none = await stratus([]);
  assert.equal(none.code, 2);
  assert.match(none.stdout, /^Usage: stratus <command>/m);

  const unknown = await stratus(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.equal(unknown.stdout, '');
  assert.equal(unknown.stderr, 'stratus: unknown command "frobnicate"; run `stratus --help` for the list\n');

  const typo = await stratus(['lodgen']);
  assert.equal(typo.code, 2);
  assert.equal(typo.stderr, 'stratus: unknown command "lodgen"; did you mean loadgen?\n');
});

test('bad configuration is a usage error: exit 2, one line on stderr naming the option, no stack trace', async () => {
  const flag = await stratus(['config', 'print', '--redis-port', 'abc']);
  assert.equal(flag.code, 2);
  assert.equal(flag.stdout, '');
  assert.equal(flag.stderr, 'stratus config: config redis.port must be an integer from 1 to 65535 (port) (got "abc"; set by --redis-port or STRATUS_REDIS_PORT)\n');
  assertOneLine(flag, 'bad flag');

  const env = await stratus(['config', 'print'], { STRATUS_REDIS_PORT: '70000' });
  assert.equal(env.code, 2);
  assert.match(env.stderr, /config redis\.port must be an integer from 1 to 65535 \(port\) \(got "70000"/);
  assertOneLine(env, 'bad environment value');

  const typo = await stratus(['config', 'print'], { STRATUS_REDIS_PROT: '1' });
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /unknown setting STRATUS_REDIS_PROT/);
  assertOneLine(typo, 'unknown variable');

  const option = await stratus(['stack', 'status', '--bogus']);
  assert.equal(option.code, 2);
  assert.equal(option.stderr, 'stratus stack: unknown option --bogus; see `stratus stack --help`\n');
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
  assert.deepEqual(runs.map((x) => x.code), [0, 0, 2, 0]);
  assert.match(runs[0]!.stdout, /^redis\.password\s+\*\*\*$/m);
  assert.match(runs[1]!.stdout, /^redis\.password\s+\*\*\*$/m);
  for (const x of runs) assert.ok(!(x.stdout + x.stderr).includes('hunter2'), `leaked the password:\n${x.stdout}${x.stderr}`);
  const unset = await stratus(['config', 'print']);
  assert.match(unset.stdout, /^redis\.password\s+\(unset\)$/m);
});

test('no command loads the librdkafka addon when imported (kafka.client picks the library when a client is built, src/kafka/factory.ts): Bun runs every command', async () => {
  const loaded = (code: string) =>
    new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `${code}
           const { createRequire } = await import('node:module');
           process.stdout.write(String(Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('kafka-javascript'))));`,
        ],
        (err, stdout) => (err ? reject(err) : resolve(stdout.trim())),
      ),
    );
  const command = (cmd: string) =>
    loaded(`const { main } = await import(${JSON.stringify(new URL('../../../src/cli/main.js', import.meta.url).href)});
            const write = process.stdout.write; process.stdout.write = () => true;
            await main([${JSON.stringify(cmd)}, '--help']);
            process.stdout.write = write;`);
  assert.equal(await command('loadgen'), 'false');
  assert.equal(await command('run'), 'false');
  assert.equal(await command('stack'), 'false');
  // The probe sees the addon once the native clients are imported (what kafka.client=native does).
  assert.equal(await loaded(`await import(${JSON.stringify(new URL('../../../src/kafka/native/clients.js', import.meta.url).href)});`), 'true');
});

/** Runs `jobs` at most `width` at a time (the machine is shared: not 60 node processes at once). */
async function pool<T>(jobs: (() => Promise<T>)[], width = 4): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]!();
    }
  }));
  return out;
}

/** A TCP listener that counts the connections made to it and closes each at once. */
async function countingListener(t: { after(fn: () => unknown): void }): Promise<{ port: number; connections: () => number }> {
  let n = 0;
  const server: Server = createServer((socket) => {
    n++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.address() as { port: number }).port, connections: () => n };
}

test('every class of usage error exits 2 with one line on stderr, in every command, before anything connects', { timeout: 240_000 }, async (t) => {
  // Redis and Kafka point at listeners of this test: a command that got past its checks would
  // connect there (and fail, so nothing shared is touched); none may. The data dir is a fresh
  // folder for the same reason.
  const redis = await countingListener(t);
  const kafka = await countingListener(t);
  const dataDir = mkdtempSync(join(tmpdir(), 'stratus-usage-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const env = { STRATUS_REDIS_PORT: String(redis.port), STRATUS_KAFKA_BROKERS: `127.0.0.1:${kafka.port}`, STRATUS_DATA_DIR: dataDir };
  const SECRET = { STRATUS_AUTH_TOKEN_SECRET: 'x'.repeat(32) };
  const cases: [what: string, args: string[], stderr: RegExp, extraEnv?: Record<string, string>][] = [
    ['unknown command', ['lodgen'], /^stratus: unknown command "lodgen"; did you mean loadgen\?$/],
    ['unknown top-level option', ['--verison'], /^stratus: unknown option --verison; did you mean --version\?$/],
    ['unknown top-level option', ['--grpc-port', '1', 'run'], /^stratus: unknown option --grpc-port; the command comes first: stratus <command> \[options\]$/],
    ['unknown help topic', ['help', 'lodgen'], /^stratus: unknown command "lodgen"; did you mean loadgen\?$/],
    ['version with a word', ['version', 'now'], /^stratus: version takes no arguments \(got "now"\)$/],
    ['unknown flag', ['run', '--grpc-prot', '1'], /^stratus run: unknown option --grpc-prot; did you mean --grpc-port\?$/],
    ['unknown flag', ['loadgen', '--duraton', '5s'], /^stratus loadgen: unknown option --duraton; did you mean --duration\?$/],
    ['unknown flag', ['stack', 'status', '--bogus'], /^stratus stack: unknown option --bogus; see `stratus stack --help`$/],
    ['unknown flag', ['token', 'issue', '--devcie', 'd1'], /^stratus token: unknown option --devcie; did you mean --device\?$/],
    ['unknown flag', ['config', 'print', '--kafka-partitons', '3'], /^stratus config: unknown option --kafka-partitons; did you mean --kafka-partitions\?$/],
    ['unknown flag', ['bench', '--quik'], /^stratus bench: unknown option --quik; did you mean --quick\?$/],
    ['unknown flag', ['demo', '--devics', '5'], /^stratus demo: unknown option --devics; did you mean --devices\?$/],
    ['unknown flag', ['worker', '--concurency', '2'], /^stratus worker: unknown option --concurency; did you mean --concurrency\?$/],
    ['unknown short flag', ['stack', 'logs', '-x'], /^stratus stack: unknown option -x; see `stratus stack --help`$/],
    ['missing subcommand', ['stack'], /^stratus stack: a subcommand is needed: up, down, status or logs; see `stratus stack --help`$/],
    ['missing subcommand', ['token', '--device', 'd1'], /^stratus token: a subcommand is needed: issue; see `stratus token --help`$/],
    ['unknown subcommand', ['stack', 'stauts'], /^stratus stack: unknown subcommand "stauts"; did you mean status\?$/],
    ['unknown subcommand', ['config', 'optoins'], /^stratus config: unknown subcommand "optoins"; did you mean options\?$/],
    ['extra word', ['run', 'now'], /^stratus run: unexpected argument "now" \(run takes options only\); see `stratus run --help`$/],
    ['extra word', ['loadgen', '5s'], /^stratus loadgen: unexpected argument "5s" \(loadgen takes options only\)/],
    ['extra word', ['stack', 'up', 'now'], /^stratus stack: unexpected argument "now" after `stack up`; see `stratus stack --help`$/],
    ['extra word', ['stack', 'logs', 'kafka', 'redis'], /^stratus stack: unexpected argument "redis" after `stack logs kafka`/],
    ['extra word', ['token', 'issue', 'd1'], /^stratus token: unexpected argument "d1" after `token issue`/],
    ['extra word', ['config', 'print', 'x'], /^stratus config: unexpected argument "x" after `config print`/],
    ['extra word', ['bench', 'micro'], /^stratus bench: unexpected argument "micro" \(bench takes options only\)/],
    ['extra word', ['demo', 'now'], /^stratus demo: unexpected argument "now" \(demo takes options only\)/],
    ['bad number', ['loadgen', '--devices', 'many'], /^stratus loadgen: --devices must be an integer from 1 to 1000000 \(got "many"\)$/],
    ['bad number', ['run', '--threads', '0'], /^stratus run: --threads must be a whole number from 1 to 64 \(got "0"\)$/],
    ['bad number', ['stack', 'logs', '--lines', 'x'], /^stratus stack: --lines must be a whole number >= 1 \(got "x"\)$/],
    ['bad number', ['demo', '--devices', 'x'], /^stratus demo: --devices must be a whole number from 1 to 100000 \(got "x"\)$/],
    ['bad number', ['worker', '--concurrency', '0'], /^stratus worker: --concurrency must be a whole number from 1 to \d+ \(got "0"\)$/],
    ['bad duration', ['loadgen', '--duration', '90'], /^stratus loadgen: --duration must be a duration like 30s, 2m or 500ms above 0 \(got "90"\): a number needs a unit, e\.g\. 90s or 90ms$/],
    ['bad duration', ['loadgen', '--warmup', 'soon'], /^stratus loadgen: --warmup must be a duration like 30s, 2m or 500ms \(got "soon"\); Go's format: 250ms, 90s, 1h30m, 1m30\.5s$/],
    ['bad duration', ['token', 'issue', '--device', 'd1', '--ttl', '1d'], /^stratus token: --ttl must be a duration like 30s, 2m or 500ms above 0 \(got "1d"\): "d" is not a unit/, SECRET],
    ['baseline without report', ['loadgen', '--baseline', '.'], /^stratus loadgen: --baseline needs --report DIR/],
    ['baseline not a report', ['loadgen', '--baseline', '/nonexistent-report', '--report', '/tmp/unused-report'], /^stratus loadgen: --baseline: \/nonexistent-report is not a load-generator report: no such file or folder/],
    ['bad choice', ['loadgen', '--api', 'foo'], /^stratus loadgen: --api must be one of stratus, nimbus, event-stream, metrics \(got "foo"\)$/],
    ['bad choice', ['run', '--roles', 'gateway,cook'], /^stratus run: --roles: unknown role "cook"/],
    ['bad choice', ['bench', '--scenario', 'nope'], /^stratus bench: --scenario must be one of /],
    ['bad choice', ['worker', '--handler', 'nope'], /^stratus worker: --handler must be one of /],
    ['bad choice', ['config', 'print', '--log-level', 'loud'], /^stratus config: config logLevel must be one of debug, info, warn, error \(got "loud"; set by --log-level or STRATUS_LOG_LEVEL\)$/],
    ['value for a boolean', ['loadgen', '--tls=yes'], /^stratus loadgen: --tls takes no value \(got "yes"\); see `stratus loadgen --help`$/],
    ['value for a boolean', ['bench', '--quick=1'], /^stratus bench: --quick takes no value \(got "1"\)/],
    ['value for a boolean', ['stack', 'logs', '--follow=no'], /^stratus stack: --follow takes no value \(got "no"\)/],
    ['missing value', ['loadgen', '--duration'], /^stratus loadgen: --duration needs a value; see `stratus loadgen --help`$/],
    ['missing value', ['run', '--roles'], /^stratus run: --roles needs a value/],
    ['missing value', ['loadgen', '--target', '--devices', '5'], /^stratus loadgen: --target needs a value \(got the option "--devices" next; for a value that starts with "-" write --target=--devices\)/],
    ['missing value', ['config', 'print', '--redis-port'], /^stratus config: --redis-port needs a value/],
    ['bad config flag', ['run', '--kafka-partitions', '0'], /^stratus run: config kafka\.partitions must be an integer from 1 to \d+ .*\(got "0"; set by --kafka-partitions or STRATUS_KAFKA_PARTITIONS\)$/],
    ['bad config environment', ['loadgen'], /^stratus loadgen: config grpc\.port must be an integer/, { STRATUS_GRPC_PORT: 'x' }],
    ['unknown config variable', ['run'], /^stratus run: unknown setting STRATUS_GRPC_PROT/, { STRATUS_GRPC_PROT: '1' }],
    ['conflicting config', ['run', '--grpc-port', '7000', '--http-port', '7000'], /^stratus run: grpc\.port and http\.port are both 7000; give each its own port/],
    ['missing config', ['token', 'issue', '--device', 'd1'], /^stratus token: config auth\.tokenSecret is not set: export STRATUS_AUTH_TOKEN_SECRET/],
  ];
  const runs = await pool(cases.map(([, args, , extra]) => () => stratus(args, { ...env, ...extra })));
  for (const [i, [what, args, stderr]] of cases.entries()) {
    const r = runs[i]!;
    const label = `${what}: stratus ${args.join(' ')}`;
    assert.equal(r.code, 2, `${label}: exit ${r.code}\n${r.stderr}`);
    assert.equal(r.stdout, '', `${label}: wrote to stdout`);
    assertOneLine(r, label);
    assert.match(r.stderr.trimEnd(), stderr, label);
  }
  assert.equal(redis.connections(), 0, 'a usage error connected to Redis');
  assert.equal(kafka.connections(), 0, 'a usage error connected to Kafka');
});

test('--version, -V, `version` and `<command> --version` print the version and the runtime, exit 0', async () => {
  const { version } = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
  const line = `stratus ${version} (node ${process.version}, ${process.platform} ${process.arch})\n`;
  const names = (await allCommands()).map((c) => c.name);
  const forms = [['--version'], ['-V'], ['version'], ...names.map((n) => [n, '--version']), ['loadgen', '-V'], ['stack', 'up', '--version'], ['run', '--grpc-prot', '1', '--version']];
  const runs = await pool(forms.map((args) => () => stratus(args)));
  for (const [i, args] of forms.entries()) {
    const r = runs[i]!;
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, line, args.join(' '));
    assert.equal(r.stderr, '', args.join(' '));
  }
  assert.match(line, /^stratus \d+\.\d+\.\d+\S* \(node v\d+\.\d+\.\d+, \w+ \w+\)\n$/);
});

test('`stratus help <command>` is `stratus <command> --help`', async () => {
  const [a, b] = await Promise.all([stratus(['help', 'loadgen']), stratus(['loadgen', '--help'])]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(a.stdout, b.stdout);
  assert.match(a.stdout, /^Usage: stratus loadgen\b/m);
});
