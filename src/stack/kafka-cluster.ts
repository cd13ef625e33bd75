/**
 * The local three-node Kafka cluster (`stack up --kafka-nodes 3`): three KRaft nodes on this
 * machine, each both broker and controller, a static controller quorum of all three
 * (controller.quorum.voters), every node formatted by StorageTool with the same cluster id. Ports
 * and directories: cluster-layout.ts.
 *
 * Any one node may be killed (the fault tests do) and the other two keep a quorum and the
 * partitions' leaders; topics made by `stack up` have replication 3 and min.insync.replicas 2, so
 * acks=all producers keep writing with one node down.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config.js';
import { ErrorCode, StratusError } from '../errors.js';
import { waitForKafka } from '../kafka/admin.js';
import { CLUSTER_HOST, KAFKA_NODE_HEAP_MB, KAFKA_NODES, kafkaClusterBrokers, kafkaNode, type ClusterPaths, type KafkaNode } from './cluster-layout.js';
import { checkJavaAndJars, clusterId, javaCommand, log4jProperties } from './kafka-server.js';
import type { StackPaths } from './paths.js';
import { firstError, isAlive, pidState, portAnswers, removeFile, runToEnd, stopProcess, tail, writePid, type PidState } from './processes.js';

/** Replicas of each topic `stack up` creates on the cluster, and of Kafka's internal topics. */
export const CLUSTER_REPLICATION_FACTOR = 3;
/** With 3 replicas: acks=all survives one node down, and a write is on two nodes before it is acked. */
export const CLUSTER_MIN_INSYNC_REPLICAS = 2;

/**
 * Small heap, serial GC (one GC thread instead of G1's several, on two shared cores) and C1 only
 * (-XX:TieredStopAtLevel=1: C2's compiler threads would compete with three JVMs starting at once).
 * Measured on the two-core machine, `up --fresh --kafka-nodes 3`: 5.6-6.9 s and about 285 MB RSS
 * per node, against 8.7-8.9 s and 330 MB with G1 and C2. Enough for test traffic; not for
 * benchmarks (the single broker is what `stratus bench` measures).
 */
const NODE_JVM_FLAGS = [`-Xms64m`, `-Xmx${KAFKA_NODE_HEAP_MB}m`, '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-XX:+ExitOnOutOfMemoryError'];

/** The Config with the cluster as its bootstrap brokers (for the admin and the clients of tests). */
export function kafkaClusterConfig(config: Config): Config {
  return { ...config, kafka: { ...config.kafka, brokers: kafkaClusterBrokers() } };
}

/** The Config whose only bootstrap broker is one node: "does this node answer", not "does any". */
export function kafkaNodeConfig(config: Config, nodeId: number): Config {
  return { ...config, kafka: { ...config.kafka, brokers: [kafkaNodeAddress(nodeId)] } };
}

export function kafkaNodeAddress(nodeId: number): string {
  return `${CLUSTER_HOST}:${kafkaNode(nodeId).port}`;
}

/** A node's command line carries the path of its own server.properties. */
export function kafkaNodeState(cluster: ClusterPaths, nodeId: number): PidState {
  const p = cluster.kafka(nodeId);
  return pidState(p.pid, p.props);
}

