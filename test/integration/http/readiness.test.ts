/**
 * /readyz of an engine process (engineReadiness over the health registry) with real Kafka and Redis
 * clients: it reads their state, builds nothing per request, and names the client that is down.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { Agent, get } from 'node:http';
import { test } from 'node:test';
import { healthChecksRegistered, KafkaClientHealth, registerHealth } from '../../../src/http/health.js';
import { engineReadiness } from '../../../src/http/readiness.js';
import { HttpSurface } from '../../../src/http/server.js';
import { ensureTopics } from '../../../src/kafka/admin.js';
import { KafkaBatchConsumer } from '../../../src/kafka/native/consumer.js';
import { KafkaProducer } from '../../../src/kafka/native/producer.js';
import { topology } from '../../../src/topology.js';
import { connectRedis, createRedis, disconnectRedis, pingRedis } from '../../../src/redis/client.js';
import { testConfig } from '../../helpers/config.js';
import { unusedPort } from '../../helpers/ports.js';

async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function readyz(port: number): Promise<{ status: number; text: string }> {
  const r = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: r.status, text: await r.text() };
}

/** This process's TCP connections to `port` (any host): its socket fds matched against /proc/net/tcp{,6}. */
function socketsTo(port: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // The fd closed between readdir and readlink: not a connection any more.
    }
  }
  let n = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      // rem_address is HEXIP:HEXPORT; st 01 is ESTABLISHED, 02 SYN_SENT.
      const remotePort = parseInt(f[2]!.split(':')[1]!, 16);
      if (remotePort === port && (f[3] === '01' || f[3] === '02') && inodes.has(f[9]!)) n++;
    }
  }
  return n;
}

function threads(): number {
  return Number(/^Threads:\s+(\d+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
}

test('/readyz hammered 2,000 times (50 at a time) opens no Kafka or Redis connection and starts no thread', { timeout: 120_000 }, async (t) => {
  const config = testConfig();
  const kafkaPort = Number(config.kafka.brokers[0]!.split(':')[1]);
  const redisPort = config.redis.port;
  const checksBefore = healthChecksRegistered();
  const producer = await KafkaProducer.connect(config, 'readyz-hammer', () => {});
  t.after(() => producer.disconnect(2000));
  const redis = createRedis(config, 'readyz-hammer');
  await connectRedis(redis);
  t.after(() => disconnectRedis(redis));
  assert.equal(healthChecksRegistered(), checksBefore + 2);
  const s = await HttpSurface.start(config, engineReadiness(config), { port: 0 });
  t.after(() => s.close());
  await until(async () => (await readyz(s.port)).status === 200, '/readyz 200');

  const agent = new Agent({ keepAlive: true, maxSockets: 50 });
  t.after(() => agent.destroy());
  const one = () =>
    new Promise<{ status: number; ms: number }>((resolve) => {
      const started = performance.now();
      get({ host: '127.0.0.1', port: s.port, path: '/readyz', agent }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
      }).on('error', () => resolve({ status: 0, ms: performance.now() - started }));
    });
  const hammer = async (total: number) => {
    const out: { status: number; ms: number }[] = [];
    let next = 0;
    await Promise.all(Array.from({ length: 50 }, async () => {
      while (next < total) {
        next++;
        out.push(await one());
      }
    }));
    return out;
  };
  // Warm-up: the agent's 50 connections and whatever Node starts lazily exist before the count.
  await hammer(200);
  // librdkafka moves from its bootstrap connection to the broker's own after connect (seen: 0
  // sockets to Kafka for a moment right after a stack restart): count once that has settled.
  let seen = '';
  let sameSince = Date.now();
  await until(() => {
    const now = `${socketsTo(kafkaPort)}/${socketsTo(redisPort)}`;
    if (now !== seen) {
      seen = now;
      sameSince = Date.now();
    }
    return !now.startsWith('0/') && !now.endsWith('/0') && Date.now() - sameSince >= 1000;
  }, 'the connections to Kafka and Redis to settle');
  const before = { kafka: socketsTo(kafkaPort), redis: socketsTo(redisPort), threads: threads() };
  const started = performance.now();
  const results = await hammer(2000);
  const wallMs = performance.now() - started;
  const after = { kafka: socketsTo(kafkaPort), redis: socketsTo(redisPort), threads: threads() };

  assert.equal(results.length, 2000);
  assert.equal(results.filter((r) => r.status === 200).length, 2000);
  assert.ok(before.kafka >= 1 && before.redis >= 1, `the producer and the Redis client are connected: ${JSON.stringify(before)}`);
  assert.deepEqual(after, before);
  assert.equal(healthChecksRegistered(), checksBefore + 2);
  const ms = results.map((r) => r.ms).sort((a, b) => a - b);
  t.diagnostic(`2,000 /readyz, 50 at a time, client in this process: ${Math.round(2000 / (wallMs / 1000))}/s; p50 ${ms[999]!.toFixed(2)} ms, p99 ${ms[1979]!.toFixed(2)} ms, max ${ms[1999]!.toFixed(2)} ms; sockets to Kafka ${before.kafka} -> ${after.kafka}, to Redis ${before.redis} -> ${after.redis}; threads ${before.threads} -> ${after.threads}`);
});

/** A Redis of the test's own on a free port, without persistence: the test may stop it. */
async function ownRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const config = testConfig({ 'redis-port': String(port) });
  await until(() => pingRedis(config, 300).then(() => true, () => false), `redis-server on ${port}`, 10_000);
  return child;
}

