import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ErrorCode, StratusError } from '../../../src/errors.js';
import { deleteTopics, ensureTopics, kafkaClient, kafkaRoundTrip, waitForKafka } from '../../../src/kafka/admin.js';
import { testConfig } from '../../helpers/config.js';

test('ensureTopics creates topics with the exact partition count, again is a no-op, a mismatch is a typed error', { timeout: 60_000 }, async (t) => {
  const config = testConfig();
  const a = `${config.kafka.topicPrefix}a`;
  const b = `${config.kafka.topicPrefix}b`;
  t.after(() => deleteTopics(config, [a, b]).catch(() => {}));

  await ensureTopics(config, [{ topic: a, partitions: 5 }, { topic: b, partitions: 2 }]);
  await ensureTopics(config, [{ topic: a, partitions: 5 }, { topic: b, partitions: 2 }]);
  const admin = kafkaClient(config, 'test').admin();
  await admin.connect();
  const meta = await admin.fetchTopicMetadata({ topics: [a, b] });
  await admin.disconnect();
  assert.deepEqual(meta.map((m) => [m.name, m.partitions.length]).sort(), [[a, 5], [b, 2]]);

  await assert.rejects(ensureTopics(config, [{ topic: a, partitions: 6 }]), (err: unknown) => {
    assert.ok(err instanceof StratusError);
    assert.equal(err.code, ErrorCode.KAFKA_TOPIC_MISMATCH);
    assert.match(err.message, new RegExp(`topic ${a.replace(/\./g, '\\.')} has 5 partitions but config asks for 6`));
    return true;
  });
});

test('round trip through the real broker: every message consumed exactly once, in per-key order', { timeout: 90_000 }, async (t) => {
  const config = testConfig();
  const topic = `${config.kafka.topicPrefix}roundtrip`;
  t.after(() => deleteTopics(config, [topic]).catch(() => {}));
  await ensureTopics(config, [{ topic, partitions: 4 }]);
  const r = await kafkaRoundTrip(config, { topic, messages: 1000 });
  assert.equal(r.produced, 1000);
  assert.equal(r.consumed, 1000);
  assert.equal(r.outOfOrder, 0);
});

test('waitForKafka on a port nothing listens on fails with KAFKA_UNAVAILABLE in its time budget', { timeout: 30_000 }, async () => {
  const config = testConfig({ 'kafka-brokers': '127.0.0.1:1' });
  const t0 = performance.now();
  await assert.rejects(waitForKafka(config, 1500), (err: unknown) => {
    assert.ok(err instanceof StratusError);
    assert.equal(err.code, ErrorCode.KAFKA_UNAVAILABLE);
    assert.equal(err.retryable, true);
    assert.match(err.message, /Kafka at 127\.0\.0\.1:1 did not answer a metadata request within 1500 ms/);
    return true;
  });
  // Bounded by the budget plus one attempt's cleanup, not by librdkafka's own retry schedule.
  assert.ok(performance.now() - t0 < 15_000);
});
