/**
 * SIGTERM under load on a real `stratus run` process: it exits 0, and after a restart every event
 * a device saw acknowledged has exactly one result at the device.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { PROJECT_ROOT } from '../../../src/config.js';
import { findLogLine } from '../../../src/log.js';
import { deleteTopics } from '../../../src/kafka/admin.js';
import { topology } from '../../../src/topology.js';
import { testConfig } from '../../helpers/config.js';
import { TestDevice } from '../../helpers/device.js';
import { unusedPort } from '../../helpers/ports.js';

const config = testConfig();
const t = topology(config);
after(() => deleteTopics(config, [t.topics.events, t.topics.results]).catch(() => {}));

function run(port: number, httpPort: number): { child: ChildProcess; ready: Promise<void>; exited: Promise<number | null>; stderr: () => string } {
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'stratus.js'), 'run', '--grpc-port', String(port), '--instance-id', `sig-${port}`], {
    env: {
      ...process.env,
      STRATUS_KAFKA_TOPIC_PREFIX: config.kafka.topicPrefix,
      STRATUS_REDIS_KEY_PREFIX: config.redis.keyPrefix,
      STRATUS_KAFKA_PARTITIONS: '3',
      STRATUS_GATEWAY_DRAIN_GRACE_MS: '1500',
      STRATUS_HTTP_PORT: String(httpPort),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      if (findLogLine(err, 'started', 'run') !== null) resolve();
    });
    child.on('exit', () => reject(new Error(`stratus run exited early: ${err}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, ready, exited, stderr: () => err };
}

test('SIGTERM under load loses nothing acknowledged', { timeout: 180_000 }, async () => {
  const port = await unusedPort();
  const httpPort = await unusedPort();
  const first = run(port, httpPort);
  await first.ready;
  const live = await fetch(`http://127.0.0.1:${httpPort}/livez`);
  assert.equal(live.status, 200);
  const ready = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
  assert.equal(ready.status, 200, await ready.text());
  const address = `127.0.0.1:${port}`;
  const devices = Array.from({ length: 20 }, (_, i) => new TestDevice(`sig-${i}`).connect(address));
  const total = 400;
  let stop = false;
  // Each device sends 10 events every 10 ms until the signal, never waiting for acks.
  const sent = devices.map(() => 0);
  const senders = devices.map(async (d, i) => {
    while (!stop && sent[i]! < total) {
      const from = sent[i]! + 1;
      const to = Math.min(total, from + 9);
      const batch = [];
      for (let seq = from; seq <= to; seq++) batch.push({ seq, type: 'sq', value: seq });
      d.send(batch);
      sent[i] = to;
      await new Promise((r) => setTimeout(r, 10));
    }
  });
  await Promise.all(devices.map((d) => d.until(() => d.ackedSeq >= 50, 60_000, 'some acks')));
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  assert.match(text, /^# HELP stratus_events_durable_total /m);
  assert.match(text, /^# TYPE stratus_events_durable_total counter$/m);
  assert.match(text, /^stratus_devices_connected 20$/m);
  const durable = Number(/^stratus_events_durable_total (\d+)$/m.exec(text)![1]);
  assert.ok(durable >= 50 * 20, `durable ${durable}`);
  first.child.kill('SIGTERM');
  stop = true;
  await Promise.all(senders);
  assert.equal(await first.exited, 0, first.stderr());
  const ackedAtStop = devices.map((d) => d.ackedSeq);
  for (const d of devices) {
    await d.until(() => d.ended, 10_000, 'the stream to end');
    assert.ok(d.status === null || d.status.code === 14 /* UNAVAILABLE */, `status ${d.status?.code} ${d.status?.details}`);
  }

  const second = run(port, httpPort);
  await second.ready;
  try {
    await Promise.all(
      devices.map(async (d) => {
        d.close();
        d.connect(address, { cursor: d.lastResultSeq });
        // Resend everything after what was acknowledged, then the rest.
        for (let from = d.ackedSeq + 1; from <= total; from += 50) {
          const batch = [];
          for (let seq = from; seq <= Math.min(total, from + 49); seq++) batch.push({ seq, type: 'sq', value: seq });
          d.send(batch);
        }
        await d.until(() => d.results.length >= total, 90_000, 'every result after the restart');
      }),
    );
    await new Promise((r) => setTimeout(r, 500));
    devices.forEach((d, i) => {
      assert.ok(ackedAtStop[i]! >= 50);
      assert.deepEqual(d.results.map((r) => r.seq), Array.from({ length: total }, (_, k) => k + 1), d.deviceId);
      assert.ok(d.results.every((r) => r.value === r.seq * r.seq));
      d.close();
    });
  } finally {
    second.child.kill('SIGTERM');
    assert.equal(await second.exited, 0, second.stderr());
  }
});
