/**
 * `stratus stack up | down | status`: the local Kafka and Redis for machines without Docker, and
 * with `--postgres` the PostgreSQL of the archive (postgres-server.ts).
 *
 * up      idempotent: finds what runs (pid file + live process + marker), starts what does not,
 *         waits until Redis answers PING and Kafka answers a metadata request, then creates the
 *         topics explicitly. Whatever this call started is stopped again if a later step fails,
 *         so a failed `up` leaves nothing half-started.
 *         Each service has two shapes: the single node (default: Redis 6379, Kafka 9092) and a
 *         local cluster (`kafkaNodes: 3`: three KRaft nodes; `redisCluster`: six Redis Cluster
 *         nodes; cluster-layout.ts). `up` ensures the shape asked for; the other shape, running
 *         or not, is left alone, so the clusters run beside the single-node stack.
 *         PostgreSQL only with `--postgres` (only the archive needs it, and initdb plus a server
 *         cost a few seconds and some disk that most runs do not need); `up` without it leaves a
 *         running one alone, and `--fresh` wipes its data only with `--postgres`.
 * down    stops exactly the processes the pid files name (and only if they are still ours), both
 *         shapes; PostgreSQL too when its pid file says it runs (with a cluster flag: only if
 *         `--postgres` is given as well).
 * status  what runs, where, and whether it answers; a postgres row when it runs or `--postgres`
 *         is given (only then does it decide the exit code).
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config.js';
import { ErrorCode, StratusError } from '../errors.js';
import { ensureTopics, waitForKafka, type TopicSpec } from '../kafka/admin.js';
import { pingRedis } from '../redis/client.js';
import { topology } from '../topology.js';
import { clusterPaths, KAFKA_NODES, REDIS_CLUSTER_PORTS, type ClusterPaths } from './cluster-layout.js';
import { CLUSTER_REPLICATION_FACTOR, kafkaClusterConfig, kafkaNodeAddress, kafkaNodeConfig, kafkaNodeState, startKafkaNodes, stopKafkaNode, waitKafkaNode } from './kafka-cluster.js';
import { kafkaAddress, kafkaState, startKafka, stopKafka } from './kafka-server.js';
import { ensurePostgres, pingPostgres, postgresAddress, postgresDown, postgresState, postgresTarget, stopPostgres, postgresDataToWipe } from './postgres-server.js';
import { stackPaths, type StackPaths } from './paths.js';
import type { PidState } from './processes.js';
import { removeFile, withLock } from './processes.js';
import { clusterNotReady, ensureRedisClusterFormed, pingRedisNode, redisNodeAddress, redisNodeState, startRedisNode, stopRedisNode } from './redis-cluster.js';
import { redisAddress, redisState, startRedis, stopRedis } from './redis-server.js';

/** `kafka-<nodeId>` and `redis-<port>` are the clusters' nodes. */
export type ServiceName = 'redis' | 'kafka' | 'postgres' | `kafka-${number}` | `redis-${number}`;

export interface ServiceReport {
  name: ServiceName;
  state: 'running' | 'started' | 'stopped' | 'stale pid file removed';
  address: string;
  pid: number | null;
  /** Time from spawn to answering, for a service this call started. */
  startMs: number | null;
  answering: boolean;
  /** status: shown for information, outside what was asked about (does not decide the exit code). */
  informational?: boolean;
}

export interface UpReport {
  services: ServiceReport[];
  topics: { topic: string; partitions: number; replicationFactor: number }[];
}

/** Which shape of each service: the single node (the default) or the local cluster. */
export interface StackShape {
  /** 1: the single broker (default); 3: the three-node KRaft cluster. */
  kafkaNodes?: number;
  /** The six-node Redis Cluster instead of the single Redis. */
  redisCluster?: boolean;
  /** PostgreSQL for the archive too (archive.postgresUrl), beside either shape. */
  postgres?: boolean;
}

