/**
 * The Kafka client contract (src/kafka/types.ts), held against whichever client kafkaClients(config)
 * picks: native (librdkafka) by default on Node, platformatic with STRATUS_KAFKA_CLIENT=platformatic
 * (Node >= 22.22 / 24.6 or Bun; test/contract/platformatic.test.ts runs this file that way from the
 * Node 20 suite). One test body for both: nothing here names a library.
 *
 * Real Kafka at kafka.brokers (loadConfig, as every test). Topics and groups are
 * `contract.<uuid>.*`, deleted afterwards (topics here; groups hold no data and expire).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test, type TestContext } from 'node:test';
import { loadConfig, type Config } from '../../src/config.js';
import { ErrorCode, StratusError } from '../../src/errors.js';
import { kafkaClients } from '../../src/kafka/factory.js';
import { KafkaClientError, type ConsumedMessage, type EngineAdmin, type EngineBatchConsumer, type EngineProducer, type KafkaClients, type KafkaFailure } from '../../src/kafka/types.js';
import { unusedPort } from '../helpers/ports.js';

/** Config with a `contract.<uuid>.` topic prefix; `overrides` are flags without dashes, as testConfig's. */
function contractConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({ flags: { 'kafka-topic-prefix': `contract.${randomUUID()}.`, ...overrides } });
}

/** Topics each test's admin deletes before it closes. */
const created = new WeakMap<EngineAdmin, string[]>();
/**
 * Each test's producers and consumers, closed before its topics are deleted: node:test runs after
 * hooks in the order they were added, and setup() adds its hook first.
 */
const closers = new WeakMap<TestContext, (() => Promise<void>)[]>();

async function setup(t: TestContext, overrides: Record<string, string> = {}): Promise<{ config: Config; clients: KafkaClients; admin: EngineAdmin }> {
  const config = contractConfig(overrides);
  const clients = await kafkaClients(config);
  const admin = await clients.admin(config, 'contract-admin');
  created.set(admin, []);
  closers.set(t, []);
  t.after(async () => {
    for (const close of closers.get(t)!.reverse()) await close();
    for (const topic of created.get(admin)!) {
      // A topic the test deleted itself (or never got to create) is 'unknown-topic': nothing left behind.
      await admin.deleteTopic(topic, 10_000).catch((err: unknown) => assert.ok(err instanceof KafkaClientError && err.failure === 'unknown-topic', `cleanup of ${topic}: ${String(err)}`));
    }
    await admin.close();
  });
  t.diagnostic(`client: ${clients.kind}`);
  return { config, clients, admin };
}

