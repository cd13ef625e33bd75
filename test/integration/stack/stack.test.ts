/**
 * `stratus stack` against real redis-server and Kafka processes, on ports and a data dir of this
 * test's own, so it never touches the stack the rest of the suite uses.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { PROJECT_ROOT } from '../../../src/config.js';
import { isAlive, portAnswers, readPid } from '../../../src/stack/processes.js';
import { privateStack, type PrivateStack } from '../../helpers/private-stack.js';

const CLI = join(PROJECT_ROOT, 'bin', 'stratus.js');

type Stack = PrivateStack;

const newStack = (): Promise<Stack> => privateStack('stratus-stack-');

function stratus(stack: Stack, ...args: string[]) {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...stack.env };
  const r = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', timeout: 150_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('stack up starts Kafka and Redis, a second up is a no-op, down leaves no process', { timeout: 300_000 }, async (t) => {
  const s = await newStack();
  t.after(() => {
    stratus(s, 'stack', 'down');
    rmSync(s.dir, { recursive: true, force: true });
  });
  // A stale pid file naming a live process that is not ours (this test): up must not trust it, down must not kill it.
  mkdirSync(join(s.dir, 'run'), { recursive: true });
  writeFileSync(join(s.dir, 'run', 'redis.pid'), `${process.pid}\n`);

  const first = stratus(s, 'stack', 'up');
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /removing stale pid file/);
  assert.match(first.stdout, new RegExp(`redis\\s+started\\s+127\\.0\\.0\\.1:${s.redisPort}`));
  assert.match(first.stdout, new RegExp(`kafka\\s+started\\s+127\\.0\\.0\\.1:${s.kafkaPort}`));
  assert.match(first.stdout, /stratus\.events \(3 partitions\), stratus\.results \(3 partitions\)/);
  const redisPid = readPid(join(s.dir, 'run', 'redis.pid'));
  const kafkaPid = readPid(join(s.dir, 'run', 'kafka.pid'));
  assert.ok(redisPid !== null && redisPid !== process.pid && isAlive(redisPid));
  assert.ok(kafkaPid !== null && isAlive(kafkaPid));

  const second = stratus(s, 'stack', 'up');
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /redis\s+running/);
  assert.match(second.stdout, /kafka\s+running/);
  assert.doesNotMatch(second.stdout, /started/);
  assert.equal(readPid(join(s.dir, 'run', 'redis.pid')), redisPid);
  assert.equal(readPid(join(s.dir, 'run', 'kafka.pid')), kafkaPid);

  const status = stratus(s, 'stack', 'status');
  assert.equal(status.code, 0, status.stdout + status.stderr);
  assert.match(status.stdout, new RegExp(`kafka\\s+running\\s+127\\.0\\.0\\.1:${s.kafkaPort}\\s+pid ${kafkaPid}`));
  assert.doesNotMatch(status.stdout, /NOT ANSWERING/);

  const logs = stratus(s, 'stack', 'logs', 'kafka', '--lines', '5');
  assert.equal(logs.code, 0);
  assert.match(logs.stdout, /kafka\.log <==/);

  const down = stratus(s, 'stack', 'down');
  assert.equal(down.code, 0, down.stderr);
  assert.equal(isAlive(redisPid), false);
  assert.equal(isAlive(kafkaPid), false);
  assert.equal(await portAnswers('127.0.0.1', s.redisPort), false);
  assert.equal(await portAnswers('127.0.0.1', s.kafkaPort), false);
  assert.equal(existsSync(join(s.dir, 'run', 'kafka.pid')), false);
  assert.ok(isAlive(process.pid));

  const after = stratus(s, 'stack', 'status');
  assert.equal(after.code, 3);
  assert.match(after.stdout, /redis\s+stopped/);
});

test('a port held by another process fails with one clear line and starts nothing', { timeout: 60_000 }, async (t) => {
  const s = await newStack();
  const squatter = createServer((c) => c.destroy());
  await new Promise<void>((r) => squatter.listen(s.redisPort, '127.0.0.1', r));
  t.after(() => {
    squatter.close();
    rmSync(s.dir, { recursive: true, force: true });
  });
  const r = stratus(s, 'stack', 'up');
  assert.equal(r.code, 1);
  // Progress lines may come first; the failure itself is one line.
  const errors = r.stderr.trim().split('\n').filter((l) => l.startsWith('stratus '));
  assert.equal(errors.length, 1, r.stderr);
  assert.match(errors[0]!, new RegExp(`127\\.0\\.0\\.1:${s.redisPort} is in use by a process this stack did not start.*--redis-port`));
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  assert.equal(await portAnswers('127.0.0.1', s.kafkaPort), false);
});

test('a corrupt Kafka data dir fails clearly and leaves nothing half-started', { timeout: 120_000 }, async (t) => {
  const s = await newStack();
  t.after(() => {
    stratus(s, 'stack', 'down');
    rmSync(s.dir, { recursive: true, force: true });
  });
  mkdirSync(join(s.dir, 'kafka', 'data'), { recursive: true });
  writeFileSync(join(s.dir, 'kafka', 'data', 'garbage'), 'not kafka');
  const r = stratus(s, 'stack', 'up');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /holds data but no meta\.properties; run `stratus stack up --fresh`/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  // Redis was started by this call before Kafka failed: it must have been stopped again.
  assert.equal(await portAnswers('127.0.0.1', s.redisPort), false);
  assert.equal(existsSync(join(s.dir, 'run', 'redis.pid')), false);
});