export interface UpOptions extends StackShape {
  /** Stop and wipe the data of the services this call ensures (not of the other shape). */
  fresh?: boolean;
  /** Called with one line per step, for the CLI's progress output. */
  progress?: (line: string) => void;
}

/** The cluster sizes `--kafka-nodes` takes: the layout has fixed ports for exactly these. */
export const KAFKA_NODES_ALLOWED = [1, KAFKA_NODES.length] as const;

function shape(options: StackShape): { kafkaCluster: boolean; redisCluster: boolean } {
  const n = options.kafkaNodes ?? 1;
  if (!(KAFKA_NODES_ALLOWED as readonly number[]).includes(n)) {
    throw new StratusError(ErrorCode.USAGE, `--kafka-nodes must be ${KAFKA_NODES_ALLOWED.join(' or ')} (got ${n}): 1 is the single broker, ${KAFKA_NODES.length} the local KRaft cluster`);
  }
  return { kafkaCluster: n > 1, redisCluster: options.redisCluster === true };
}

const LOCK_WAIT_MS = 180_000;

/** What this call started, with how to stop it: undone newest first if a later step fails. */
interface Started {
  name: ServiceName;
  pid: number;
  stop(): Promise<void>;
}

export async function stackUp(config: Config, options: UpOptions = {}): Promise<UpReport> {
  const paths = stackPaths(config);
  const cluster = clusterPaths(paths);
  const want = shape(options);
  const say = options.progress ?? (() => {});
  mkdirSync(paths.runDir, { recursive: true });
  return withLock(paths.lock, LOCK_WAIT_MS, async () => {
    if (options.fresh) await wipe(config, paths, cluster, { ...want, postgres: options.postgres === true }, say);
    const started: Started[] = [];
    const services: ServiceReport[] = [];
    const deadline = Date.now() + config.stack.startTimeoutMs;
    try {
      // The cluster's JVMs take longest: spawned first, waited for after Redis is up.
      const kafkaClusterReady = want.kafkaCluster ? await spawnKafkaCluster(config, paths, cluster, started, say) : null;
      services.push(...(want.redisCluster ? await ensureRedisCluster(config, cluster, started, deadline, say) : [await ensureRedis(config, paths, started, say)]));
      services.push(...(kafkaClusterReady !== null ? await kafkaClusterReady(deadline) : [await ensureKafka(config, paths, started, say)]));
      if (options.postgres) {
        const pg = await ensurePostgres(config, paths, say);
        const pid = pg.startedPid;
        if (pid !== null) started.push({ name: 'postgres', pid, stop: () => stopPostgres(paths, pid) });
        services.push(pg.report);
      }
      const t = topology(config);
      const replicationFactor = want.kafkaCluster ? CLUSTER_REPLICATION_FACTOR : 1;
      // On the cluster: an ack waits for two of the three brokers (also the brokers' default there).
      const minInsync = want.kafkaCluster ? { minInsyncReplicas: CLUSTER_REPLICATION_FACTOR - 1 } : {};
      const topics = [
        { topic: t.topics.events, partitions: config.kafka.partitions, replicationFactor, ...minInsync },
        { topic: t.topics.results, partitions: config.kafka.partitions, replicationFactor, ...minInsync },
      ];
      if (want.kafkaCluster) await ensureClusterTopics(config, topics, deadline);
      else await ensureTopics(config, topics);
      return { services, topics };
    } catch (err) {
      // Nothing half-started: undo what this call started, newest first.
      for (const s of started.reverse()) {
        say(`stopping ${s.name} (pid ${s.pid}) after the failure`);
        await s.stop();
      }
      throw err;
    }
  });
}