/** Creates a topic (deleted after the test) and waits until every partition has a leader. */
async function topicOf(admin: EngineAdmin, config: Config, name: string, partitions: number): Promise<string> {
  const topic = `${config.kafka.topicPrefix}${name}`;
  created.get(admin)!.push(topic);
  await admin.createTopics([{ topic, partitions, replicationFactor: 1 }], 10_000);
  await until(async () => {
    const [d] = await admin.describeTopics([topic], 5000).catch(() => [undefined]);
    return d !== undefined && d.partitions.length === partitions && d.partitions.every((p) => p.leader >= 0);
  }, 15_000, `leaders of ${topic}`);
  return topic;
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Delivery reports as they came: opaque -> error (null: durable), and the order per partition tag. */
class Reports {
  readonly outcome = new Map<number, Error | null>();
  readonly duplicates: number[] = [];
  readonly order: number[] = [];
  readonly at = new Map<number, number>();
  handler = (err: Error | null, opaque: unknown): void => {
    const id = opaque as number;
    if (this.outcome.has(id)) this.duplicates.push(id);
    this.outcome.set(id, err);
    this.order.push(id);
    this.at.set(id, Date.now());
  };
  async all(count: number, timeoutMs: number): Promise<void> {
    await until(() => this.outcome.size >= count, timeoutMs, `${count} delivery reports (have ${this.outcome.size})`);
  }
}

async function producerOf(t: TestContext, clients: KafkaClients, config: Config, reports: Reports): Promise<EngineProducer> {
  const producer = await clients.producer(config, `contract-p-${randomUUID().slice(0, 8)}`, reports.handler);
  let closed = false;
  closers.get(t)!.push(async () => (closed ? undefined : producer.disconnect(5000)));
  const disconnect = producer.disconnect.bind(producer);
  producer.disconnect = (ms?: number) => {
    closed = true;
    return disconnect(ms);
  };
  return producer;
}

async function consumerOf(t: TestContext, clients: KafkaClients, config: Config, groupId: string, topics: string[]): Promise<EngineBatchConsumer> {
  const consumer = await clients.batchConsumer(config, { groupId, topics, clientId: `contract-c-${randomUUID().slice(0, 8)}`, waitMs: 200 });
  let closed = false;
  closers.get(t)!.push(async () => (closed ? undefined : consumer.disconnect()));
  const disconnect = consumer.disconnect.bind(consumer);
  consumer.disconnect = () => {
    closed = true;
    return disconnect();
  };
  return consumer;
}

/** Consumes until `done` says so (checked after each batch) or timeoutMs; returns the batches. */
async function consumeUntil(consumer: EngineBatchConsumer, done: (all: ConsumedMessage[]) => boolean, timeoutMs: number, what: string): Promise<ConsumedMessage[][]> {
  const batches: ConsumedMessage[][] = [];
  const all: ConsumedMessage[] = [];
  const deadline = Date.now() + timeoutMs;
  while (!done(all)) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms consuming ${what} (read ${all.length})`);
    const batch = await consumer.consume();
    if (batch.length > 0) {
      batches.push(batch);
      all.push(...batch);
    }
  }
  return batches;
}

const SENTINEL = 'sentinel';

/**
 * Produces one sentinel per partition (after everything checked was acknowledged) and reads the
 * topic with a new group until every sentinel arrived, so a duplicate or a late message would have
 * arrived too. Returns the messages before the sentinels, per partition, in offset order.
 */
async function readTopic(t: TestContext, clients: KafkaClients, config: Config, topic: string, partitions: number): Promise<Map<number, ConsumedMessage[]>> {
  const reports = new Reports();
  const producer = await producerOf(t, clients, config, reports);
  for (let p = 0; p < partitions; p++) assert.equal(producer.produce(topic, p, null, Buffer.from(SENTINEL), -1 - p), true);
  await reports.all(partitions, 30_000);
  assert.deepEqual([...reports.outcome.values()].filter((e) => e !== null), [], 'sentinels acknowledged');
  await producer.disconnect(5000);
  const consumer = await consumerOf(t, clients, config, `contract.${randomUUID()}`, [topic]);
  const byPartition = new Map<number, ConsumedMessage[]>();
  const seen = new Set<number>();
  let checked = 0;
  await consumeUntil(
    consumer,
    (all) => {
      for (; checked < all.length; checked++) {
        const m = all[checked]!;
        if (m.value.toString() === SENTINEL) seen.add(m.partition);
        else {
          assert.equal(seen.has(m.partition), false, `a message after the sentinel of partition ${m.partition}`);
          let list = byPartition.get(m.partition);
          if (list === undefined) byPartition.set(m.partition, (list = []));
          list.push(m);
        }
      }
      return seen.size === partitions;
    },
    60_000,
    `${topic} up to its sentinels`,
  );
  await consumer.disconnect();
  // Offsets are the log's: contiguous from 0 in each partition, so nothing was skipped or repeated.
  for (const [p, list] of byPartition) assert.deepEqual(list.map((m) => m.offset), list.map((_, i) => i), `offsets of partition ${p}`);
  return byPartition;
}

test('idempotent produce, explicit partitions and keys: one report each, in produce order per partition, the log holds exactly what was acknowledged', { timeout: 120_000 }, async (t) => {
  const { config, clients, admin } = await setup(t);
  const topic = await topicOf(admin, config, 'order', 4);
  const reports = new Reports();
  const producer = await producerOf(t, clients, config, reports);
  assert.equal(producer.kind, clients.kind);
  assert.equal(await producer.partitionsOf(topic, 10_000), 4);
  // 0..399: explicit partition id % 4; 400..799: keyed, 16 keys, in key order.
  const values = new Map<number, string>();
  for (let id = 0; id < 400; id++) {
    values.set(id, `p${id % 4}:${id}`);
    assert.equal(producer.produce(topic, id % 4, null, Buffer.from(values.get(id)!), id), true);
  }
  for (let id = 400; id < 800; id++) {
    const key = `device-${id % 16}`;
    values.set(id, `${key}:${id}`);
    assert.equal(producer.produce(topic, null, key, Buffer.from(values.get(id)!), id), true);
  }
  assert.ok(producer.inflight > 0 && producer.inflight <= 800);
  await reports.all(800, 30_000);
  await producer.flush(10_000);
  assert.equal(producer.inflight, 0);
  assert.equal(producer.oldestWaitMs(), 0);
  assert.deepEqual(reports.duplicates, [], 'no message reported twice');
  assert.deepEqual([...reports.outcome].filter(([, e]) => e !== null).map(([id, e]) => `${id}: ${e!.message}`), [], 'every report without error');
  // Reports per partition (explicit ones) and per key in produce order.
  for (let p = 0; p < 4; p++) {
    const ids = reports.order.filter((id) => id < 400 && id % 4 === p);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), `reports of partition ${p} in produce order`);
  }
  for (let k = 0; k < 16; k++) {
    const ids = reports.order.filter((id) => id >= 400 && id % 16 === k);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), `reports of key ${k} in produce order`);
  }

  const log = await readTopic(t, clients, config, topic, 4);
  const inLog = [...log.values()].flat().map((m) => m.value.toString());
  assert.equal(inLog.length, 800, 'as many messages in the log as acknowledged');
  assert.deepEqual(new Set(inLog), new Set(values.values()), 'exactly the messages produced');
  for (let p = 0; p < 4; p++) {
    const explicit = (log.get(p) ?? []).map((m) => m.value.toString()).filter((v) => v.startsWith('p'));
    assert.deepEqual(explicit, [...Array(100).keys()].map((i) => `p${p}:${i * 4 + p}`), `partition ${p} in produce order`);
  }
  for (let k = 0; k < 16; k++) {
    const key = `device-${k}`;
    const holders = [...log].filter(([, list]) => list.some((m) => m.value.toString().startsWith(`${key}:`)));
    assert.equal(holders.length, 1, `key ${key} in exactly one partition`);
    const list = holders[0]![1].filter((m) => m.value.toString().startsWith(`${key}:`));
    assert.ok(list.every((m) => m.key?.toString() === key), `key ${key} carried on its records`);
    const ids = list.map((m) => Number(m.value.toString().split(':')[1]));
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), `key ${key} in produce order`);
    assert.equal(ids.length, 25);
  }
});

test('a concurrent burst (5,000 produce() calls, none awaited, 6 partitions): acknowledged == in the log, each exactly once', { timeout: 120_000 }, async (t) => {
  const { config, clients, admin } = await setup(t);
  const topic = await topicOf(admin, config, 'burst', 6);
  const reports = new Reports();
  const producer = await producerOf(t, clients, config, reports);
  const n = 5000;
  for (let id = 0; id < n; id++) assert.equal(producer.produce(topic, id % 6, null, Buffer.from(`m:${id}:${'x'.repeat(180)}`), id), true);
  await reports.all(n, 60_000);
  assert.deepEqual(reports.duplicates, []);
  const acked = [...reports.outcome].filter(([, e]) => e === null).map(([id]) => id);
  assert.equal(acked.length, n, 'every message acknowledged');
  const log = await readTopic(t, clients, config, topic, 6);
  const ids = [...log.values()].flat().map((m) => Number(m.value.toString().split(':')[1]));
  assert.equal(ids.length, n, 'the log holds as many as were acknowledged');
  assert.equal(new Set(ids).size, n, 'none twice');
  for (const [p, list] of log) {
    const order = list.map((m) => Number(m.value.toString().split(':')[1]));
    assert.ok(order.every((id) => id % 6 === p), `only partition ${p}'s messages in it`);
    assert.deepEqual(order, [...order].sort((a, b) => a - b), `partition ${p} in produce order`);
  }
});

