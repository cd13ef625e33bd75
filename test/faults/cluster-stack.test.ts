/**
 * The local clusters (issue 19): `stack up --kafka-nodes 3 --redis-cluster` on the fixed ports of
 * src/stack/cluster-layout.ts, beside the single-node stack the rest of the suite uses (which this
 * file never starts, stops or touches). The clusters are stopped at the end only if this file
 * started them: a cluster someone left running stays running.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PROJECT_ROOT, type Config } from '../../src/config.js';
import { deleteTopics, ensureTopics } from '../../src/kafka/admin.js';
import { withAdmin } from '../../src/kafka/native/client.js';
import { kafkaRoundTrip } from '../../src/kafka/native/round-trip.js';
import { KAFKA_NODES, REDIS_CLUSTER_PORTS } from '../../src/stack/cluster-layout.js';
import { parseClusterInfo } from '../../src/stack/redis-cluster.js';
import { runToEnd } from '../../src/stack/processes.js';
import {
  clusterTestConfig,
  ensureClusterStack,
  kafkaClusterTestConfig,
  killKafkaBroker,
  killRedisNode,
  partitionLeader,
  redisMasters,
  startKafkaBroker,
  startRedisNode,
  stopClusterStack,
} from '../helpers/cluster-stack.js';

const CLI = join(PROJECT_ROOT, 'bin', 'stratus.js');

let startedByThisFile = false;
after(async () => {
  if (startedByThisFile) await stopClusterStack();
});

async function up(): Promise<Awaited<ReturnType<typeof ensureClusterStack>>> {
  const c = await ensureClusterStack();
  startedByThisFile ||= c.startedHere;
  return c;
}

function stratus(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A config whose topic prefix is this test's own, with the cluster as its brokers. */
function kafkaConfig(): Config {
  const base = clusterTestConfig();
  return kafkaClusterTestConfig({ ...base, kafka: { ...base.kafka, topicPrefix: `test.${randomUUID()}.` } });
}

async function cli(port: number, ...args: string[]): Promise<string> {
  const password = clusterTestConfig().redis.password;
  const env = password === '' ? process.env : { ...process.env, REDISCLI_AUTH: password };
  const r = await runToEnd('redis-cli', ['-p', String(port), ...args], { env, timeoutMs: 10_000 });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const v = await probe().catch((err: unknown) => {
      last = err;
      return undefined;
    });
    if (v !== undefined) return v;
    assert.ok(Date.now() < deadline, `${what}: not within ${timeoutMs} ms (last error: ${String(last)})`);
    await sleep(200);
  }
}

test('up twice: three KRaft brokers with a replication-3 round trip, a Redis Cluster of 3 masters with a replica each, status', { timeout: 240_000 }, async (t) => {
  const first = await up();
  const again = await up();
  t.diagnostic(`up: ${first.startedHere ? 'cold' : 'warm'} ${Math.round(first.upMs)} ms, then warm ${Math.round(again.upMs)} ms`);
  assert.equal(again.startedHere, false);
  assert.deepEqual(again.services.map((s) => `${s.name} ${s.state}`).sort(), [...KAFKA_NODES.map((n) => `kafka-${n.nodeId} running`), ...REDIS_CLUSTER_PORTS.map((p) => `redis-${p} running`)].sort());
  assert.deepEqual(first.kafkaBrokers, ['127.0.0.1:19092', '127.0.0.1:19094', '127.0.0.1:19096']);
  assert.deepEqual(first.redisNodes.map((n) => n.port), [17001, 17002, 17003, 17004, 17005, 17006]);

  // Kafka: every partition of a replication-3 topic is on all three brokers, all in sync.
  const config = kafkaConfig();
  const topic = `${config.kafka.topicPrefix}rf3`;
  t.after(() => deleteTopics(config, [topic]));
  await ensureTopics(config, [{ topic, partitions: 3, replicationFactor: 3 }]);
  const meta = await withAdmin(config, 'test', (admin) => admin.fetchTopicMetadata({ topics: [topic], timeout: 10_000 }));
  assert.equal(meta[0]!.partitions.length, 3);
  for (const p of meta[0]!.partitions) {
    assert.deepEqual([...p.replicas].sort(), [1, 2, 3], JSON.stringify(p));
    assert.deepEqual([...p.isr].sort(), [1, 2, 3], JSON.stringify(p));
    assert.ok([1, 2, 3].includes(p.leader), JSON.stringify(p));
  }
  const r = await kafkaRoundTrip(config, { topic, messages: 300, keys: 6, timeoutMs: 60_000 });
  assert.deepEqual({ produced: r.produced, consumed: r.consumed, duplicates: r.duplicates, outOfOrder: r.outOfOrder }, { produced: 300, consumed: 300, duplicates: 0, outOfOrder: 0 });

  // Redis: every node sees the whole cluster.
  for (const port of REDIS_CLUSTER_PORTS) {
    const info = parseClusterInfo(await cli(port, 'cluster', 'info'));
    assert.deepEqual({ state: info.cluster_state, slots: info.cluster_slots_ok, nodes: info.cluster_known_nodes, size: info.cluster_size }, { state: 'ok', slots: '16384', nodes: '6', size: '3' }, `node ${port}`);
  }
  const masters = await redisMasters();
  assert.equal(masters.length, 3);
  assert.equal(masters.reduce((n, m) => n + m.slots, 0), 16384);
  for (const m of masters) assert.equal(m.replicas.length, 1, JSON.stringify(m));
  assert.deepEqual([...masters.flatMap((m) => [m.port, ...m.replicas.map((x) => x.port)])].sort(), [...REDIS_CLUSTER_PORTS]);

  // A key lives on one master; another node answers MOVED, and redis-cli -c follows it.
  const key = `test:${randomUUID()}:k`;
  const slot = Number(await cli(17001, 'cluster', 'keyslot', key));
  const replies = await Promise.all(masters.map((m) => cli(m.port, 'get', key)));
  const owner = masters[replies.findIndex((x) => !x.startsWith('MOVED'))]!;
  assert.deepEqual(replies.filter((x) => x.startsWith('MOVED')), [`MOVED ${slot} 127.0.0.1:${owner.port}`, `MOVED ${slot} 127.0.0.1:${owner.port}`], replies.join(' | '));
  const nonOwner = masters[replies.findIndex((x) => x.startsWith('MOVED'))]!.port;
  t.after(() => cli(nonOwner, '-c', 'del', key));
  assert.equal(await cli(nonOwner, '-c', 'set', key, 'v1'), 'OK');
  for (const port of REDIS_CLUSTER_PORTS.filter((p) => p !== nonOwner)) {
    // A replica redirects reads to the slot's master too (READONLY is off).
    assert.equal(await cli(port, '-c', 'get', key), 'v1', `via ${port}`);
  }

  const status = stratus('stack', 'status', '--kafka-nodes', '3', '--redis-cluster');
  assert.equal(status.code, 0, status.stdout + status.stderr);
  for (const n of KAFKA_NODES) assert.match(status.stdout, new RegExp(`kafka-${n.nodeId}\\s+running\\s+127\\.0\\.0\\.1:${n.port}\\s+pid \\d+\\n`));
  for (const p of REDIS_CLUSTER_PORTS) assert.match(status.stdout, new RegExp(`redis-${p}\\s+running\\s+127\\.0\\.0\\.1:${p}\\s+pid \\d+\\n`));
  assert.doesNotMatch(status.stdout, /NOT ANSWERING/);
  const logs = stratus('stack', 'logs', 'kafka-cluster', '--lines', '2');
  assert.equal(logs.code, 0, logs.stderr);
  for (const n of KAFKA_NODES) assert.match(logs.stdout, new RegExp(`cluster/logs/kafka-${n.nodeId}\\.log <==`));
});

