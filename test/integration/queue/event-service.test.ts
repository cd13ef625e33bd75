/** event.EventService/StreamEvents into a Redis list queue: real grpc servers (one the Gateway's port), real Redis, a client built from the field list. */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { Metadata, Server, ServerCredentials, status } from '@grpc/grpc-js';
import type { Config } from '../../../src/config.js';
import { deleteTopics } from '../../../src/kafka/admin.js';
import { Gateway } from '../../../src/gateway/gateway.js';
import { startEventService } from '../../../src/queue/event-service.js';
import type { QueueHandler } from '../../../src/queue/handlers.js';
import { QueueWorker } from '../../../src/queue/worker.js';
import { topology } from '../../../src/topology.js';
import { SKIP_ON_REDIS_CLUSTER, testConfig } from '../../helpers/config.js';
import { deleteKeys, eventClient, events, item, keysUnder, queueRedis, streamEvents, waitFor, type EventIn } from '../../helpers/event-client.js';
import { TcpProxy } from '../../helpers/tcp-proxy.js';

async function serve(t: TestContext, config: Config) {
  const service = await startEventService(config, 'test-queue');
  const server = new Server();
  service.addTo(server);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const client = eventClient(`127.0.0.1:${port}`);
  t.after(async () => {
    client.close();
    server.forceShutdown();
    await service.stop();
  });
  return client;
}

test('through the Gateway port: 2,503 events in flushes of at most 500 arrive FIFO, the summary counts them exactly, a worker drains them in order', { timeout: 60_000 }, async (t) => {
  const config = testConfig({ 'queue-flush-events-max': '500' });
  const redis = await queueRedis(config);
  t.after(() => deleteKeys(redis, config));
  const gw = await Gateway.start(config, 'test-queue-gw', 0);
  const client = eventClient(`127.0.0.1:${gw.port}`);
  t.after(async () => {
    client.close();
    await gw.stop();
    const tp = topology(config).topics;
    await deleteTopics(config, [tp.events, tp.results]).catch(() => {});
  });
  const sent = events(2503);
  const { summary, error } = await streamEvents(client, sent);
  assert.equal(error, null);
  assert.deepEqual(summary, { success: true, events_received: 2503 });
  const key = topology(config).redis.queue('events');
  // LPUSH in, consumed from the right: the list read right to left is the order sent.
  assert.deepEqual((await redis.lrange(key, 0, -1)).reverse(), sent.map(item));

  const seen: string[] = [];
  const handler: QueueHandler = { name: 'collect', doc: 'test', run: async (i) => (seen.push(i), 'done') };
  const worker = await QueueWorker.start(config, { queue: 'events', concurrency: 1, handler });
  await waitFor('2503 items handled', async () => seen.length === 2503, 30_000);
  await worker.stop();
  assert.deepEqual(seen, sent.map(item));
  assert.deepEqual(worker.stats, { done: 2503, duplicates: 0, failed: 0, deadLettered: 0, reclaimed: 0 });
  // Nothing left behind: queue drained, processing list, heartbeat and registration gone.
  assert.deepEqual(await keysUnder(redis, config), []);
});

test('int64 timestamps survive exactly (above 2^53, negative, the extremes); x-queue names the queue', { timeout: 20_000 }, async (t) => {
  const config = testConfig();
  const redis = await queueRedis(config);
  t.after(() => deleteKeys(redis, config));
  const client = await serve(t, config);
  const sent: EventIn[] = ['9007199254740993', '-9007199254740993', '9223372036854775807', '-9223372036854775808', '0', '-1'].map((ts, i) => ({ event_id: `ts${i}`, type: 'tick', timestamp: ts }));
  const { summary, error } = await streamEvents(client, sent, 'clock:events.v2');
  assert.equal(error, null);
  assert.deepEqual(summary, { success: true, events_received: 6 });
  const list = (await redis.lrange(topology(config).redis.queue('clock:events.v2'), 0, -1)).reverse();
  assert.deepEqual(list, [
    '{"event_id":"ts0","type":"tick","timestamp":"9007199254740993"}',
    '{"event_id":"ts1","type":"tick","timestamp":"-9007199254740993"}',
    '{"event_id":"ts2","type":"tick","timestamp":"9223372036854775807"}',
    '{"event_id":"ts3","type":"tick","timestamp":"-9223372036854775808"}',
    '{"event_id":"ts4","type":"tick","timestamp":"0"}',
    '{"event_id":"ts5","type":"tick","timestamp":"-1"}',
  ]);
  assert.equal(await redis.exists(topology(config).redis.queue('events')), 0);
  // An empty stream: a summary of 0, nothing written.
  assert.deepEqual((await streamEvents(client, [])).summary, { success: true, events_received: 0 });
});

