/**
 * Secrets (auth.tokenSecret, redis.password) and device tokens never appear in logs, metrics,
 * `config print`, error messages or the load generator's output: a real `stratus run` at log level
 * debug serves authenticated and refused devices, and every text it produced is searched.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { issueToken } from '../../../src/auth/token.js';
import { findLogLine } from '../../../src/log.js';
import { loadConfig, PROJECT_ROOT } from '../../../src/config.js';
import { deleteTopics } from '../../../src/kafka/admin.js';
import { topology } from '../../../src/topology.js';
import { testConfig } from '../../helpers/config.js';
import { TestDevice } from '../../helpers/device.js';
import { unusedPort } from '../../helpers/ports.js';

const exec = promisify(execFile);
const STRATUS = join(PROJECT_ROOT, 'bin', 'stratus.js');
const secret = `tok-${randomBytes(24).toString('hex')}`;
const config = testConfig({ 'kafka-partitions': '2' });
const t = topology(config);
after(() => deleteTopics(config, [t.topics.events, t.topics.results]).catch(() => {}));

function assertClean(text: string, what: string, needles: string[]): void {
  for (const n of needles) assert.ok(!text.includes(n), `${what} contains a secret or token (${n.slice(0, 8)}…)`);
}

test('config print and config errors mask secrets', async () => {
  const env = { ...process.env, STRATUS_AUTH_TOKEN_SECRET: secret, STRATUS_REDIS_PASSWORD: 'redis-pw-Zq81x' };
  const { stdout } = await exec(process.execPath, [STRATUS, 'config', 'print'], { env });
  assert.match(stdout, /auth\.tokenSecret\s+\*\*\*/);
  assert.match(stdout, /redis\.password\s+\*\*\*/);
  assertClean(stdout, 'config print', [secret, 'redis-pw-Zq81x']);
  // A refused secret (too short) is not echoed either.
  assert.throws(() => loadConfig({ env: { STRATUS_AUTH_TOKEN_SECRET: 'short-Xy9' }, envFile: null }), (e: Error) => /auth\.tokenSecret must be at least 32 bytes/.test(e.message) && !e.message.includes('short-Xy9'));
});

test('a debug-level engine serving authenticated and refused devices logs and exports no secret or token', { timeout: 120_000 }, async () => {
  const grpcPort = await unusedPort();
  const httpPort = await unusedPort();
  const child = spawn(process.execPath, [STRATUS, 'run', '--roles', 'gateway,processor,forwarder', '--grpc-port', String(grpcPort), '--instance-id', `sec-${grpcPort}`, '--log-level', 'debug'], {
    env: { ...process.env, STRATUS_KAFKA_TOPIC_PREFIX: config.kafka.topicPrefix, STRATUS_REDIS_KEY_PREFIX: config.redis.keyPrefix, STRATUS_KAFKA_PARTITIONS: '2', STRATUS_HTTP_PORT: String(httpPort), STRATUS_AUTH_TOKEN_SECRET: secret, STRATUS_GATEWAY_DRAIN_GRACE_MS: '500' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  try {
    const deadline = Date.now() + 60_000;
    while (findLogLine(out, 'started', 'run') === null) {
      assert.ok(Date.now() < deadline && child.exitCode === null, `engine did not start: ${out.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const good = issueToken(secret, 'sec-1', Math.floor(Date.now() / 1000) + 600);
    const forged = issueToken(`${secret}-other`, 'sec-2', Math.floor(Date.now() / 1000) + 600);
    const d = new TestDevice('sec-1').connect(`127.0.0.1:${grpcPort}`, { token: good });
    d.send([{ seq: 1, type: 'sq', value: 5 }]);
    await d.until(() => d.results.length === 1, 30_000, 'a result');
    d.close();
    const bad = new TestDevice('sec-2').connect(`127.0.0.1:${grpcPort}`, { token: forged });
    await bad.until(() => bad.ended, 15_000, 'refusal');
    bad.close();
    assert.equal(bad.status?.code, 16);
    assertClean(bad.status!.details, 'the UNAUTHENTICATED details', [secret, forged]);
    const sse = await fetch(`http://127.0.0.1:${httpPort}/v1/devices/sec-2/events`, { headers: { authorization: `Bearer ${forged}` } });
    assert.equal(sse.status, 401);
    const sseBody = await sse.text();
    assertClean(sseBody, 'the 401 body', [secret, forged]);
    const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    assert.match(metrics, /stratus_/);
    assertClean(metrics, '/metrics', [secret, good, forged]);
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
  assert.ok(out.length > 0);
  assertClean(out, 'the engine\'s stdout and stderr', [secret]);
  assert.ok(!out.includes(secret.slice(4, 20)), 'no part of the secret in the logs');
});

test('the load generator\'s output and report carry neither the secret nor the tokens it minted', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stratus-lg-secret-'));
  try {
    // No server: every device fails to connect; what matters is what the run writes about itself.
    const port = await unusedPort();
    const { stdout, stderr } = await exec(process.execPath, [STRATUS, 'loadgen', '--target', `127.0.0.1:${port}`, '--devices', '3', '--duration', '1s', '--warmup', '0s', '--drain', '1s', '--connect-timeout', '1s', '--token-secret', secret, '--json', '--report', dir], { env: process.env }).catch((e: { stdout: string; stderr: string }) => e);
    const texts = [stdout, stderr, ...readdirSync(dir).map((f) => readFileSync(join(dir, f), 'utf8'))];
    assert.ok(texts.join('').length > 0);
    for (const text of texts) {
      assertClean(text, 'loadgen output', [secret]);
      assert.ok(!/v1\.[A-Za-z0-9_-]+\.\d{9,12}\.[A-Za-z0-9_-]{43}/.test(text), 'loadgen output contains a device token');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