test('queue full: produce() returns false at kafka.producerQueueMax, queues nothing then, and loses none it accepted', { timeout: 120_000 }, async (t) => {
  const { config, clients, admin } = await setup(t, { 'kafka-producer-queue-max': '100', 'kafka-linger-ms': '50' });
  const topic = await topicOf(admin, config, 'full', 2);
  const reports = new Reports();
  const producer = await producerOf(t, clients, config, reports);
  let accepted = 0;
  let firstRefused = -1;
  for (let id = 0; id < 1000; id++) {
    if (producer.produce(topic, id % 2, null, Buffer.from(`q:${accepted}`), accepted)) accepted++;
    else if (firstRefused < 0) firstRefused = id;
  }
  assert.ok(firstRefused >= 100, `the first refusal came at ${firstRefused}, before 100 were queued`);
  assert.ok(accepted < 1000, 'some were refused');
  // Delivery reports cannot have come in a synchronous loop except from a background thread
  // (native): the queue held at most producerQueueMax plus what left it meanwhile.
  assert.ok(accepted <= 200, `accepted ${accepted} of 1000 with a queue of 100`);
  t.diagnostic(`accepted ${accepted}, first refusal at ${firstRefused}`);
  await reports.all(accepted, 30_000);
  assert.equal(reports.outcome.size, accepted, 'one report per accepted message, none for a refused one');
  assert.deepEqual([...reports.outcome.values()].filter((e) => e !== null), []);
  assert.equal(producer.produce(topic, 0, null, Buffer.from(`q:${accepted}`), accepted), true, 'accepted again once reports freed the queue');
  await reports.all(accepted + 1, 30_000);
  const log = await readTopic(t, clients, config, topic, 2);
  const inLog = [...log.values()].flat().map((m) => Number(m.value.toString().slice(2))).sort((a, b) => a - b);
  assert.deepEqual(inLog, [...Array(accepted + 1).keys()]);
});

