/**
 * Where the local clusters live: `stack up --kafka-nodes 3` (three KRaft nodes, each broker and
 * controller) and `stack up --redis-cluster` (six redis-server in cluster mode, three masters with
 * one replica each), on this one machine, beside the single-node stack.
 *
 * Fixed ports, chosen so the clusters run at the same time as the single-node stack (6379, 9092,
 * 9093) and the tests' servers: all below 32768, because 32768–60999 is the kernel's ephemeral
 * range, where any outgoing connection may hold the port when a node (re)starts.
 *
 *   Kafka node  1      2      3          Redis node  17001 .. 17006   (clients)
 *   client     19092  19094  19096                  27001 .. 27006   (cluster bus, port + 10000)
 *   controller 19093  19095  19097
 *
 * Not Config options: the fault tests and their helpers name these nodes by id and port, and one
 * layout per machine is all a local cluster needs (a second cluster would fail with
 * STACK_PORT_TAKEN naming the port).
 *
 *   <dataDir>/cluster/
 *     kafka/cluster.id                        the KRaft cluster id all three nodes were formatted with
 *     kafka/node-<id>/server.properties, log4j2.properties, data/
 *     redis/<port>/                           nodes.conf (cluster membership), appendonly files
 *     logs/kafka-<id>.log, kafka-<id>.out, redis-<port>.log
 *   <dataDir>/run/cluster-kafka-<id>.pid, cluster-redis-<port>.pid   (beside the stack's lock)
 *
 * Everything is under cluster/, not the single stack's kafka/, redis/ and logs/: `stack up --fresh`
 * without the cluster flags wipes those while the cluster may be running, and the other way round.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { StackPaths } from './paths.js';

export const CLUSTER_HOST = '127.0.0.1';

export interface KafkaNode {
  readonly nodeId: number;
  /** PLAINTEXT listener, the one clients bootstrap from. */
  readonly port: number;
  readonly controllerPort: number;
}

export const KAFKA_NODES: readonly KafkaNode[] = [
  { nodeId: 1, port: 19092, controllerPort: 19093 },
  { nodeId: 2, port: 19094, controllerPort: 19095 },
  { nodeId: 3, port: 19096, controllerPort: 19097 },
];

/** Six nodes: `redis-cli --cluster create --cluster-replicas 1` makes the first three masters. */
export const REDIS_CLUSTER_PORTS: readonly number[] = [17001, 17002, 17003, 17004, 17005, 17006];
export const REDIS_CLUSTER_MASTERS = 3;
/** Redis derives it; listed so the ports above can be checked against the ephemeral range. */
export const REDIS_BUS_PORT_OFFSET = 10_000;

/**
 * Heap of each cluster node. Three JVMs share two cores and the single broker's machine: 384 MiB
 * holds a few test topics with replication 3 (the single broker's default is 512).
 */
export const KAFKA_NODE_HEAP_MB = 384;

/**
 * Redis cluster-node-timeout: how long a master may be unreachable before its replica is promoted.
 * Redis's 15 s default would make every failover in the fault tests take over 15 s; below ~2 s a
 * busy two-core machine would see false failovers.
 */
export const REDIS_NODE_TIMEOUT_MS = 5000;

export function kafkaNode(nodeId: number): KafkaNode {
  const n = KAFKA_NODES.find((k) => k.nodeId === nodeId);
  assert.ok(n !== undefined, `no Kafka cluster node ${nodeId}: the nodes are ${KAFKA_NODES.map((k) => k.nodeId).join(', ')}`);
  return n;
}

export function kafkaClusterBrokers(): string[] {
  return KAFKA_NODES.map((n) => `${CLUSTER_HOST}:${n.port}`);
}

export interface KafkaNodePaths {
  readonly dir: string;
  readonly props: string;
  readonly log4jProps: string;
  readonly data: string;
  readonly log: string;
  readonly out: string;
  readonly pid: string;
}

export interface RedisNodePaths {
  readonly dir: string;
  readonly log: string;
  readonly pid: string;
}

export interface ClusterPaths {
  readonly root: string;
  readonly kafkaRoot: string;
  readonly kafkaClusterId: string;
  readonly redisRoot: string;
  readonly logDir: string;
  kafka(nodeId: number): KafkaNodePaths;
  redis(port: number): RedisNodePaths;
  /** The files `stack logs kafka-cluster` / `redis-cluster` show. */
  kafkaLogs(): string[];
  redisLogs(): string[];
}

export function clusterPaths(paths: StackPaths): ClusterPaths {
  const root = join(paths.dataDir, 'cluster');
  const logDir = join(root, 'logs');
  const kafka = (nodeId: number): KafkaNodePaths => {
    const dir = join(root, 'kafka', `node-${nodeId}`);
    return {
      dir,
      props: join(dir, 'server.properties'),
      log4jProps: join(dir, 'log4j2.properties'),
      data: join(dir, 'data'),
      log: join(logDir, `kafka-${nodeId}.log`),
      out: join(logDir, `kafka-${nodeId}.out`),
      pid: join(paths.runDir, `cluster-kafka-${nodeId}.pid`),
    };
  };
  const redis = (port: number): RedisNodePaths => ({
    dir: join(root, 'redis', String(port)),
    log: join(logDir, `redis-${port}.log`),
    pid: join(paths.runDir, `cluster-redis-${port}.pid`),
  });
  return {
    root,
    kafkaRoot: join(root, 'kafka'),
    kafkaClusterId: join(root, 'kafka', 'cluster.id'),
    redisRoot: join(root, 'redis'),
    logDir,
    kafka,
    redis,
    kafkaLogs: () => KAFKA_NODES.flatMap((n) => [kafka(n.nodeId).log, kafka(n.nodeId).out]),
    redisLogs: () => REDIS_CLUSTER_PORTS.map((p) => redis(p).log),
  };
}