/** --fresh: stop the services of the asked shape and remove their data and logs. */
async function wipe(config: Config, paths: StackPaths, cluster: ClusterPaths, want: { kafkaCluster: boolean; redisCluster: boolean; postgres: boolean }, say: (l: string) => void): Promise<void> {
  const remove = (what: string, targets: string[]) => {
    say(`wiping ${what}`);
    // run/ stays (it holds our lock).
    for (const d of targets) rmSync(d, { recursive: true, force: true });
  };
  if (want.postgres) {
    await postgresDown(paths);
    remove(`${paths.postgresDir} and its log`, [...postgresDataToWipe(paths), paths.postgresLog]);
  }
  if (!want.kafkaCluster && !want.redisCluster) {
    // The single-node stack, as before the clusters: logs/ holds its services' logs, except that a
    // PostgreSQL this call does not wipe keeps its log (it may be running and writing to it).
    await stopSingle(config, paths);
    const logs = existsSync(paths.logDir) ? readdirSync(paths.logDir).map((f) => join(paths.logDir, f)).filter((f) => f !== paths.postgresLog) : [];
    remove(paths.dataDir, [paths.kafkaDir, paths.redisData, ...logs]);
  }
  if (!want.kafkaCluster && want.redisCluster) {
    await stopOne(kafkaState(paths), paths.kafkaPid, (pid) => stopKafka(paths, pid));
    remove(`${paths.kafkaDir} and the broker's logs`, [paths.kafkaDir, paths.kafkaLog, paths.kafkaOut]);
  }
  if (!want.redisCluster && want.kafkaCluster) {
    await stopOne(redisState(config, paths), paths.redisPid, (pid) => stopRedis(paths, pid));
    remove(`${paths.redisData} and its log`, [paths.redisData, paths.redisLog]);
  }
  if (want.kafkaCluster) {
    await stopKafkaCluster(cluster);
    remove(`${cluster.kafkaRoot} and the nodes' logs`, [cluster.kafkaRoot, ...cluster.kafkaLogs()]);
  }
  if (want.redisCluster) {
    await stopRedisCluster(cluster);
    remove(`${cluster.redisRoot} and the nodes' logs`, [cluster.redisRoot, ...cluster.redisLogs()]);
  }
}

async function ensureRedis(config: Config, paths: StackPaths, started: Started[], say: (l: string) => void): Promise<ServiceReport> {
  const st = redisState(config, paths);
  const address = redisAddress(config);
  if (st.state === 'running') {
    await pingRedis(config, 5000);
    return { name: 'redis', state: 'running', address, pid: st.pid, startMs: null, answering: true };
  }
  if (st.state === 'stale') {
    say(`redis: removing stale pid file ${paths.redisPid} (pid ${st.pid} is not our redis-server)`);
    removeFile(paths.redisPid);
  }
  say(`redis: starting on ${address}`);
  const t0 = performance.now();
  const pid = await startRedis(config, paths);
  started.push({ name: 'redis', pid, stop: () => stopRedis(paths, pid) });
  return { name: 'redis', state: 'started', address, pid, startMs: performance.now() - t0, answering: true };
}

async function ensureKafka(config: Config, paths: StackPaths, started: Started[], say: (l: string) => void): Promise<ServiceReport> {
  const st = kafkaState(paths);
  const address = kafkaAddress(config);
  if (st.state === 'running') {
    // Ours and alive; it may still be starting (another `up` racing us was before the lock).
    await waitForKafka(config, config.stack.startTimeoutMs);
    return { name: 'kafka', state: 'running', address, pid: st.pid, startMs: null, answering: true };
  }
  if (st.state === 'stale') {
    say(`kafka: removing stale pid file ${paths.kafkaPid} (pid ${st.pid} is not our broker)`);
    removeFile(paths.kafkaPid);
  }
  say(`kafka: starting on ${address} (JVM start takes several seconds)`);
  const t0 = performance.now();
  const pid = await startKafka(config, paths);
  started.push({ name: 'kafka', pid, stop: () => stopKafka(paths, pid) });
  return { name: 'kafka', state: 'started', address, pid, startMs: performance.now() - t0, answering: true };
}

/**
 * Spawns the cluster's nodes that do not run (all of them together: a node answers only once two
 * of the three controllers are up) and returns the wait for every node to answer.
 */