test('consumer batches: at most consumeBatchMax, in offset order; uncommitted they are read again, committed they are not', { timeout: 180_000 }, async (t) => {
  const { config, clients, admin } = await setup(t, { 'kafka-consume-batch-max': '50' });
  const topic = await topicOf(admin, config, 'batches', 3);
  const reports = new Reports();
  const producer = await producerOf(t, clients, config, reports);
  for (let id = 0; id < 300; id++) producer.produce(topic, id % 3, null, Buffer.from(`c:${id}`), id);
  await reports.all(300, 30_000);
  assert.deepEqual([...reports.outcome.values()].filter((e) => e !== null), []);
  const group = `contract.${randomUUID()}`;
  const readAll = async (consumer: EngineBatchConsumer) => consumeUntil(consumer, (all) => new Set(all.map((m) => m.value.toString())).size >= 300, 60_000, topic);

  // 1. Read everything, commit nothing.
  const first = await consumerOf(t, clients, config, group, [topic]);
  const batches = await readAll(first);
  assert.ok(batches.every((b) => b.length >= 1 && b.length <= 50), `batch sizes ${batches.map((b) => b.length).join(',')}`);
  const all = batches.flat();
  assert.equal(all.length, 300, 'each message once');
  for (let p = 0; p < 3; p++) {
    const offsets = all.filter((m) => m.partition === p).map((m) => m.offset);
    assert.deepEqual(offsets, [...Array(100).keys()], `partition ${p}: offsets in order, none skipped`);
    assert.ok(all.filter((m) => m.partition === p).every((m) => m.topic === topic && Number(m.value.toString().slice(2)) % 3 === p));
  }
  await first.disconnect();

  // 2. Nothing was committed: the same group reads it all again; this time it commits each batch.
  const second = await consumerOf(t, clients, config, group, [topic]);
  const again = await readAll(second);
  assert.equal(again.flat().length, 300, 'read again, each once');
  for (const b of again) second.commitBatch(b);
  await second.settleCommits(10_000);
  await second.disconnect();

  // 3. Committed: a new member of the group reads only what came after (one sentinel per partition).
  for (let p = 0; p < 3; p++) producer.produce(topic, p, null, Buffer.from(SENTINEL), 1000 + p);
  await reports.all(303, 30_000);
  const third = await consumerOf(t, clients, config, group, [topic]);
  const after = (await consumeUntil(third, (got) => got.filter((m) => m.value.toString() === SENTINEL).length >= 3, 60_000, 'the sentinels')).flat();
  assert.deepEqual(after.map((m) => m.value.toString()), [SENTINEL, SENTINEL, SENTINEL], 'nothing committed was read again');
  assert.deepEqual(after.map((m) => m.offset), [100, 100, 100]);
  await third.disconnect();
});

