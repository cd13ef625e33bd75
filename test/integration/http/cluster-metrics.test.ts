/**
 * /metrics of `stratus run --threads 2`: the primary serves its own metrics merged with both
 * gateway worker processes', and the per-stage latency histograms count every event and result.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { PROJECT_ROOT } from '../../../src/config.js';
import { parseLogLine } from '../../../src/log.js';
import { deleteTopics } from '../../../src/kafka/admin.js';
import { topology } from '../../../src/topology.js';
import { testConfig } from '../../helpers/config.js';
import { TestDevice } from '../../helpers/device.js';
import { unusedPort } from '../../helpers/ports.js';

const config = testConfig();
const t = topology(config);
after(() => deleteTopics(config, [t.topics.events, t.topics.results]).catch(() => {}));

function sample(text: string, name: string): number {
  const m = new RegExp(`^${name.replace(/[{}"+.]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
  assert.ok(m !== null, `${name} in /metrics`);
  return Number(m[1]);
}

test('run --threads 2: /metrics merges both gateway workers with the primary; stage histograms count every event', { timeout: 120_000 }, async () => {
  const port = await unusedPort();
  const httpPort = await unusedPort();
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'stratus.js'), 'run', '--threads', '2', '--roles', 'gateway,processor,forwarder', '--grpc-port', String(port), '--http-port', String(httpPort)], {
    env: { ...process.env, STRATUS_KAFKA_TOPIC_PREFIX: config.kafka.topicPrefix, STRATUS_REDIS_KEY_PREFIX: config.redis.keyPrefix, STRATUS_KAFKA_PARTITIONS: '2' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      // The primary's `started` line (JSON, src/log.ts) comes once its gateway workers and its own roles are up.
      if (err.split('\n').some((l) => { const j = parseLogLine(l); return j?.msg === 'started' && Array.isArray(j.roles) && j.roles.includes('processor'); })) resolve();
    });
    child.on('exit', () => reject(new Error(`stratus run exited early: ${err}`)));
  });
  const devices = Array.from({ length: 10 }, (_, i) => new TestDevice(`cm-${i}`).connect(`127.0.0.1:${port}`));
  for (const d of devices) d.send(Array.from({ length: 20 }, (_, i) => ({ seq: i + 1, type: 'sq', value: i })));
  for (const d of devices) await d.until(() => d.results.length === 20, 60_000, '20 results');
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  assert.equal(sample(text, 'stratus_cluster_workers_scraped'), 2);
  assert.equal(sample(text, 'stratus_devices_connected'), 10, 'the sum over both workers');
  assert.equal(sample(text, 'stratus_events_durable_total'), 200);
  assert.equal(sample(text, 'stratus_results_delivered_total'), 200);
  for (const stage of ['ack', 'process', 'route', 'deliver']) assert.equal(sample(text, `stratus_stage_latency_seconds_count{stage="${stage}"}`), 200, stage);
  assert.equal(sample(text, 'stratus_stage_latency_seconds_bucket{le="+Inf",stage="ack"}'), 200);
  for (const d of devices) d.close();
  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  assert.equal(code, 0, err);
});