async function spawnKafkaCluster(config: Config, paths: StackPaths, cluster: ClusterPaths, started: Started[], say: (l: string) => void): Promise<(deadline: number) => Promise<ServiceReport[]>> {
  const nodes = KAFKA_NODES.map((n) => ({ nodeId: n.nodeId, st: kafkaNodeState(cluster, n.nodeId) }));
  for (const { nodeId, st } of nodes) {
    if (st.state === 'stale') {
      say(`kafka-${nodeId}: removing stale pid file ${cluster.kafka(nodeId).pid} (pid ${st.pid} is not our node)`);
      removeFile(cluster.kafka(nodeId).pid);
    }
  }
  const missing = nodes.filter((n) => n.st.state !== 'running').map((n) => n.nodeId);
  const t0 = performance.now();
  if (missing.length > 0) say(`kafka cluster: starting node${missing.length > 1 ? 's' : ''} ${missing.join(', ')} on ${missing.map(kafkaNodeAddress).join(', ')} (JVM start takes several seconds)`);
  const spawned = missing.length === 0 ? [] : await startKafkaNodes(config, paths, cluster, missing);
  for (const s of spawned) started.push({ name: `kafka-${s.nodeId}`, pid: s.pid, stop: () => stopKafkaNode(cluster, s.nodeId, s.pid) });
  return (deadline) =>
    Promise.all(
      nodes.map(async ({ nodeId, st }): Promise<ServiceReport> => {
        const s = spawned.find((x) => x.nodeId === nodeId);
        const pid = s?.pid ?? (st.state === 'running' ? st.pid : 0);
        await waitKafkaNode(config, cluster, nodeId, pid, deadline);
        return { name: `kafka-${nodeId}`, state: s === undefined ? 'running' : 'started', address: kafkaNodeAddress(nodeId), pid, startMs: s === undefined ? null : performance.now() - t0, answering: true };
      }),
    );
}

/**
 * Topics on the cluster, with replication 3. Retried until the deadline: a broker answers
 * metadata a moment before the controller unfences it, and until all three are unfenced a topic
 * with three replicas is refused (INVALID_REPLICATION_FACTOR).
 */
async function ensureClusterTopics(config: Config, topics: readonly TopicSpec[], deadline: number): Promise<void> {
  for (;;) {
    try {
      await ensureTopics(kafkaClusterConfig(config), topics, Math.max(5000, Math.min(30_000, deadline - Date.now())));
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(500);
    }
  }
}

