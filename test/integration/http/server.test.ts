import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pingRedis } from '../../../src/redis/client.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { engineReadiness } from '../../../src/http/readiness.js';
import { HttpSurface } from '../../../src/http/server.js';
import { metrics } from '../../../src/http/metrics.js';
import { testConfig } from '../../helpers/config.js';
import { unusedPort } from '../../helpers/ports.js';

async function surfaceFor(redisPort: string) {
  const config = testConfig({ 'redis-port': redisPort });
  return HttpSurface.start(config, {
    async check() {
      return pingRedis(config, 500).then(() => null, (e: Error) => `Redis: ${e.message}`);
    },
  }, { port: 0 });
}

test('/livez answers; /readyz is 200 with Redis up, 503 naming Redis when it is not, 503 while draining', { timeout: 20_000 }, async (t) => {
  const up = await surfaceFor(String(testConfig().redis.port));
  t.after(() => up.close());
  const base = `http://127.0.0.1:${up.port}`;
  assert.equal((await fetch(`${base}/livez`)).status, 200);
  assert.equal((await fetch(`${base}/readyz`)).status, 200);
  up.draining = true;
  const draining = await fetch(`${base}/readyz`);
  assert.equal(draining.status, 503);
  assert.match(await draining.text(), /draining/);
  assert.equal((await fetch(`${base}/nope`)).status, 404);
  assert.equal((await fetch(`${base}/livez`, { method: 'POST' })).status, 405);

  const down = await surfaceFor(String(await unusedPort()));
  t.after(() => down.close());
  const r = await fetch(`http://127.0.0.1:${down.port}/readyz`);
  assert.equal(r.status, 503);
  assert.match(await r.text(), /not ready: Redis: Redis at 127\.0\.0\.1:\d+ did not answer PING/);
});

test('/metrics is Prometheus text with HELP and TYPE, stratus_ names, and no device ids as labels', { timeout: 20_000 }, async (t) => {
  const s = await surfaceFor(String(testConfig().redis.port));
  t.after(() => s.close());
  metrics.eventsRejected.inc({ code: 'INVALID_SEQ' });
  const res = await fetch(`http://127.0.0.1:${s.port}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await res.text();
  assert.match(text, /^# HELP stratus_events_rejected_total Events refused, by reject code\.$/m);
  assert.match(text, /^# TYPE stratus_events_rejected_total counter$/m);
  assert.match(text, /^stratus_events_rejected_total\{code="INVALID_SEQ"\} [1-9]\d*$/m);
  assert.match(text, /^stratus_process_nodejs_eventloop_lag_seconds /m);
  for (const line of text.split('\n').filter((l) => l.startsWith('stratus_'))) {
    assert.ok(/^stratus_[a-z0-9_]+(\{[^}]*\})? /.test(line), line);
    assert.doesNotMatch(line, /\{[^}]*device/i, line);
  }
});

/** A Redis of the test's own on a free port, without persistence: the test may stop it. */
async function ownRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const config = testConfig({ 'redis-port': String(port) });
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await pingRedis(config, 300);
      return child;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

test('/readyz (the engine\'s own check: Redis and Kafka) goes 503 naming Redis when Redis stops, and 200 again when it is back', { timeout: 60_000 }, async (t) => {
  const port = await unusedPort();
  let redis = await ownRedis(port);
  t.after(() => redis.kill('SIGKILL'));
  const s = await HttpSurface.start(testConfig({ 'redis-port': String(port) }), engineReadiness(testConfig({ 'redis-port': String(port) })), { port: 0 });
  t.after(() => s.close());
  const readyz = async () => {
    const r = await fetch(`http://127.0.0.1:${s.port}/readyz`);
    return { status: r.status, text: await r.text() };
  };
  assert.deepEqual(await readyz(), { status: 200, text: 'ready\n' });
  redis.kill('SIGKILL');
  await once(redis, 'exit');
  const down = await readyz();
  assert.equal(down.status, 503);
  assert.match(down.text, /^not ready: Redis: /);
  redis = await ownRedis(port);
  assert.deepEqual(await readyz(), { status: 200, text: 'ready\n' });
});