test('two members of one group split the partitions and together read everything', { timeout: 180_000 }, async (t) => {
  const { config, clients, admin } = await setup(t);
  const topic = await topicOf(admin, config, 'split', 6);
  const reports = new Reports();
  const producer = await producerOf(t, clients, config, reports);
  const group = `contract.${randomUUID()}`;
  const a = await consumerOf(t, clients, config, group, [topic]);
  const b = await consumerOf(t, clients, config, group, [topic]);
  const read = { a: [] as ConsumedMessage[], b: [] as ConsumedMessage[] };
  let produced = 0;
  let stop = false;
  const loop = async (name: 'a' | 'b', c: EngineBatchConsumer) => {
    while (!stop) {
      const batch = await c.consume();
      read[name].push(...batch);
      c.commitBatch(batch);
    }
  };
  const loops = [loop('a', a), loop('b', b)];
  // Rounds of 60 (10 per partition) until both members hold partitions and everything produced was read.
  const deadline = Date.now() + 90_000;
  const distinct = () => new Set([...read.a, ...read.b].map((m) => m.value.toString())).size;
  const partitionsOf = (list: ConsumedMessage[], since: number) => new Set(list.filter((m) => Number(m.value.toString().split(':')[1]) >= since).map((m) => m.partition));
  let settled = false;
  while (Date.now() < deadline) {
    const roundStart = produced;
    for (let i = 0; i < 60; i++, produced++) producer.produce(topic, produced % 6, null, Buffer.from(`s:${produced}`), produced);
    await reports.all(produced, 30_000);
    await until(() => distinct() >= produced, 30_000, `members reading ${produced} messages`);
    const pa = partitionsOf(read.a, roundStart);
    const pb = partitionsOf(read.b, roundStart);
    // A round read by both, on disjoint partitions covering all 6: the group is split.
    if (pa.size > 0 && pb.size > 0 && [...pa].every((p) => !pb.has(p)) && pa.size + pb.size === 6) {
      settled = true;
      break;
    }
  }
  stop = true;
  await Promise.all(loops);
  assert.ok(settled, `the members never split the partitions (a: ${[...partitionsOf(read.a, 0)]}, b: ${[...partitionsOf(read.b, 0)]})`);
  assert.deepEqual([...reports.outcome.values()].filter((e) => e !== null), []);
  const values = new Set([...read.a, ...read.b].map((m) => m.value.toString()));
  assert.equal(values.size, produced, 'together they read every message');
  t.diagnostic(`${produced} produced; a read ${read.a.length}, b ${read.b.length} (re-reads after a rebalance are allowed: at least once)`);
});

async function rejectsWith(promise: Promise<unknown>, failure: KafkaFailure): Promise<KafkaClientError> {
  let caught: unknown = null;
  await promise.then(
    () => {},
    (err: unknown) => (caught = err),
  );
  assert.ok(caught instanceof KafkaClientError, `expected a KafkaClientError '${failure}', got ${String(caught)}`);
  assert.equal(caught.failure, failure, caught.message);
  return caught;
}

test('admin: create, describe, list, delete; unknown topic, replication factor, existing topic are typed failures', { timeout: 120_000 }, async (t) => {
  const { config, clients, admin } = await setup(t);
  const a = `${config.kafka.topicPrefix}admin-a`;
  const b = `${config.kafka.topicPrefix}admin-b`;
  created.get(admin)!.push(a, b, `${config.kafka.topicPrefix}rf`);
  await admin.createTopics([{ topic: a, partitions: 3, replicationFactor: 1, minInsyncReplicas: 1 }, { topic: b, partitions: 1, replicationFactor: 1 }], 10_000);
  await until(async () => {
    const d = await admin.describeTopics([a, b], 5000).catch(() => []);
    return d.length === 2 && d.every((x) => x.partitions.every((p) => p.leader >= 0));
  }, 15_000, 'leaders');
  const described = await admin.describeTopics([a, b], 10_000);
  assert.deepEqual(described.map((d) => [d.name, d.partitions.map((p) => p.id)]), [[a, [0, 1, 2]], [b, [0]]]);
  const listed = await admin.listTopics(10_000);
  assert.ok(listed.includes(a) && listed.includes(b), 'listed');

  const exists = await rejectsWith(admin.createTopics([{ topic: a, partitions: 3, replicationFactor: 1 }], 10_000), 'topic-exists');
  assert.equal(exists.retryable, false);
  assert.equal(exists.client, clients.kind);
  const unknown = await rejectsWith(admin.describeTopics([`${config.kafka.topicPrefix}nowhere`], 10_000), 'unknown-topic');
  assert.equal(unknown.retryable, true);
  await rejectsWith(admin.deleteTopic(`${config.kafka.topicPrefix}nowhere`, 10_000), 'unknown-topic');
  // The local stack is one broker (as CI's).
  await rejectsWith(admin.createTopics([{ topic: `${config.kafka.topicPrefix}rf`, partitions: 1, replicationFactor: 3 }], 10_000), 'replication-factor');
  assert.equal((await admin.listTopics(10_000)).includes(`${config.kafka.topicPrefix}rf`), false);

  await admin.deleteTopic(a, 10_000);
  await admin.deleteTopic(b, 10_000);
  await until(async () => {
    const names = await admin.listTopics(5000);
    return !names.includes(a) && !names.includes(b);
  }, 15_000, 'the topics gone');
});