test('a full queue: the events that fit are stored, then RESOURCE_EXHAUSTED with x-events-received exact', { timeout: 20_000 }, async (t) => {
  const config = testConfig({ 'queue-length-max': '1000', 'queue-flush-events-max': '300' });
  const redis = await queueRedis(config);
  t.after(() => deleteKeys(redis, config));
  const client = await serve(t, config);
  const key = topology(config).redis.queue('events');
  await redis.lpush(key, ...Array.from({ length: 100 }, (_, i) => `old${i}`));
  const sent = events(1500);
  const { summary, error } = await streamEvents(client, sent);
  assert.equal(summary, null);
  assert.equal(error?.code, status.RESOURCE_EXHAUSTED);
  assert.equal(error?.details, 'queue events is full (queue.lengthMax 1000); 900 events of this call were stored, the ones after them were not; send those again later');
  assert.deepEqual(error?.metadata.get('x-events-received'), ['900']);
  assert.equal(await redis.llen(key), 1000);
  assert.deepEqual((await redis.lrange(key, 0, 899)).reverse(), sent.slice(0, 900).map(item));
  // Full: the next call stores nothing and says so.
  const again = await streamEvents(client, events(3, 'x'));
  assert.equal(again.error?.code, status.RESOURCE_EXHAUSTED);
  assert.deepEqual(again.error?.metadata.get('x-events-received'), ['0']);
  assert.equal(await redis.llen(key), 1000);
});

test('bad input: INVALID_ARGUMENT naming the field; nothing written for it', { timeout: 20_000 }, async (t) => {
  const config = testConfig();
  const redis = await queueRedis(config);
  t.after(() => deleteKeys(redis, config));
  const client = await serve(t, config);
  const key = topology(config).redis.queue('events');

  const spaced = await streamEvents(client, events(5), 'a b');
  assert.equal(spaced.error?.code, status.INVALID_ARGUMENT);
  assert.equal(spaced.error?.details, 'metadata x-queue must be 1..200 bytes without whitespace, control characters, { or } (got "a b")');
  const braces = await streamEvents(client, events(5), 'a{b}');
  assert.equal(braces.error?.code, status.INVALID_ARGUMENT);
  assert.match(braces.error?.details ?? '', /^metadata x-queue must be/);
  assert.deepEqual(await keysUnder(redis, config), []);

  // Event 3 has an empty event_id: 0..2 are stored, it and the ones after it are not.
  const sent = events(6);
  sent[3] = { ...sent[3]!, event_id: '' };
  const bad = await streamEvents(client, sent);
  assert.equal(bad.error?.code, status.INVALID_ARGUMENT);
  assert.equal(bad.error?.details, 'event 3: event_id must be 1..256 bytes (got 0); the 3 events before it were stored, it and the ones after it were not');
  assert.deepEqual(bad.error?.metadata.get('x-events-received'), ['3']);
  assert.deepEqual((await redis.lrange(key, 0, -1)).reverse(), sent.slice(0, 3).map(item));

  const longType = await streamEvents(client, [{ event_id: 'z', type: 't'.repeat(129), timestamp: '1' }]);
  assert.equal(longType.error?.details, 'event 0: type must be 1..128 bytes (got 129); the 0 events before it were stored, it and the ones after it were not');
  const longId = await streamEvents(client, [{ event_id: 'i'.repeat(257), type: 't', timestamp: '1' }]);
  assert.equal(longId.error?.details, 'event 0: event_id must be 1..256 bytes (got 257); the 0 events before it were stored, it and the ones after it were not');
  assert.equal(await redis.llen(key), 3);
});

test('Redis lost mid-call: summary { success: false, events_received: what was stored }', { timeout: 20_000, skip: SKIP_ON_REDIS_CLUSTER }, async (t) => {
  const base = testConfig();
  const proxy = await TcpProxy.start(base.redis.port, base.redis.host);
  const config = testConfig({ 'redis-key-prefix': base.redis.keyPrefix, 'redis-port': String(proxy.port) });
  const redis = await queueRedis(base);
  t.after(() => deleteKeys(redis, base));
  t.after(() => proxy.close().catch(() => {}));
  const client = await serve(t, config);
  const key = topology(config).redis.queue('events');
  const result = new Promise<{ success: boolean; events_received: number } | undefined>((resolve, reject) => {
    const call = client.StreamEvents(new Metadata(), (err, res) => (err ? reject(err) : resolve(res)));
    for (const e of events(10)) call.write(e);
    // The first 10 are flushed by the timer; then Redis goes away and 5 more cannot be stored.
    void waitFor('10 stored', async () => (await redis.llen(key)) === 10).then(async () => {
      await proxy.close();
      for (const e of events(5, 'late')) call.write(e);
      call.end();
    });
  });
  assert.deepEqual(await result, { success: false, events_received: 10 });
  assert.equal(await redis.llen(key), 10);
});
