/**
 * src/config.ts: names derived from keys, precedence (defaults <- .env file <- environment <- flags),
 * validation messages, freezing, path resolution and secret masking. Every call passes its own env
 * object and .env file, so nothing here reads the real process environment or the working folder.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { pathToFileURL } from 'node:url';
import { configFlagOptions, configValue, envName, flagName, formatConfig, loadConfig, OPTIONS, PROJECT_ROOT, type Config, type OptionKey, type OptionSpec } from '../../src/config.js';
import { ErrorCode, StratusError } from '../../src/errors.js';

const KEYS = Object.keys(OPTIONS) as OptionKey[];
const spec = (key: OptionKey): OptionSpec => OPTIONS[key];

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'stratus-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function envFile(t: TestContext, text: string): string {
  const file = join(tempDir(t), '.env');
  writeFileSync(file, text);
  return file;
}

/** Defaults only: no .env file, an empty environment, no flags. */
const defaults = (): Config => loadConfig({ envFile: null, env: {} });

/** A valid value other than the default, and what it parses to. */
function sample(key: OptionKey): { raw: string; parsed: unknown } {
  const s = spec(key);
  switch (s.kind) {
    case 'int': {
      const n = Number(s.default) === s.min ? s.max! : s.min!;
      return { raw: String(n), parsed: n };
    }
    case 'enum': {
      const v = s.values!.find((x) => x !== s.default)!;
      return { raw: v, parsed: v };
    }
    case 'hostPortList':
      return { raw: 'broker-a.test:19092,broker-b.test:19093', parsed: ['broker-a.test:19092', 'broker-b.test:19093'] };
    case 'bool':
      return { raw: s.default === 'true' ? 'false' : 'true', parsed: s.default !== 'true' };
    case 'string':
      if (s.path) return { raw: '/srv/stratus-test', parsed: '/srv/stratus-test' };
      // A string with a pattern (http.corsOrigin, redis.keyPrefix, archive.postgresSchema): a value it takes.
      if (s.pattern) {
        const v = ['https://test.example', 'test_schema'].find((c) => s.pattern!.test(c) && c !== s.default)!;
        return { raw: v, parsed: v };
      }
      // Secrets long enough for auth.tokenSecret's 32-byte minimum.
      return s.secret ? { raw: `test-${key}`.padEnd(40, '-'), parsed: `test-${key}`.padEnd(40, '-') } : { raw: `test-${key}`, parsed: `test-${key}` };
  }
}

/** Asserts that `config` has `parsed` at `key` and the defaults everywhere else. */
function assertOnly(config: Config, key: OptionKey, parsed: unknown, how: string): void {
  const base = defaults();
  for (const k of KEYS) {
    if (k === key) assert.deepEqual(configValue(config, k), parsed, `${key} set by ${how}`);
    else assert.deepEqual(configValue(config, k), configValue(base, k), `setting ${key} by ${how} changed ${k}`);
  }
}

function assertConfigError(fn: () => unknown, message: RegExp | string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof StratusError, `expected a StratusError, got ${String(err)}`);
    assert.equal(err.code, ErrorCode.CONFIG_INVALID);
    assert.equal(err.retryable, false);
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

