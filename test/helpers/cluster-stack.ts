/**
 * The local clusters for tests (issue 19): a three-node KRaft Kafka and a six-node Redis Cluster,
 * started by the code `stratus stack up --kafka-nodes 3 --redis-cluster` runs (src/stack), on the
 * fixed ports of src/stack/cluster-layout.ts, beside the single-node stack the rest of the suite
 * uses. Plus the fault hooks: kill a node with SIGKILL, start it again on its existing data, ask
 * who leads what.
 *
 *   ensureClusterStack()          idempotent; starts what does not run, waits until all answer
 *   stopClusterStack()            stops the clusters only (never the single-node stack)
 *   killKafkaBroker(id)           kill -9 of node 1, 2 or 3 (its pid file stays: status says stopped)
 *   startKafkaBroker(id)          starts it on its log dir; resolves once it answers metadata
 *   killRedisNode(port)           kill -9 of node 17001..17006
 *   startRedisNode(port)          starts it on its nodes.conf; resolves once it is back in the cluster
 *   redisMasters()                masters serving slots, with their replicas (CLUSTER NODES)
 *   partitionLeader(topic, p)     node id leading a partition (-1: none), from broker metadata
 *
 * The hooks take no lock: a fault test owns the cluster while it runs (tests that kill nodes must
 * not run in parallel with each other).
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig, type Config } from '../../src/config.js';
import { withAdmin } from '../../src/kafka/native/client.js';
import { CLUSTER_HOST, clusterPaths, KAFKA_NODES, kafkaClusterBrokers, REDIS_CLUSTER_PORTS, type ClusterPaths } from '../../src/stack/cluster-layout.js';
import { kafkaClusterConfig, kafkaNodeState, startKafkaNodes, waitKafkaNode } from '../../src/stack/kafka-cluster.js';
import { stackPaths } from '../../src/stack/paths.js';
import { isAlive, removeFile, type PidState } from '../../src/stack/processes.js';
import { parseClusterNodes, redisCli, redisNodeState, startRedisNode as startNode, waitRedisClusterReady } from '../../src/stack/redis-cluster.js';
import { stackDown, stackUp, type ServiceReport } from '../../src/stack/stack.js';

export interface ClusterStack {
  /** Bootstrap list for clients: 127.0.0.1:19092,19094,19096. */
  kafkaBrokers: string[];
  /** Every Redis node (cluster clients take them all as seeds). */
  redisNodes: { host: string; port: number }[];
  /** Whether this call started any node (a test that did should stop the clusters at its end). */
  startedHere: boolean;
  /** ms this call took. */
  upMs: number;
  services: ServiceReport[];
}

/** Config from the environment, as the CLI reads it: the stack's data dir and Redis password. */
export function clusterTestConfig(): Config {
  return loadConfig();
}

/** `config` with the cluster as its bootstrap brokers, for producers, consumers and the admin. */
export function kafkaClusterTestConfig(config: Config = clusterTestConfig()): Config {
  return kafkaClusterConfig(config);
}

function paths(config: Config): ClusterPaths {
  return clusterPaths(stackPaths(config));
}

export async function ensureClusterStack(config: Config = clusterTestConfig()): Promise<ClusterStack> {
  const t0 = performance.now();
  const up = await stackUp(config, { kafkaNodes: KAFKA_NODES.length, redisCluster: true });
  return {
    kafkaBrokers: kafkaClusterBrokers(),
    redisNodes: REDIS_CLUSTER_PORTS.map((port) => ({ host: CLUSTER_HOST, port })),
    startedHere: up.services.some((s) => s.state === 'started'),
    upMs: performance.now() - t0,
    services: up.services,
  };
}

export async function stopClusterStack(config: Config = clusterTestConfig()): Promise<void> {
  await stackDown(config, { kafkaNodes: KAFKA_NODES.length, redisCluster: true });
}