test('admin against a dead address: each call fails as unavailable within its timeout', { timeout: 60_000 }, async (t) => {
  const port = await unusedPort();
  const { admin } = await setup(t, { 'kafka-brokers': `127.0.0.1:${port}` });
  for (const call of [() => admin.listTopics(2000), () => admin.describeTopics(['x'], 2000), () => admin.createTopics([{ topic: 'contract.x', partitions: 1, replicationFactor: 1 }], 2000)]) {
    const started = Date.now();
    await rejectsWith(call(), 'unavailable');
    assert.ok(Date.now() - started < 2000 + 3000, `answered in ${Date.now() - started} ms`);
  }
});

test('produce to a topic that does not exist: every message fails within kafka.deliveryTimeoutMs', { timeout: 60_000 }, async (t) => {
  const { config, clients } = await setup(t, { 'kafka-delivery-timeout-ms': '3000' });
  const reports = new Reports();
  const producer = await producerOf(t, clients, config, reports);
  const topic = `${config.kafka.topicPrefix}missing`;
  const started = Date.now();
  for (let id = 0; id < 20; id++) assert.equal(producer.produce(topic, id % 2, null, Buffer.from(`u:${id}`), id), true);
  await reports.all(20, 3000 + 10_000);
  assert.deepEqual(reports.duplicates, []);
  const failed = [...reports.outcome].filter(([, e]) => e !== null);
  assert.equal(failed.length, 20, 'every message failed');
  const last = Math.max(...reports.at.values()) - started;
  t.diagnostic(`all failed after ${last} ms: ${failed[0]![1]!.message}`);
  assert.ok(last <= 3000 + 2000, `the last report came ${last} ms after produce, deliveryTimeoutMs is 3000`);
  assert.equal(producer.inflight, 0);
});

test('a dead broker address: the producer fails within its deadline, the consumer reads [] and never throws', { timeout: 90_000 }, async (t) => {
  const port = await unusedPort();
  const { config, clients } = await setup(t, { 'kafka-brokers': `127.0.0.1:${port}`, 'kafka-delivery-timeout-ms': '3000' });
  const reports = new Reports();
  const started = Date.now();
  // Connecting may itself refuse (the native producer asks the broker for metadata first): then a
  // typed KAFKA_UNAVAILABLE within its 10 s connect timeout is the contract; otherwise every
  // message fails within the deadline.
  let producer: EngineProducer | null = null;
  try {
    producer = await producerOf(t, clients, config, reports);
  } catch (err) {
    assert.ok(err instanceof StratusError && err.code === ErrorCode.KAFKA_UNAVAILABLE, String(err));
    assert.ok(Date.now() - started < 15_000);
    t.diagnostic(`producer connect refused in ${Date.now() - started} ms: ${err.message}`);
  }
  if (producer !== null) {
    const sentAt = Date.now();
    for (let id = 0; id < 10; id++) assert.equal(producer.produce('contract.dead', id % 3, null, Buffer.from('d'), id), true);
    await reports.all(10, 3000 + 10_000);
    assert.equal([...reports.outcome.values()].filter((e) => e !== null).length, 10, 'every message failed');
    const last = Math.max(...reports.at.values()) - sentAt;
    t.diagnostic(`producer: all 10 failed after ${last} ms`);
    assert.ok(last <= 3000 + 2000, `last report ${last} ms after produce`);
  }

  const consumerStarted = Date.now();
  let consumer: EngineBatchConsumer | null = null;
  try {
    consumer = await consumerOf(t, clients, config, `contract.${randomUUID()}`, ['contract.dead']);
  } catch (err) {
    assert.ok(err instanceof StratusError && err.code === ErrorCode.KAFKA_UNAVAILABLE, String(err));
    assert.ok(Date.now() - consumerStarted < 15_000);
    t.diagnostic(`consumer connect refused in ${Date.now() - consumerStarted} ms: ${err.message}`);
  }
  if (consumer !== null) {
    for (let i = 0; i < 5; i++) {
      const at = Date.now();
      assert.deepEqual(await consumer.consume(), []);
      assert.ok(Date.now() - at < 5000, `consume() answered in ${Date.now() - at} ms`);
    }
    consumer.commitBatch([]);
    await consumer.settleCommits(1000);
    t.diagnostic('consumer: 5 x [] against the dead address');
  }
});