test('/readyz goes 503 naming the Redis client when its Redis stops, and 200 again when it is back', { timeout: 60_000 }, async (t) => {
  const port = await unusedPort();
  let redisServer = await ownRedis(port);
  t.after(() => redisServer.kill('SIGKILL'));
  const config = testConfig({ 'redis-port': String(port) });
  const client = createRedis(config, 'readyz-cut');
  await connectRedis(client);
  t.after(() => disconnectRedis(client));
  const s = await HttpSurface.start(config, engineReadiness(config), { port: 0 });
  t.after(() => s.close());
  assert.deepEqual(await readyz(s.port), { status: 200, text: 'ready\n' });

  redisServer.kill('SIGKILL');
  await once(redisServer, 'exit');
  await until(() => client.status !== 'ready', 'the client to notice');
  const down = await readyz(s.port);
  assert.equal(down.status, 503);
  assert.match(down.text, new RegExp(`^not ready: Redis client stratus-readyz-cut at 127\\.0\\.0\\.1:${port}: (reconnecting|connecting|connect|close) \\(not ready\\)\\n$`));

  redisServer = await ownRedis(port);
  await until(async () => (await readyz(s.port)).status === 200, '/readyz 200 again');
  assert.deepEqual(await readyz(s.port), { status: 200, text: 'ready\n' });

  // Closed, the client no longer counts.
  const registered = healthChecksRegistered();
  disconnectRedis(client);
  await until(() => healthChecksRegistered() === registered - 1, 'the closed client to unregister');
});

test('/readyz says starting while no client is registered', { timeout: 20_000 }, async (t) => {
  const config = testConfig();
  const s = await HttpSurface.start(config, engineReadiness(config), { port: 0 });
  t.after(() => s.close());
  await until(() => healthChecksRegistered() === 0, 'the other tests\' clients to unregister');
  const r = await readyz(s.port);
  assert.equal(r.status, 503);
  assert.match(r.text, /^not ready: starting: no Kafka or Redis client is up yet \(Kafka at [^,)]+, Redis at [^)]+\)\n$/);
});

