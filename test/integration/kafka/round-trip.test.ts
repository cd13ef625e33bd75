/**
 * src/kafka/native/round-trip.ts against the real broker: every keyed message produced is consumed exactly
 * once and in per-key order, and the topic holds exactly what was produced.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Config } from '../../../src/config.js';
import { ErrorCode, StratusError } from '../../../src/errors.js';
import { deleteTopics, ensureTopics } from '../../../src/kafka/admin.js';
import { withAdmin } from '../../../src/kafka/native/client.js';
import { kafkaRoundTrip } from '../../../src/kafka/native/round-trip.js';
import { topology } from '../../../src/topology.js';
import { testConfig } from '../../helpers/config.js';

/** Messages in the topic's log: the sum over partitions of high watermark - low watermark. */
async function messagesInTopic(config: Config, topic: string): Promise<number> {
  const offsets = await withAdmin(config, 'test', (admin) => admin.fetchTopicOffsets(topic));
  return offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
}

test('1,000 keyed messages over 10 keys: each consumed exactly once, in per-key order; the log holds exactly 1,000', { timeout: 40_000 }, async (t) => {
  const config = testConfig();
  const topic = topology(config).topics.probe;
  t.after(() => deleteTopics(config, [topic]));
  await ensureTopics(config, [{ topic, partitions: 4 }]);

  const r = await kafkaRoundTrip(config, { topic, messages: 1000, keys: 10, timeoutMs: 30_000 });
  assert.deepEqual(
    { topic: r.topic, partitions: r.partitions, keys: r.keys, produced: r.produced, consumed: r.consumed, duplicates: r.duplicates, outOfOrder: r.outOfOrder, foreign: r.foreign },
    { topic, partitions: 4, keys: 10, produced: 1000, consumed: 1000, duplicates: 0, outOfOrder: 0, foreign: 0 },
  );
  // The idempotent producer wrote each message once: nothing more in the log than was produced.
  assert.equal(await messagesInTopic(config, topic), 1000);
  assert.ok(r.produceMs > 0 && r.firstMessageMs > 0, JSON.stringify(r));
  assert.ok(r.firstMessageMs <= r.allConsumedMs, JSON.stringify(r));
  assert.ok(Math.abs(r.allConsumedMs - r.firstMessageMs - r.consumeMs) < 1, JSON.stringify(r));

  // A second run on the same topic reads the first run's messages from the beginning too: it skips
  // them, and accounts for its own exactly. How many foreign ones it passes before its own last
  // message depends on the order partitions are fetched in, so only the bound is exact.
  const again = await kafkaRoundTrip(config, { topic, messages: 500, keys: 7, timeoutMs: 30_000 });
  assert.deepEqual(
    { produced: again.produced, consumed: again.consumed, duplicates: again.duplicates, outOfOrder: again.outOfOrder },
    { produced: 500, consumed: 500, duplicates: 0, outOfOrder: 0 },
  );
  assert.ok(again.foreign <= 1000, `foreign ${again.foreign}`);
  assert.equal(await messagesInTopic(config, topic), 1500);
});

test('the probe consumer groups are deleted afterwards', { timeout: 30_000 }, async (t) => {
  const config = testConfig();
  const topic = topology(config).topics.probe;
  t.after(() => deleteTopics(config, [topic]));
  await ensureTopics(config, [{ topic, partitions: 1 }]);
  await kafkaRoundTrip(config, { topic, messages: 10, keys: 2, timeoutMs: 20_000 });
  const { groups } = await withAdmin(config, 'test', (admin) => admin.listGroups({ timeout: 10_000 }));
  assert.deepEqual(groups.filter((g) => g.groupId.startsWith(config.kafka.topicPrefix)), []);
});

test('a round trip on a topic that does not exist fails fast with KAFKA_UNAVAILABLE naming it, creating nothing', { timeout: 30_000 }, async () => {
  const config = testConfig();
  const topic = `${config.kafka.topicPrefix}missing`;
  const t0 = performance.now();
  await assert.rejects(kafkaRoundTrip(config, { topic, messages: 10 }), (err: unknown) => {
    assert.ok(err instanceof StratusError);
    assert.equal(err.code, ErrorCode.KAFKA_UNAVAILABLE);
    assert.equal(err.retryable, false);
    assert.ok(err.message.startsWith(`topic ${topic} does not exist`), err.message);
    return true;
  });
  assert.ok(performance.now() - t0 < 10_000, `took ${performance.now() - t0} ms`);
  const names = await withAdmin(config, 'test', (admin) => admin.listTopics({ timeout: 10_000 }));
  assert.equal(names.includes(topic), false);
});