test('fault hooks: a killed partition leader is replaced and rejoins; a killed Redis master fails over and comes back as a replica', { timeout: 240_000 }, async (t) => {
  await up();
  const config = kafkaConfig();
  const topic = `${config.kafka.topicPrefix}fault`;
  t.after(() => deleteTopics(config, [topic]));
  await ensureTopics(config, [{ topic, partitions: 1, replicationFactor: 3 }]);

  const leader = await partitionLeader(topic, 0);
  assert.ok([1, 2, 3].includes(leader), `leader ${leader}`);
  await killKafkaBroker(leader);
  // The controller fences the dead broker after broker.session.timeout.ms (9 s) at the latest.
  const next = await waitFor('a new leader', 60_000, async () => {
    const l = await partitionLeader(topic, 0);
    return l !== leader && l !== -1 ? l : undefined;
  });
  t.diagnostic(`partition 0: leader ${leader} killed, ${next} leads`);
  const down = stratus('stack', 'status', '--kafka-nodes', '3', '--redis-cluster');
  assert.equal(down.code, 3, down.stdout);
  assert.match(down.stdout, new RegExp(`kafka-${leader}\\s+stopped`));
  // Two of three replicas in sync meet min.insync.replicas 2: acks=all writes go on.
  const during = await kafkaRoundTrip(config, { topic, messages: 50, keys: 2, timeoutMs: 60_000 });
  assert.deepEqual({ produced: during.produced, consumed: during.consumed, duplicates: during.duplicates }, { produced: 50, consumed: 50, duplicates: 0 });
  await startKafkaBroker(leader);
  await waitFor(`node ${leader} back in the ISR`, 60_000, async () => {
    const meta = await withAdmin(config, 'test', (admin) => admin.fetchTopicMetadata({ topics: [topic], timeout: 10_000 }));
    return meta[0]!.partitions[0]!.isr.length === 3 ? true : undefined;
  });

  const [victim] = await redisMasters();
  const replica = victim!.replicas[0]!;
  await killRedisNode(victim!.port);
  // The replica is promoted once the master has been unreachable for cluster-node-timeout (5 s).
  await waitFor(`${replica.port} promoted`, 60_000, async () => ((await redisMasters()).some((m) => m.port === replica.port) ? true : undefined));
  await startRedisNode(victim!.port);
  const masters = await redisMasters();
  assert.equal(masters.length, 3);
  const promoted = masters.find((m) => m.port === replica.port);
  assert.ok(promoted !== undefined, JSON.stringify(masters));
  assert.deepEqual(promoted.replicas.map((r) => r.port), [victim!.port], 'the old master rejoins as the new master\'s replica');
  const status = stratus('stack', 'status', '--kafka-nodes', '3', '--redis-cluster');
  assert.equal(status.code, 0, status.stdout);
});