test('names are derived from the key: STRATUS_SECTION_NAME and --section-name', () => {
  assert.equal(envName('kafka.controllerPort'), 'STRATUS_KAFKA_CONTROLLER_PORT');
  assert.equal(flagName('kafka.controllerPort'), 'kafka-controller-port');
  assert.equal(envName('dataDir'), 'STRATUS_DATA_DIR');
  assert.equal(flagName('dataDir'), 'data-dir');
  assert.equal(envName('stack.startTimeoutMs'), 'STRATUS_STACK_START_TIMEOUT_MS');
  assert.equal(flagName('stack.startTimeoutMs'), 'stack-start-timeout-ms');
  // docker-compose.yml, the README and scripts rely on these staying as they are.
  assert.equal(envName('kafka.brokers'), 'STRATUS_KAFKA_BROKERS');
  assert.equal(envName('redis.host'), 'STRATUS_REDIS_HOST');
  assert.equal(envName('redis.port'), 'STRATUS_REDIS_PORT');
  assert.equal(envName('grpc.port'), 'STRATUS_GRPC_PORT');
  assert.equal(envName('http.port'), 'STRATUS_HTTP_PORT');

  for (const key of KEYS) {
    assert.match(envName(key), /^STRATUS_[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/, key);
    assert.match(flagName(key), /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/, key);
    assert.equal(envName(key), `STRATUS_${flagName(key).replace(/-/g, '_').toUpperCase()}`, key);
  }
  const envs = KEYS.map(envName);
  const flags = KEYS.map(flagName);
  assert.equal(new Set(envs).size, KEYS.length, 'two options share an environment name');
  assert.equal(new Set(flags).size, KEYS.length, 'two options share a flag');
  assert.deepEqual(Object.keys(configFlagOptions()).sort(), [...flags].sort());
  assert.ok(!flags.includes('help') && !flags.includes('roles') && !flags.includes('threads'), 'an option flag clashes with a command flag');
});

test('every option is read from its environment name, its .env line and its flag, and nothing else changes', (t) => {
  const dir = tempDir(t);
  for (const key of KEYS) {
    // Valid only with kafka.replicationFactor raised too: its own test below.
    if (key === 'kafka.minInsyncReplicas') continue;
    const { raw, parsed } = sample(key);
    assert.notDeepEqual(configValue(defaults(), key), parsed, `${key}: the sample must differ from the default`);
    assertOnly(loadConfig({ envFile: null, env: { [envName(key)]: raw } }), key, parsed, envName(key));
    assertOnly(loadConfig({ envFile: null, env: {}, flags: { [flagName(key)]: raw } }), key, parsed, `--${flagName(key)}`);
    const file = join(dir, `${key}.env`);
    writeFileSync(file, `${envName(key)}=${raw}\n`);
    assertOnly(loadConfig({ envFile: file, env: {} }), key, parsed, `${envName(key)} in a .env file`);
  }
});

test('kafka.minInsyncReplicas is read like the others, and refused above kafka.replicationFactor naming both', () => {
  const c = loadConfig({ envFile: null, env: { STRATUS_KAFKA_REPLICATION_FACTOR: '3', STRATUS_KAFKA_MIN_INSYNC_REPLICAS: '2' } });
  assert.equal(c.kafka.replicationFactor, 3);
  assert.equal(c.kafka.minInsyncReplicas, 2);
  assert.equal(loadConfig({ envFile: null, env: {}, flags: { 'kafka-replication-factor': '3', 'kafka-min-insync-replicas': '3' } }).kafka.minInsyncReplicas, 3);
  assert.throws(() => loadConfig({ envFile: null, env: { STRATUS_KAFKA_MIN_INSYNC_REPLICAS: '2' } }), (err: unknown) => {
    assert.ok(err instanceof StratusError);
    assert.equal(err.code, ErrorCode.CONFIG_INVALID);
    assert.match(err.message, /kafka\.minInsyncReplicas must be at most kafka\.replicationFactor \(1\).*got "2".*STRATUS_KAFKA_MIN_INSYNC_REPLICAS/);
    return true;
  });
});

test('redis.keyPrefix refuses braces (they would change the hash tags on Redis Cluster)', () => {
  assert.throws(() => loadConfig({ envFile: null, env: { STRATUS_REDIS_KEY_PREFIX: 'a{b}:' } }), /redis\.keyPrefix must be text without \{ or \}/);
});

test('defaults are the documented ones', () => {
  const c = loadConfig({ envFile: null, env: {}, root: '/opt/stratus' });
  assert.deepEqual(c.kafka.brokers, ['127.0.0.1:9092']);
  assert.equal(c.redis.host, '127.0.0.1');
  assert.equal(c.redis.port, 6379);
  assert.equal(c.redis.password, '');
  assert.equal(c.kafka.partitions, 12);
  assert.equal(c.grpc.port, 50051);
  assert.equal(c.http.port, 8080);
  assert.equal(c.dataDir, '/opt/stratus/.stratus/data');
  for (const key of KEYS) {
    const s = spec(key);
    if (s.kind === 'int') {
      assert.ok(s.min !== undefined && s.max !== undefined && s.min <= Number(s.default) && Number(s.default) <= s.max, `${key}: default outside ${s.min}..${s.max}`);
      assert.equal(configValue(c, key), Number(s.default), key);
    }
  }
});

test('precedence: default <- .env file <- environment <- flag', (t) => {
  const file = envFile(t, 'STRATUS_KAFKA_PARTITIONS=3\nSTRATUS_REDIS_PORT=7001\n');
  const partitions = (input: Parameters<typeof loadConfig>[0]) => loadConfig(input).kafka.partitions;
  assert.equal(partitions({ envFile: null, env: {} }), 12);
  assert.equal(partitions({ envFile: file, env: {} }), 3);
  assert.equal(partitions({ envFile: file, env: { STRATUS_KAFKA_PARTITIONS: '4' } }), 4);
  assert.equal(partitions({ envFile: file, env: { STRATUS_KAFKA_PARTITIONS: '4' }, flags: { 'kafka-partitions': '5' } }), 5);
  assert.equal(partitions({ envFile: file, env: {}, flags: { 'kafka-partitions': '5' } }), 5);
  assert.equal(partitions({ envFile: null, env: { STRATUS_KAFKA_PARTITIONS: '4' } }), 4);

  // Each layer only overrides what it sets.
  const c = loadConfig({ envFile: file, env: { STRATUS_GRPC_PORT: '7101', STRATUS_HTTP_PORT: '7201' }, flags: { 'http-port': '7202' } });
  assert.deepEqual([c.kafka.partitions, c.redis.port, c.grpc.port, c.http.port, c.kafka.lingerMs], [3, 7001, 7101, 7202, 5]);
});

test('the .env file: STRATUS_ENV_FILE names it, envFile: null skips it, a missing one is fine', (t) => {
  const file = envFile(t, '# a comment\nSTRATUS_KAFKA_PARTITIONS=3\nOTHER_TOOL_SETTING=x\n');
  assert.equal(loadConfig({ env: { STRATUS_ENV_FILE: file } }).kafka.partitions, 3);
  assert.equal(loadConfig({ envFile: null, env: { STRATUS_ENV_FILE: file } }).kafka.partitions, 12);
  assert.equal(loadConfig({ envFile: join(tempDir(t), 'absent.env'), env: {} }).kafka.partitions, 12);
});

test('the result is frozen, deeply (assigning throws in strict mode)', () => {
  const c = defaults();
  const write = (f: () => void) => assert.throws(f, TypeError);
  write(() => ((c as { dataDir: string }).dataDir = '/x'));
  write(() => ((c as { redis: unknown }).redis = {}));
  write(() => ((c.redis as { port: number }).port = 1));
  write(() => ((c.kafka as { partitions: number }).partitions = 1));
  write(() => (c.kafka.brokers as string[]).push('x:1'));
  write(() => ((c.kafka.brokers as string[])[0] = 'x:1'));
  write(() => ((c as unknown as Record<string, unknown>).extra = 1));
  write(() => delete (c.grpc as { port?: number }).port);
  const frozen = (o: unknown): boolean => o === null || typeof o !== 'object' || (Object.isFrozen(o) && Object.values(o).every(frozen));
  assert.ok(frozen(c));
  assert.equal(c.redis.port, 6379);
});

test('a bad value names the option, the value, what is allowed and where it is set', () => {
  assertConfigError(() => loadConfig({ envFile: null, env: { STRATUS_REDIS_PORT: 'abc' } }),
    'config redis.port must be an integer from 1 to 65535 (port) (got "abc"; set by --redis-port or STRATUS_REDIS_PORT)');
  const cases: [Record<string, string>, RegExp][] = [
    [{ STRATUS_REDIS_PORT: '70000' }, /^config redis\.port must be an integer from 1 to 65535 \(port\) \(got "70000";/],
    [{ STRATUS_REDIS_PORT: '0' }, /^config redis\.port must be an integer from 1 to 65535 .*got "0"/],
    [{ STRATUS_REDIS_PORT: '' }, /^config redis\.port must be .*got ""/],
    [{ STRATUS_KAFKA_PARTITIONS: '1.5' }, /^config kafka\.partitions must be an integer from 1 to 10000 \(count\) \(got "1\.5"; set by --kafka-partitions or STRATUS_KAFKA_PARTITIONS\)$/],
    [{ STRATUS_KAFKA_LINGER_MS: '-1' }, /^config kafka\.lingerMs must be an integer from 0 to 1000 \(ms\) \(got "-1"; set by --kafka-linger-ms or STRATUS_KAFKA_LINGER_MS\)$/],
    [{ STRATUS_KAFKA_LINGER_MS: '5ms' }, /kafka\.lingerMs must be an integer .*got "5ms"/],
    [{ STRATUS_KAFKA_LINGER_MS: '1e3' }, /kafka\.lingerMs must be an integer .*got "1e3"/],
    [{ STRATUS_LOG_LEVEL: 'loud' }, /^config logLevel must be one of debug, info, warn, error \(got "loud"; set by --log-level or STRATUS_LOG_LEVEL\)$/],
    [{ STRATUS_LOG_LEVEL: 'INFO' }, /logLevel must be one of debug, info, warn, error \(got "INFO"/],
    [{ STRATUS_KAFKA_BROKERS: 'localhost' }, /^config kafka\.brokers must be a comma-separated list of host:port \(got "localhost"; set by --kafka-brokers or STRATUS_KAFKA_BROKERS\)$/],
    [{ STRATUS_DATA_DIR: ' ' }, /^config dataDir must be a non-empty path \(got " "; set by --data-dir or STRATUS_DATA_DIR\)$/],
  ];
  for (const [env, message] of cases) assertConfigError(() => loadConfig({ envFile: null, env }), message);
});

test('the message is the same whether the value came from a flag, the environment or the .env file', (t) => {
  const expected = 'config grpc.port must be an integer from 1 to 65535 (port) (got "x1"; set by --grpc-port or STRATUS_GRPC_PORT)';
  assertConfigError(() => loadConfig({ envFile: null, env: {}, flags: { 'grpc-port': 'x1' } }), expected);
  assertConfigError(() => loadConfig({ envFile: null, env: { STRATUS_GRPC_PORT: 'x1' } }), expected);
  assertConfigError(() => loadConfig({ envFile: envFile(t, 'STRATUS_GRPC_PORT=x1\n'), env: {} }), expected);
  // A good flag rescues a bad environment value: only the winning value is parsed.
  assert.equal(loadConfig({ envFile: null, env: { STRATUS_GRPC_PORT: 'x1' }, flags: { 'grpc-port': '7000' } }).grpc.port, 7000);
});

test('unknown STRATUS_* variables are rejected, in the environment and in the .env file', (t) => {
  assertConfigError(() => loadConfig({ envFile: null, env: { STRATUS_REDIS_PROT: '1' } }),
    'unknown setting STRATUS_REDIS_PROT: see `stratus config print` for the options');
  assertConfigError(() => loadConfig({ envFile: envFile(t, 'STRATUS_KAFKA_BROKER=127.0.0.1:9092\n'), env: {} }), /^unknown setting STRATUS_KAFKA_BROKER:/);
  // STRATUS_ENV_FILE is the one STRATUS_* name that is not an option; other prefixes are not ours.
  assert.doesNotThrow(() => loadConfig({ envFile: null, env: { STRATUS_ENV_FILE: '/nonexistent', KAFKA_HEAP_OPTS: '-Xmx1g', PATH: '/bin', stratus_lower: 'x' } }));
});

test('host:port lists parse as documented', () => {
  const brokers = (raw: string) => loadConfig({ envFile: null, env: { STRATUS_KAFKA_BROKERS: raw } }).kafka.brokers;
  assert.deepEqual(brokers(' 127.0.0.1:9092 , [::1]:9093,kafka-1:19092'), ['127.0.0.1:9092', '[::1]:9093', 'kafka-1:19092']);
  assert.deepEqual(brokers('kafka:29092'), ['kafka:29092']);
  assert.deepEqual(brokers('a:1,,b:65535,'), ['a:1', 'b:65535']);
  for (const bad of ['', ',', 'host', 'host:', ':9092', 'host:0', 'host:65536', 'host:port', '::1:9092', 'a b:1', 'a:1,b', 'a:1;b:2']) {
    const prefix = `config kafka.brokers must be a comma-separated list of host:port (got ${JSON.stringify(bad)};`;
    assertConfigError(() => brokers(bad), new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  }
});

test('a relative dataDir is resolved against the project root; an absolute one is kept', () => {
  const dataDir = (raw: string) => loadConfig({ envFile: null, env: { STRATUS_DATA_DIR: raw }, root: '/opt/stratus' }).dataDir;
  assert.equal(dataDir('var/x'), '/opt/stratus/var/x');
  assert.equal(dataDir('./var/../y'), '/opt/stratus/y');
  assert.equal(dataDir('.'), '/opt/stratus');
  assert.equal(dataDir('/abs/data'), '/abs/data');
  // Without `root`, the project root: the folder holding this project's package.json.
  assert.equal(loadConfig({ envFile: null, env: { STRATUS_DATA_DIR: 'd' } }).dataDir, join(PROJECT_ROOT, 'd'));
  assert.equal((JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { name: string }).name, 'stratus');
});

test('the project root is a plain path even when the folder name has a space', async (t) => {
  // Copies of the compiled modules under `<tmp>/with space/dist/src/`, as in a checkout there.
  const root = join(tempDir(t), 'with space');
  const here = new URL('.', import.meta.url);
  const compiledSrc = new URL('../../src/', here);
  mkdirSync(join(root, 'dist', 'src'), { recursive: true });
  for (const f of ['config.js', 'errors.js']) cpSync(new URL(f, compiledSrc), join(root, 'dist', 'src', f));
  writeFileSync(join(root, 'package.json'), '{"type":"module"}\n');
  const copy = (await import(pathToFileURL(join(root, 'dist', 'src', 'config.js')).href)) as typeof import('../../src/config.js');
  assert.equal(copy.PROJECT_ROOT, root);
  assert.ok(existsSync(join(copy.PROJECT_ROOT, 'package.json')));
});

test('formatConfig masks redis.password and never prints it', () => {
  const unset = formatConfig(defaults());
  assert.match(unset, /^redis\.password\s+\(unset\)$/m);
  const secret = 'hunter2-s3cret value';
  const set = formatConfig(loadConfig({ envFile: null, env: { STRATUS_REDIS_PASSWORD: secret } }));
  assert.match(set, /^redis\.password\s+\*\*\*$/m);
  assert.ok(!set.includes(secret) && !set.includes('hunter2'), 'the password leaked into formatConfig');
  // One line per option, in table order, each `key  value`.
  const lines = set.split('\n');
  assert.deepEqual(lines.map((l) => l.split(/\s+/)[0]), KEYS);
  assert.match(set, /^kafka\.brokers\s+127\.0\.0\.1:9092$/m);
  assert.match(formatConfig(loadConfig({ envFile: null, env: { STRATUS_KAFKA_BROKERS: 'a:1,b:2' } })), /^kafka\.brokers\s+a:1,b:2$/m);
  for (const key of KEYS.filter((k) => spec(k).secret)) {
    assert.doesNotMatch(formatConfig(loadConfig({ envFile: null, env: { [envName(key)]: 'leak-me'.padEnd(40, '-') } })), /leak-me/, key);
  }
});

test('http.corsOrigin takes *, an origin or nothing; anything else (a header Node would refuse on every response) stops the command', () => {
  for (const ok of ['*', '', 'https://app.example.com', 'http://127.0.0.1:5173']) {
    assert.equal(loadConfig({ env: { STRATUS_HTTP_CORS_ORIGIN: ok }, envFile: null }).http.corsOrigin, ok);
  }
  for (const bad of ['bad value', 'https://a.example.com/path', 'x\ny', 'app.example.com']) {
    assert.throws(() => loadConfig({ env: { STRATUS_HTTP_CORS_ORIGIN: bad }, envFile: null }), (e: unknown) => e instanceof StratusError && e.code === ErrorCode.CONFIG_INVALID && /http\.corsOrigin must be \*, an origin/.test(e.message), JSON.stringify(bad));
  }
});