test('a Kafka client\'s state: connecting, up, all brokers down (librdkafka\'s event), back up (statistics), fatal for good; /readyz names it', { timeout: 20_000 }, async (t) => {
  const config = testConfig();
  const h = new KafkaClientHealth('Kafka producer hk-1');
  const unregister = registerHealth(h);
  t.after(unregister);
  const s = await HttpSurface.start(config, engineReadiness(config), { port: 0 });
  t.after(() => s.close());
  assert.deepEqual(await readyz(s.port), { status: 503, text: 'not ready: Kafka producer hk-1: connecting\n' });
  h.connected();
  assert.equal(h.problem(), null);
  assert.deepEqual(await readyz(s.port), { status: 200, text: 'ready\n' });
  // What the binding emits for ERR__ALL_BROKERS_DOWN: the message only, lower-cased, code -1.
  h.error({ code: -1, message: 'all broker connections are down' });
  assert.match((await readyz(s.port)).text, /^not ready: Kafka producer hk-1: all broker connections are down \(for \d+ s\)\n$/);
  // Statistics while reconnecting, then with the broker up again.
  h.stats({ brokers: { '127.0.0.1:9092/1': { state: 'CONNECT', nodeid: 1 } } });
  assert.match(h.problem()!, /^all broker connections are down|^no broker connection is up/);
  h.stats({ brokers: { '127.0.0.1:9092/1': { state: 'UP', nodeid: 1 } } });
  assert.deepEqual(await readyz(s.port), { status: 200, text: 'ready\n' });
  // A broker never connected (sparse connections) is not a failure.
  h.stats({ brokers: { '127.0.0.1:9092/1': { state: 'UP', nodeid: 1 }, 'b2:9092/2': { state: 'INIT', nodeid: 2 } } });
  assert.equal(h.problem(), null);
  h.error({ code: -1, message: 'fatal error' });
  h.stats({ brokers: { '127.0.0.1:9092/1': { state: 'UP', nodeid: 1 } } });
  assert.deepEqual(await readyz(s.port), { status: 503, text: 'not ready: Kafka producer hk-1: fatal error, the client must be restarted (fatal error)\n' });
  // A transport error is retried by librdkafka: not a readiness matter.
  const other = new KafkaClientHealth('Kafka consumer c-1');
  other.connected(1_000_000);
  other.error({ code: -1, message: 'broker transport failure' });
  assert.equal(other.problem(1_000_000), null);
  // A consumer's statistics come only while it is polled: silence for 10 s means its loop stalled.
  other.stats({ brokers: { b: { state: 'UP' } } }, 1_001_000);
  assert.equal(other.problem(1_011_000), null);
  assert.equal(other.problem(1_011_001), 'no statistics from librdkafka for 10 s (the client is not being polled)');
});

test('a real producer reports statistics every second: still ready after the 10 s silence limit', { timeout: 60_000 }, async (t) => {
  const config = testConfig();
  const s = await HttpSurface.start(config, engineReadiness(config), { port: 0 });
  t.after(() => s.close());
  await until(() => healthChecksRegistered() === 0, 'the other tests\' clients to unregister');
  const producer = await KafkaProducer.connect(config, 'readyz-quiet', () => {});
  t.after(() => producer.disconnect(2000));
  const since = Date.now();
  await until(() => Date.now() - since > 11_000, '11 s', 20_000);
  assert.deepEqual(await readyz(s.port), { status: 200, text: 'ready\n' });
});

test('a real producer registers on connect and unregisters on disconnect', { timeout: 60_000 }, async () => {
  const config = testConfig();
  const before = healthChecksRegistered();
  const producer = await KafkaProducer.connect(config, 'readyz-register', () => {});
  assert.equal(healthChecksRegistered(), before + 1);
  await producer.disconnect(2000);
  assert.equal(healthChecksRegistered(), before);
});

test('a real consumer stays ready while its loop consumes, and is reported not polled once the loop stops', { timeout: 90_000 }, async (t) => {
  const config = testConfig({ 'kafka-partitions': '1' });
  const topic = topology(config).topics.events;
  await ensureTopics(config, [{ topic, partitions: 1 }]);
  const s = await HttpSurface.start(config, engineReadiness(config), { port: 0 });
  t.after(() => s.close());
  await until(() => healthChecksRegistered() === 0, 'the other tests\' clients to unregister');
  const consumer = await KafkaBatchConsumer.connect(config, { groupId: `${config.kafka.topicPrefix}readyz`, topics: [topic], clientId: 'readyz-consumer' });
  t.after(() => consumer.disconnect());
  let looping = true;
  const loop = (async () => {
    while (looping) await consumer.consume();
  })();
  const since = Date.now();
  await until(() => Date.now() - since > 11_000, '11 s of consuming', 20_000);
  assert.deepEqual(await readyz(s.port), { status: 200, text: 'ready\n' });
  looping = false;
  await loop;
  await until(async () => (await readyz(s.port)).status === 503, 'the stalled consumer to show', 30_000);
  assert.match((await readyz(s.port)).text, /^not ready: Kafka consumer readyz-consumer \(group [^)]+\): no statistics from librdkafka for 1\d s \(the client is not being polled\)\n$/);
});
