import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { envName, flagName, formatConfig, loadConfig, OPTIONS } from '../../src/config.js';
import { ErrorCode, StratusError } from '../../src/errors.js';

function envFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'stratus-env-'));
  const file = join(dir, '.env');
  writeFileSync(file, text);
  return file;
}

test('names are derived from the key: STRATUS_SECTION_NAME and --section-name', () => {
  assert.equal(envName('kafka.controllerPort'), 'STRATUS_KAFKA_CONTROLLER_PORT');
  assert.equal(flagName('kafka.controllerPort'), 'kafka-controller-port');
  assert.equal(envName('dataDir'), 'STRATUS_DATA_DIR');
  assert.equal(flagName('stack.startTimeoutMs'), 'stack-start-timeout-ms');
  const envs = Object.keys(OPTIONS).map(envName);
  assert.equal(new Set(envs).size, envs.length, 'two options share an environment name');
});

test('precedence: default <- .env file <- environment <- flag', (t) => {
  const file = envFile('STRATUS_REDIS_PORT=7001\nSTRATUS_GRPC_PORT=7100\nSTRATUS_HTTP_PORT=7200\n');
  t.after(() => rmSync(file, { force: true }));
  const c = loadConfig({ envFile: file, env: { STRATUS_GRPC_PORT: '7101', STRATUS_HTTP_PORT: '7201' }, flags: { 'http-port': '7202' } });
  assert.equal(c.kafka.partitions, 12); // default
  assert.equal(c.redis.port, 7001); // .env
  assert.equal(c.grpc.port, 7101); // env over .env
  assert.equal(c.http.port, 7202); // flag over env
});

test('the result is frozen, deeply', () => {
  const c = loadConfig({ envFile: null, env: {} });
  assert.throws(() => {
    (c.redis as { port: number }).port = 1;
  }, TypeError);
  assert.throws(() => {
    (c.kafka.brokers as string[]).push('x:1');
  }, TypeError);
});

test('a bad value names the option, the value, what is allowed and where it was set', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ STRATUS_REDIS_PORT: 'abc' }, /^config redis\.port must be an integer from 1 to 65535 \(port\) \(got "abc"; set by --redis-port or STRATUS_REDIS_PORT\)$/],
    [{ STRATUS_REDIS_PORT: '70000' }, /redis\.port must be an integer from 1 to 65535.*got "70000"/],
    [{ STRATUS_KAFKA_PARTITIONS: '1.5' }, /kafka\.partitions must be an integer from 1 to 10000 \(count\) \(got "1\.5"/],
    [{ STRATUS_LOG_LEVEL: 'loud' }, /logLevel must be one of debug, info, warn, error \(got "loud"/],
    [{ STRATUS_KAFKA_BROKERS: 'localhost' }, /kafka\.brokers must be a comma-separated list of host:port \(got "localhost"/],
    [{ STRATUS_KAFKA_BROKERS: 'a:1,b:99999' }, /kafka\.brokers must be a comma-separated list/],
    [{ STRATUS_DATA_DIR: ' ' }, /dataDir must be a non-empty path/],
    [{ STRATUS_REDIS_PROT: '1' }, /^unknown setting STRATUS_REDIS_PROT/],
  ];
  for (const [env, message] of cases) {
    assert.throws(() => loadConfig({ envFile: null, env }), (err: unknown) => {
      assert.ok(err instanceof StratusError, `${JSON.stringify(env)} threw ${String(err)}`);
      assert.equal(err.code, ErrorCode.CONFIG_INVALID);
      assert.match(err.message, message);
      return true;
    });
  }
});

test('lists, paths and hosts parse as documented', () => {
  const c = loadConfig({ envFile: null, env: { STRATUS_KAFKA_BROKERS: ' 127.0.0.1:9092 , [::1]:9093,kafka-1:19092', STRATUS_DATA_DIR: 'var/x' }, root: '/opt/stratus' });
  assert.deepEqual(c.kafka.brokers, ['127.0.0.1:9092', '[::1]:9093', 'kafka-1:19092']);
  assert.equal(c.dataDir, '/opt/stratus/var/x');
  assert.equal(loadConfig({ envFile: null, env: { STRATUS_DATA_DIR: '/abs' } }).dataDir, '/abs');
});

test('config print masks secrets', () => {
  const unset = formatConfig(loadConfig({ envFile: null, env: {} }));
  assert.match(unset, /^redis\.password\s+\(unset\)$/m);
  const set = formatConfig(loadConfig({ envFile: null, env: { STRATUS_REDIS_PASSWORD: 'hunter2' } }));
  assert.match(set, /^redis\.password\s+\*\*\*$/m);
  assert.doesNotMatch(set, /hunter2/);
  assert.equal(set.split('\n').length, Object.keys(OPTIONS).length);
});