function serverProperties(config: Config, cluster: ClusterPaths, node: KafkaNode): string {
  const voters = KAFKA_NODES.map((n) => `${n.nodeId}@${CLUSTER_HOST}:${n.controllerPort}`).join(',');
  return [
    '# Written by `stratus stack up --kafka-nodes 3`; edits are overwritten.',
    'process.roles=broker,controller',
    `node.id=${node.nodeId}`,
    // A static quorum: the three voters are fixed, so StorageTool needs no --initial-controllers.
    `controller.quorum.voters=${voters}`,
    `listeners=PLAINTEXT://${CLUSTER_HOST}:${node.port},CONTROLLER://${CLUSTER_HOST}:${node.controllerPort}`,
    `advertised.listeners=PLAINTEXT://${CLUSTER_HOST}:${node.port}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    `log.dirs=${cluster.kafka(node.nodeId).data}`,
    // As on the single broker: topics only by the explicit admin step.
    'auto.create.topics.enable=false',
    `num.partitions=${config.kafka.partitions}`,
    `default.replication.factor=${CLUSTER_REPLICATION_FACTOR}`,
    `min.insync.replicas=${CLUSTER_MIN_INSYNC_REPLICAS}`,
    `offsets.topic.replication.factor=${CLUSTER_REPLICATION_FACTOR}`,
    `transaction.state.log.replication.factor=${CLUSTER_REPLICATION_FACTOR}`,
    `transaction.state.log.min.isr=${CLUSTER_MIN_INSYNC_REPLICAS}`,
    `share.coordinator.state.topic.replication.factor=${CLUSTER_REPLICATION_FACTOR}`,
    `share.coordinator.state.topic.min.isr=${CLUSTER_MIN_INSYNC_REPLICAS}`,
    // Kafka's 50 partitions per internal topic would be 150 replicas per topic on each of three
    // small JVMs, created when the first consumer group or transaction appears; 6 is plenty here.
    'offsets.topic.num.partitions=6',
    'transaction.state.log.num.partitions=6',
    'share.coordinator.state.topic.num.partitions=6',
    'group.initial.rebalance.delay.ms=0',
    // Three JVMs on two cores: a few threads each instead of the defaults' 3 network + 8 I/O.
    'num.network.threads=2',
    'num.io.threads=2',
    'background.threads=2',
    '',
  ].join('\n');
}

/**
 * The cluster id all nodes share: the one recorded when the cluster was first formatted, else the
 * one a formatted node carries (cluster.id lost), else a new one.
 */
function sharedClusterId(cluster: ClusterPaths): string {
  if (existsSync(cluster.kafkaClusterId)) return readFileSync(cluster.kafkaClusterId, 'utf8').trim();
  let id: string | undefined;
  for (const n of KAFKA_NODES) {
    const meta = metaProperties(cluster, n.nodeId);
    if (meta !== null) id = meta.clusterId;
  }
  id ??= clusterId();
  writeFileSync(cluster.kafkaClusterId, `${id}\n`);
  return id;
}

function metaProperties(cluster: ClusterPaths, nodeId: number): { clusterId: string; nodeId: number } | null {
  const file = `${cluster.kafka(nodeId).data}/meta.properties`;
  if (!existsSync(file)) return null;
  const text = readFileSync(file, 'utf8');
  const c = /^cluster\.id=(\S+)$/m.exec(text);
  const n = /^node\.id=(\d+)$/m.exec(text);
  if (c === null || n === null) {
    throw new StratusError(ErrorCode.STACK_DATA_CORRUPT, `${file} is not a valid KRaft meta.properties; run \`stratus stack up --fresh --kafka-nodes 3\` to wipe the cluster's data`);
  }
  return { clusterId: c[1]!, nodeId: Number(n[1]) };
}

/** Formats each node that has no storage yet, in parallel (one JVM start each, seconds apiece). */
async function ensureFormatted(paths: StackPaths, cluster: ClusterPaths, nodes: readonly KafkaNode[]): Promise<void> {
  const id = sharedClusterId(cluster);
  const todo: KafkaNode[] = [];
  for (const n of nodes) {
    const p = cluster.kafka(n.nodeId);
    const meta = metaProperties(cluster, n.nodeId);
    if (meta !== null) {
      if (meta.clusterId !== id || meta.nodeId !== n.nodeId) {
        throw new StratusError(
          ErrorCode.STACK_DATA_CORRUPT,
          `${p.data} belongs to KRaft cluster ${meta.clusterId} node ${meta.nodeId}, not cluster ${id} node ${n.nodeId}; run \`stratus stack up --fresh --kafka-nodes 3\` to wipe the cluster's data`,
        );
      }
      continue;
    }
    if (existsSync(p.data) && readdirSync(p.data).length > 0) {
      throw new StratusError(ErrorCode.STACK_DATA_CORRUPT, `${p.data} holds data but no meta.properties; run \`stratus stack up --fresh --kafka-nodes 3\` to wipe the cluster's data`);
    }
    mkdirSync(p.data, { recursive: true });
    todo.push(n);
  }
  const results = await Promise.all(
    todo.map(async (n) => {
      const p = cluster.kafka(n.nodeId);
      const args = javaCommand(paths, p.log4jProps, ['-Xmx128m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1'], 'kafka.tools.StorageTool', ['format', '-t', id, '-c', p.props]);
      return { n, r: await runToEnd('java', args, { timeoutMs: 120_000 }) };
    }),
  );
  const bad = results.find((x) => x.r.code !== 0);
  if (bad !== undefined) {
    throw new StratusError(ErrorCode.STACK_START_FAILED, `formatting Kafka node ${bad.n.nodeId} failed: ${(bad.r.stderr || bad.r.stdout).trim().split('\n').slice(-3).join(' | ')}`);
  }
}