async function ensureRedisCluster(config: Config, cluster: ClusterPaths, started: Started[], deadline: number, say: (l: string) => void): Promise<ServiceReport[]> {
  const reports: ServiceReport[] = [];
  const missing: number[] = [];
  for (const port of REDIS_CLUSTER_PORTS) {
    const st = redisNodeState(cluster, port);
    if (st.state === 'running') {
      reports.push({ name: `redis-${port}`, state: 'running', address: redisNodeAddress(port), pid: st.pid, startMs: null, answering: true });
      continue;
    }
    if (st.state === 'stale') {
      say(`redis-${port}: removing stale pid file ${cluster.redis(port).pid} (pid ${st.pid} is not our redis-server)`);
      removeFile(cluster.redis(port).pid);
    }
    missing.push(port);
  }
  if (missing.length > 0) say(`redis cluster: starting node${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
  const t0 = performance.now();
  // redis-server starts in milliseconds; one after the other keeps the rollback simple.
  for (const port of missing) {
    const pid = await startRedisNode(config, cluster, port, deadline);
    started.push({ name: `redis-${port}`, pid, stop: () => stopRedisNode(cluster, port, pid) });
    reports.push({ name: `redis-${port}`, state: 'started', address: redisNodeAddress(port), pid, startMs: null, answering: true });
  }
  await ensureRedisClusterFormed(config, cluster, deadline, say);
  const readyMs = performance.now() - t0;
  for (const r of reports) if (r.state === 'started') r.startMs = readyMs;
  return reports.sort((a, b) => a.name.localeCompare(b.name));
}

function stopOne(st: PidState, pidFile: string, stop: (pid: number) => Promise<void>): Promise<void> {
  if (st.state === 'running') return stop(st.pid);
  if (st.state === 'stale') removeFile(pidFile);
  return Promise.resolve();
}

function stoppedRow(name: ServiceName, address: string, st: PidState): ServiceReport {
  return { name, state: st.state === 'stale' ? 'stale pid file removed' : 'stopped', address, pid: st.state === 'none' ? null : st.pid, startMs: null, answering: false };
}

async function stopSingle(config: Config, paths: StackPaths): Promise<ServiceReport[]> {
  const k = kafkaState(paths);
  await stopOne(k, paths.kafkaPid, (pid) => stopKafka(paths, pid));
  const r = redisState(config, paths);
  await stopOne(r, paths.redisPid, (pid) => stopRedis(paths, pid));
  return [stoppedRow('kafka', kafkaAddress(config), k), stoppedRow('redis', redisAddress(config), r)];
}

/**
 * All nodes told to stop at once: one by one, the last node would wait for a controller quorum
 * that the first two took away. Rows only for nodes that had a pid file.
 */
async function stopKafkaCluster(cluster: ClusterPaths): Promise<ServiceReport[]> {
  const nodes = KAFKA_NODES.map((n) => ({ nodeId: n.nodeId, st: kafkaNodeState(cluster, n.nodeId) }));
  await Promise.all(nodes.map(({ nodeId, st }) => stopOne(st, cluster.kafka(nodeId).pid, (pid) => stopKafkaNode(cluster, nodeId, pid))));
  return nodes.filter((n) => n.st.state !== 'none').map((n) => stoppedRow(`kafka-${n.nodeId}`, kafkaNodeAddress(n.nodeId), n.st));
}

async function stopRedisCluster(cluster: ClusterPaths): Promise<ServiceReport[]> {
  const nodes = REDIS_CLUSTER_PORTS.map((port) => ({ port, st: redisNodeState(cluster, port) }));
  await Promise.all(nodes.map(({ port, st }) => stopOne(st, cluster.redis(port).pid, (pid) => stopRedisNode(cluster, port, pid))));
  return nodes.filter((n) => n.st.state !== 'none').map((n) => stoppedRow(`redis-${n.port}`, redisNodeAddress(n.port), n.st));
}

/** A row when there was a pid file, or when `--postgres` asked about it. */
async function stopPostgresRow(config: Config, paths: StackPaths, asked: boolean): Promise<ServiceReport[]> {
  const st = await postgresDown(paths);
  return st.state === 'none' && !asked ? [] : [stoppedRow('postgres', postgresAddress(config), st)];
}

/**
 * Without a cluster flag: everything that runs, Kafka first (the engine's consumers are its
 * clients), then Redis, then the clusters. With `kafkaNodes: 3` / `redisCluster`: only those
 * clusters (a test stops the cluster it started and leaves the single-node stack to the others).
 */
export async function stackDown(config: Config, options: StackShape = {}): Promise<ServiceReport[]> {
  const paths = stackPaths(config);
  const cluster = clusterPaths(paths);
  const want = shape(options);
  const all = !want.kafkaCluster && !want.redisCluster;
  mkdirSync(paths.runDir, { recursive: true });
  return withLock(paths.lock, LOCK_WAIT_MS, async () => [
    ...(all ? await stopSingle(config, paths) : []),
    ...(all || want.kafkaCluster ? await stopKafkaCluster(cluster) : []),
    ...(all || want.redisCluster ? await stopRedisCluster(cluster) : []),
    ...(all || options.postgres ? await stopPostgresRow(config, paths, options.postgres === true) : []),
  ]);
}

/**
 * Every service of the asked shape, and the other shape's cluster nodes that have a pid file
 * (informational). The single-node rows are always listed, as before the clusters.
 */
export async function stackStatus(config: Config, options: StackShape = {}): Promise<ServiceReport[]> {
  const paths = stackPaths(config);
  const cluster = clusterPaths(paths);
  const want = shape(options);
  const answers = async (f: () => Promise<unknown>) => f().then(() => true, () => false);
  const r = redisState(config, paths);
  const k = kafkaState(paths);
  const rows: ServiceReport[] = [
    {
      name: 'redis',
      state: r.state === 'running' ? 'running' : 'stopped',
      address: redisAddress(config),
      pid: r.state === 'running' ? r.pid : null,
      startMs: null,
      answering: r.state === 'running' && (await answers(() => pingRedis(config, 2000))),
      ...(want.redisCluster ? { informational: true } : {}),
    },
    {
      name: 'kafka',
      state: k.state === 'running' ? 'running' : 'stopped',
      address: kafkaAddress(config),
      pid: k.state === 'running' ? k.pid : null,
      startMs: null,
      answering: k.state === 'running' && (await answers(() => waitForKafka(config, 3000))),
      ...(want.kafkaCluster ? { informational: true } : {}),
    },
  ];
  const pg = postgresState(paths);
  if (pg.state === 'running' || options.postgres) {
    const running = pg.state === 'running';
    rows.push({
      name: 'postgres',
      state: running ? 'running' : 'stopped',
      address: postgresAddress(config),
      pid: running ? pg.pid : null,
      startMs: null,
      // Over our socket, whose name carries the port: postgresTarget throws (so: not answering) for a URL the stack cannot serve.
      answering: running && (await answers(async () => pingPostgres(paths, postgresTarget(config).port, 2000))),
      ...(options.postgres ? {} : { informational: true }),
    });
  }
  for (const port of REDIS_CLUSTER_PORTS) {
    const st = redisNodeState(cluster, port);
    if (st.state === 'none' && !want.redisCluster) continue;
    const running = st.state === 'running';
    rows.push({
      name: `redis-${port}`,
      state: running ? 'running' : 'stopped',
      address: redisNodeAddress(port),
      pid: running ? st.pid : null,
      startMs: null,
      // Answering: PING, and this node sees the whole cluster (a lone node answers PING too).
      answering: running && (await answers(() => pingRedisNode(config, port, 2000))) && (await clusterNotReady(config, port).then((w) => w === null, () => false)),
      ...(want.redisCluster ? {} : { informational: true }),
    });
  }
  for (const n of KAFKA_NODES) {
    const st = kafkaNodeState(cluster, n.nodeId);
    if (st.state === 'none' && !want.kafkaCluster) continue;
    const running = st.state === 'running';
    rows.push({
      name: `kafka-${n.nodeId}`,
      state: running ? 'running' : 'stopped',
      address: kafkaNodeAddress(n.nodeId),
      pid: running ? st.pid : null,
      startMs: null,
      answering: running && (await answers(() => waitForKafka(kafkaNodeConfig(config, n.nodeId), 3000))),
      ...(want.kafkaCluster ? {} : { informational: true }),
    });
  }
  return rows;
}

/** Log files by what `stack logs` takes: a single-node service, or a cluster's nodes. */
export type LogGroup = 'kafka' | 'redis' | 'postgres' | 'kafka-cluster' | 'redis-cluster';
export const LOG_GROUPS: readonly LogGroup[] = ['kafka', 'redis', 'postgres', 'kafka-cluster', 'redis-cluster'];

export function logFiles(config: Config): Record<LogGroup, string[]> {
  const p = stackPaths(config);
  const c = clusterPaths(p);
  return { kafka: [p.kafkaLog, p.kafkaOut], redis: [p.redisLog], postgres: [p.postgresLog], 'kafka-cluster': c.kafkaLogs(), 'redis-cluster': c.redisLogs() };
}