async function kill9(st: PidState, what: string): Promise<void> {
  assert.equal(st.state, 'running', `${what} is not running (pid file: ${st.state})`);
  if (st.state !== 'running') return;
  process.kill(st.pid, 'SIGKILL');
  const deadline = Date.now() + 10_000;
  while (isAlive(st.pid)) {
    assert.ok(Date.now() < deadline, `${what} (pid ${st.pid}) still alive 10 s after SIGKILL`);
    await sleep(20);
  }
}

export async function killKafkaBroker(nodeId: number, config: Config = clusterTestConfig()): Promise<void> {
  await kill9(kafkaNodeState(paths(config), nodeId), `Kafka cluster node ${nodeId}`);
}

export async function startKafkaBroker(nodeId: number, config: Config = clusterTestConfig()): Promise<void> {
  const cluster = paths(config);
  const st = kafkaNodeState(cluster, nodeId);
  assert.notEqual(st.state, 'running', `Kafka cluster node ${nodeId} is already running`);
  removeFile(cluster.kafka(nodeId).pid);
  const [started] = await startKafkaNodes(config, stackPaths(config), cluster, [nodeId]);
  await waitKafkaNode(config, cluster, nodeId, started!.pid, Date.now() + config.stack.startTimeoutMs);
}

export async function killRedisNode(port: number, config: Config = clusterTestConfig()): Promise<void> {
  await kill9(redisNodeState(paths(config), port), `Redis cluster node ${port}`);
}

/** Resolves once every running node answers that the cluster is whole again: all slots, every master with a replica in sync. */
export async function startRedisNode(port: number, config: Config = clusterTestConfig()): Promise<void> {
  const cluster = paths(config);
  const st = redisNodeState(cluster, port);
  assert.notEqual(st.state, 'running', `Redis cluster node ${port} is already running`);
  removeFile(cluster.redis(port).pid);
  const deadline = Date.now() + config.stack.startTimeoutMs;
  await startNode(config, cluster, port, deadline);
  // Every node's view, not only the restarted one's: the others clear their FAIL flag for it a
  // moment after it answers again.
  await waitRedisClusterReady(config, deadline, REDIS_CLUSTER_PORTS.filter((p) => redisNodeState(cluster, p).state === 'running'));
}

export interface RedisMaster {
  id: string;
  host: string;
  port: number;
  slots: number;
  replicas: { id: string; host: string; port: number }[];
}

/** Masters serving slots and not flagged as failing, by port, as the first node that answers sees them. */
export async function redisMasters(config: Config = clusterTestConfig()): Promise<RedisMaster[]> {
  const cluster = paths(config);
  let last: unknown = new Error('no Redis cluster node runs');
  for (const port of REDIS_CLUSTER_PORTS) {
    if (redisNodeState(cluster, port).state !== 'running') continue;
    let text: string;
    try {
      text = await redisCli(config, port, ['cluster', 'nodes']);
    } catch (err) {
      last = err;
      continue;
    }
    const nodes = parseClusterNodes(text);
    return nodes
      .filter((n) => n.role === 'master' && n.slots > 0 && !n.failing)
      .map((m) => ({
        id: m.id,
        host: m.host,
        port: m.port,
        slots: m.slots,
        replicas: nodes.filter((n) => n.role === 'replica' && n.masterId === m.id && !n.failing).map((r) => ({ id: r.id, host: r.host, port: r.port })),
      }))
      .sort((a, b) => a.port - b.port);
  }
  throw last;
}

/** The node id leading the partition in the brokers' metadata; -1 while it has no leader. */
export async function partitionLeader(topic: string, partition: number, config: Config = clusterTestConfig()): Promise<number> {
  const meta = await withAdmin(kafkaClusterConfig(config), 'test-cluster-leader', (admin) => admin.fetchTopicMetadata({ topics: [topic], timeout: 10_000 }));
  const p = meta[0]?.partitions.find((x) => x.partitionId === partition);
  assert.ok(p !== undefined, `no partition ${partition} in the metadata of ${topic}`);
  return p.leader;
}