/**
 * Starts the given nodes (ports checked free, config written, storage formatted) and returns their
 * pids at once, without waiting: a node only answers once a quorum of controllers is up, so all
 * nodes to be started must be spawned before any is waited for (waitKafkaNode).
 */
export async function startKafkaNodes(config: Config, paths: StackPaths, cluster: ClusterPaths, nodeIds: readonly number[]): Promise<{ nodeId: number; pid: number }[]> {
  checkJavaAndJars(paths);
  const nodes = nodeIds.map(kafkaNode);
  for (const n of nodes) {
    for (const [p, what] of [[n.port, 'broker'], [n.controllerPort, 'controller']] as const) {
      if (await portAnswers(CLUSTER_HOST, p)) {
        throw new StratusError(
          ErrorCode.STACK_PORT_TAKEN,
          `${CLUSTER_HOST}:${p} (Kafka cluster node ${n.nodeId} ${what}) is in use by a process this stack did not start; the cluster's ports are fixed (src/stack/cluster-layout.ts): stop that process`,
        );
      }
    }
  }
  mkdirSync(cluster.logDir, { recursive: true });
  for (const n of nodes) {
    const p = cluster.kafka(n.nodeId);
    mkdirSync(p.dir, { recursive: true });
    writeFileSync(p.props, serverProperties(config, cluster, n));
    writeFileSync(p.log4jProps, log4jProperties(p.log));
  }
  await ensureFormatted(paths, cluster, nodes);
  const started: { nodeId: number; pid: number }[] = [];
  for (const n of nodes) {
    const p = cluster.kafka(n.nodeId);
    const out = openSync(p.out, 'a');
    const child = spawn('java', javaCommand(paths, p.log4jProps, NODE_JVM_FLAGS, 'kafka.Kafka', [p.props]), { detached: true, stdio: ['ignore', out, out] });
    closeSync(out);
    child.unref();
    if (child.pid === undefined) {
      for (const s of started) await stopKafkaNode(cluster, s.nodeId, s.pid);
      throw new StratusError(ErrorCode.STACK_START_FAILED, `java could not be started for Kafka cluster node ${n.nodeId}`);
    }
    writePid(p.pid, child.pid);
    started.push({ nodeId: n.nodeId, pid: child.pid });
  }
  return started;
}

/**
 * Resolves once the node's broker answers a metadata request. A KRaft broker opens its client port
 * only after the controller quorum has acknowledged it as caught up, so this is also "registered".
 * Throws STACK_START_FAILED (with the node's first logged error) if it exits or the deadline passes;
 * the caller stops what it started.
 */
export async function waitKafkaNode(config: Config, cluster: ClusterPaths, nodeId: number, pid: number, deadline: number): Promise<void> {
  const node = kafkaNode(nodeId);
  const p = cluster.kafka(nodeId);
  const failed = (why: string): never => {
    const first = firstError(p.log) || firstError(p.out);
    throw new StratusError(ErrorCode.STACK_START_FAILED, `Kafka cluster node ${nodeId} ${why}; ${first === '' ? '' : `its first error:\n${first}\n`}${p.log} ends with:\n${tail(p.log, 5) || tail(p.out, 5)}`);
  };
  while (!(await portAnswers(CLUSTER_HOST, node.port, 200))) {
    if (!isAlive(pid)) return failed('exited while starting');
    if (Date.now() > deadline) return failed(`did not open ${CLUSTER_HOST}:${node.port} in time (a quorum needs two of the three nodes up)`);
    await sleep(200);
  }
  try {
    await waitForKafka(kafkaNodeConfig(config, nodeId), Math.max(1000, deadline - Date.now()));
  } catch {
    failed('did not answer a metadata request in time');
  }
}

export async function stopKafkaNode(cluster: ClusterPaths, nodeId: number, pid: number): Promise<void> {
  // A controlled shutdown moves its leaderships to the other nodes first: seconds, not minutes.
  await stopProcess(pid, 30_000);
  removeFile(cluster.kafka(nodeId).pid);
}
