import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pingRedis } from '../../../src/redis/client.js';
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
