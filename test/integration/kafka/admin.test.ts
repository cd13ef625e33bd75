/**
 * src/kafka/admin.ts against the real broker: explicit topic creation with exact partition counts,
 * idempotence, the mismatch error, concurrent callers, and waitForKafka's time budget and silence.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { ErrorCode, StratusError } from '../../../src/errors.js';
import { deleteTopics, ensureTopics, waitForKafka } from '../../../src/kafka/admin.js';
import { withAdmin } from '../../../src/kafka/native/client.js';
import type { Config } from '../../../src/config.js';
import { testConfig } from '../../helpers/config.js';
import { unusedPort } from '../../helpers/ports.js';

/** Partition count of each topic, as the broker describes it. */
async function partitionCounts(config: Config, topics: string[]): Promise<Record<string, number>> {
  const meta = await withAdmin(config, 'test', (admin) => admin.fetchTopicMetadata({ topics, timeout: 10_000 }));
  return Object.fromEntries(meta.map((m) => [m.name, m.partitions.length]));
}

test('ensureTopics creates topics with the exact partition counts; a second call creates nothing', { timeout: 30_000 }, async (t) => {
  const config = testConfig();
  const a = `${config.kafka.topicPrefix}a`;
  const b = `${config.kafka.topicPrefix}b`;
  t.after(() => deleteTopics(config, [a, b]));

  const first = await ensureTopics(config, [{ topic: a, partitions: 5 }, { topic: b, partitions: 2, replicationFactor: 1 }]);
  assert.deepEqual(first, { created: [a, b], existing: [] });
  assert.deepEqual(await partitionCounts(config, [a, b]), { [a]: 5, [b]: 2 });

  const second = await ensureTopics(config, [{ topic: a, partitions: 5 }, { topic: b, partitions: 2 }]);
  assert.deepEqual(second, { created: [], existing: [a, b] });
  assert.deepEqual(await partitionCounts(config, [a, b]), { [a]: 5, [b]: 2 });
});

test('a topic that exists with another partition count is KAFKA_TOPIC_MISMATCH naming topic, found and wanted; nothing is created', { timeout: 30_000 }, async (t) => {
  const config = testConfig();
  const a = `${config.kafka.topicPrefix}a`;
  const c = `${config.kafka.topicPrefix}c`;
  t.after(() => deleteTopics(config, [a, c]));
  await ensureTopics(config, [{ topic: a, partitions: 3 }]);

  await assert.rejects(ensureTopics(config, [{ topic: a, partitions: 4 }, { topic: c, partitions: 1 }]), (err: unknown) => {
    assert.ok(err instanceof StratusError);
    assert.equal(err.code, ErrorCode.KAFKA_TOPIC_MISMATCH);
    assert.equal(err.retryable, false);
    assert.ok(err.message.startsWith(`topic ${a} has 3 partitions but 4 were asked for;`), err.message);
    return true;
  });
  // The mismatch was found before anything was created.
  const names = await withAdmin(config, 'test', (admin) => admin.listTopics({ timeout: 10_000 }));
  assert.equal(names.includes(c), false);
  assert.deepEqual(await partitionCounts(config, [a]), { [a]: 3 });
});

test('concurrent ensureTopics on one new topic: every caller succeeds, one topic with the asked partitions', { timeout: 30_000 }, async (t) => {
  const config = testConfig();
  const a = `${config.kafka.topicPrefix}race`;
  t.after(() => deleteTopics(config, [a]));
  // All four list the topics before any creates it, so three lose the create race.
  await Promise.all([1, 2, 3, 4].map(() => ensureTopics(config, [{ topic: a, partitions: 6 }])));
  assert.deepEqual(await partitionCounts(config, [a]), { [a]: 6 });
  // A racer asking for another count fails with the typed error, whoever created the topic.
  await assert.rejects(ensureTopics(config, [{ topic: a, partitions: 7 }]), { code: ErrorCode.KAFKA_TOPIC_MISMATCH });
});

test('a replication factor above the brokers the cluster has is refused, naming both and the setting', { timeout: 30_000 }, async () => {
  const config = testConfig();
  const a = `${config.kafka.topicPrefix}too-many-replicas`;
  // The local stack (and CI's) is one broker; the three-broker stack has its own test.
  await assert.rejects(ensureTopics(config, [{ topic: a, partitions: 1, replicationFactor: 2, minInsyncReplicas: 2 }]), (err: unknown) => {
    assert.ok(err instanceof StratusError, String(err));
    assert.equal(err.code, ErrorCode.KAFKA_UNAVAILABLE);
    assert.match(err.message, /replication factor 2, min\.insync\.replicas 2/);
    assert.match(err.message, /fewer brokers than kafka\.replicationFactor/);
    assert.match(err.message, /replication factor of 2 cannot be reached because only 1 broker/i);
    return true;
  });
});

test('deleteTopics deletes, and deleting a topic that does not exist is not an error', { timeout: 30_000 }, async () => {
  const config = testConfig();
  const a = `${config.kafka.topicPrefix}gone`;
  await ensureTopics(config, [{ topic: a, partitions: 1 }]);
  await deleteTopics(config, [a]);
  await deleteTopics(config, [a, `${config.kafka.topicPrefix}never-created`]);
  const names = await withAdmin(config, 'test', (admin) => admin.listTopics({ timeout: 10_000 }));
  assert.equal(names.includes(a), false);
});

test('waitForKafka resolves against the running broker', { timeout: 30_000 }, async () => {
  await waitForKafka(testConfig(), 10_000);
});

test('waitForKafka with no broker: KAFKA_UNAVAILABLE within its budget, nothing on stderr, the process exits', { timeout: 30_000 }, async () => {
  const port = await unusedPort();
  // A child process, so that anything librdkafka writes to fd 2 directly would be seen too.
  const script = `
    const { loadConfig } = await import(${JSON.stringify(new URL('../../../src/config.js', import.meta.url).href)});
    const { waitForKafka } = await import(${JSON.stringify(new URL('../../../src/kafka/admin.js', import.meta.url).href)});
    const config = loadConfig({ flags: { 'kafka-brokers': '127.0.0.1:${port}', 'log-level': 'info' } });
    const t0 = performance.now();
    try {
      await waitForKafka(config, 1500);
      console.log(JSON.stringify({ resolved: true }));
    } catch (err) {
      console.log(JSON.stringify({ code: err.code, retryable: err.retryable, message: err.message, ms: performance.now() - t0 }));
    }`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('close', (c, s) => resolve([c, s])));

  assert.equal(signal, null, 'the child had to be killed: something kept it alive');
  assert.equal(code, 0);
  assert.equal(stderr, '');
  const r = JSON.parse(stdout) as { code: string; retryable: boolean; message: string; ms: number };
  assert.equal(r.code, ErrorCode.KAFKA_UNAVAILABLE);
  assert.equal(r.retryable, true);
  assert.ok(r.message.startsWith(`Kafka at 127.0.0.1:${port} did not answer a metadata request within 1500 ms`), r.message);
  assert.match(r.message, /npx stratus stack up/);
  assert.match(r.message, /STRATUS_KAFKA_BROKERS/);
  assert.ok(r.ms >= 1400 && r.ms < 3000, `gave up after ${r.ms} ms`);
});
