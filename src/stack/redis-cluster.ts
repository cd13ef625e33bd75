/**
 * The local Redis Cluster (`stack up --redis-cluster`): six Debian redis-server processes in
 * cluster mode, made into three masters with one replica each by `redis-cli --cluster create
 * --cluster-replicas 1`, ready once every node says cluster_state:ok with all 16384 slots covered.
 * Ports and directories: cluster-layout.ts.
 *
 * Each node keeps its membership in <dir>/nodes.conf, so a node killed and started again (the
 * fault tests do) rejoins by itself, as a replica if its master's slots failed over meanwhile.
 * Same durability and password handling as the single Redis: AOF fsynced every second,
 * noeviction, and config.redis.password as requirepass and as masterauth (replicas authenticate
 * to their masters with it). The password reaches redis-cli through REDISCLI_AUTH, never argv.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config.js';
import { ErrorCode, StratusError } from '../errors.js';
import { CLUSTER_HOST, REDIS_CLUSTER_MASTERS, REDIS_CLUSTER_PORTS, REDIS_NODE_TIMEOUT_MS, type ClusterPaths } from './cluster-layout.js';
import { isAlive, pidState, portAnswers, removeFile, runToEnd, stopProcess, tail, writePid, type PidState } from './processes.js';

const SLOTS = 16384;

export function redisNodeAddress(port: number): string {
  return `${CLUSTER_HOST}:${port}`;
}

/**
 * PING through redis-cli, not the project's client: that one follows redis.mode, and a cluster
 * client cannot connect to a node that is not yet in a cluster with slots.
 */
export async function pingRedisNode(config: Config, port: number, timeoutMs: number): Promise<void> {
  const pong = (await redisCli(config, port, ['ping'], timeoutMs)).trim();
  if (pong !== 'PONG') throw new StratusError(ErrorCode.STACK_START_FAILED, `${redisNodeAddress(port)} answered PING with ${JSON.stringify(pong)}`, { retryable: true });
}

/** redis-server's process title is "redis-server 127.0.0.1:17001 [cluster]". */
export function redisNodeState(cluster: ClusterPaths, port: number): PidState {
  return pidState(cluster.redis(port).pid, `redis-server ${redisNodeAddress(port)}`);
}

function redisCliEnv(config: Config): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (config.redis.password !== '') env.REDISCLI_AUTH = config.redis.password;
  else delete env.REDISCLI_AUTH;
  return env;
}

/** One command to one node through redis-cli; its reply as text. */
export async function redisCli(config: Config, port: number, args: readonly string[], timeoutMs = 5000): Promise<string> {
  const r = await runToEnd('redis-cli', ['-h', CLUSTER_HOST, '-p', String(port), ...args], { env: redisCliEnv(config), timeoutMs });
  // redis-cli exits 0 on an error reply when its output is not a terminal: the reply's first word says.
  if (r.code !== 0 || /^(ERR|NOAUTH|WRONGPASS|LOADING|MASTERDOWN)\b/.test(r.stdout)) {
    throw new StratusError(ErrorCode.STACK_START_FAILED, `redis-cli ${args.join(' ')} on ${redisNodeAddress(port)} failed: ${(r.stderr || r.stdout).trim()}`, { retryable: true });
  }
  return r.stdout;
}

/** Starts one node (its dir and nodes.conf kept: a restarted node rejoins) and waits for PING. */
export async function startRedisNode(config: Config, cluster: ClusterPaths, port: number, deadline: number): Promise<number> {
  if (spawnSync('redis-server', ['--version']).error !== undefined) {
    throw new StratusError(ErrorCode.STACK_PROGRAM_MISSING, 'redis-server is not installed; run `npm run setup` (it installs Debian\'s redis-server) or `apt-get install redis-server`');
  }
  for (const p of [port, port + 10_000]) {
    if (await portAnswers(CLUSTER_HOST, p)) {
      throw new StratusError(
        ErrorCode.STACK_PORT_TAKEN,
        `${CLUSTER_HOST}:${p} (Redis cluster node ${port}${p === port ? '' : ', its cluster bus'}) is in use by a process this stack did not start; the cluster's ports are fixed (src/stack/cluster-layout.ts): stop that process`,
      );
    }
  }
  const p = cluster.redis(port);
  mkdirSync(p.dir, { recursive: true });
  mkdirSync(cluster.logDir, { recursive: true });
  const args = [
    '--port', String(port),
    '--bind', CLUSTER_HOST,
    '--dir', p.dir,
    '--logfile', p.log,
    '--daemonize', 'no',
    '--cluster-enabled', 'yes',
    // Relative to --dir: each node its own.
    '--cluster-config-file', 'nodes.conf',
    '--cluster-node-timeout', String(REDIS_NODE_TIMEOUT_MS),
    // As the single Redis: queues and result buffers survive a restart; a full Redis refuses writes.
    '--appendonly', 'yes',
    '--appendfsync', 'everysec',
    '--save', '',
    '--maxmemory-policy', 'noeviction',
    // A replica's first sync otherwise waits 5 s (repl-diskless-sync-delay) for more replicas to
    // share the transfer; each master here has one.
    '--repl-diskless-sync-delay', '0',
  ];
  if (config.redis.password !== '') args.push('--requirepass', config.redis.password, '--masterauth', config.redis.password);
  const err = openSync(p.log, 'a');
  const child = spawn('redis-server', args, { detached: true, stdio: ['ignore', 'ignore', err] });
  closeSync(err);
  child.unref();
  if (child.pid === undefined) throw new StratusError(ErrorCode.STACK_START_FAILED, `redis-server could not be started for cluster node ${port}`);
  writePid(p.pid, child.pid);
  for (;;) {
    if (!isAlive(child.pid)) {
      removeFile(p.pid);
      throw new StratusError(ErrorCode.STACK_START_FAILED, `redis-server (cluster node ${port}) exited while starting; its log (${p.log}) ends with:\n${tail(p.log, 5)}`);
    }
    try {
      await pingRedisNode(config, port, 1000);
      return child.pid;
    } catch (e) {
      if (Date.now() > deadline) {
        await stopRedisNode(cluster, port, child.pid);
        throw new StratusError(ErrorCode.STACK_START_FAILED, `redis-server (cluster node ${port}) did not answer PING in time; see ${p.log}`, { cause: e });
      }
      await sleep(50);
    }
  }
}

export async function stopRedisNode(cluster: ClusterPaths, port: number, pid: number): Promise<void> {
  await stopProcess(pid, 10_000);
  removeFile(cluster.redis(port).pid);
}

/** One line of CLUSTER NODES. */
export interface ClusterNode {
  id: string;
  host: string;
  port: number;
  role: 'master' | 'replica';
  /** The master's id for a replica; null for a master. */
  masterId: string | null;
  /** fail or fail? in the flags: the node is (suspected) down. */
  failing: boolean;
  connected: boolean;
  /** Slots served, counted (a master with none serves nothing). */
  slots: number;
}

/**
 * Parses CLUSTER NODES: `<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent> <pong-recv>
 * <config-epoch> <link-state> <slot> <slot> ...` (https://redis.io/docs/latest/commands/cluster-nodes/).
 */
export function parseClusterNodes(text: string): ClusterNode[] {
  const out: ClusterNode[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [id, addr, flags, master, , , , link, ...slotFields] = f as [string, string, string, string, string, string, string, string, ...string[]];
    const hostPort = addr.split('@')[0]!;
    const i = hostPort.lastIndexOf(':');
    const flagSet = new Set(flags.split(','));
    let slots = 0;
    for (const s of slotFields) {
      // "[slot->-node]" / "[slot-<-node]": a slot being migrated, listed besides the range it is in.
      if (s.startsWith('[')) continue;
      const [a, b] = s.split('-').map(Number) as [number, number | undefined];
      slots += b === undefined ? 1 : b - a + 1;
    }
    out.push({
      id,
      host: hostPort.slice(0, i),
      port: Number(hostPort.slice(i + 1)),
      role: flagSet.has('master') ? 'master' : 'replica',
      masterId: master === '-' ? null : master,
      failing: flagSet.has('fail') || flagSet.has('fail?'),
      connected: link === 'connected',
      slots,
    });
  }
  return out;
}

/** `cluster info` (or `info <section>`) as key -> value. */
export function parseClusterInfo(text: string): Record<string, string> {
  return Object.fromEntries(text.split('\n').map((l) => l.trim().split(':')).filter((kv) => kv.length === 2) as [string, string][]);
}

/**
 * Why the cluster is not yet whole, or null once it is: seen from node `port`, cluster_state ok,
 * all slots served, six nodes known, three masters serving slots, each with a connected replica,
 * and, if `port` is a replica, its replication link up.
 */
export async function clusterNotReady(config: Config, port: number): Promise<string | null> {
  const info = parseClusterInfo(await redisCli(config, port, ['cluster', 'info']));
  if (info.cluster_state !== 'ok') return `cluster_state is ${info.cluster_state}`;
  if (Number(info.cluster_slots_ok) !== SLOTS) return `${info.cluster_slots_ok} of ${SLOTS} slots ok`;
  if (Number(info.cluster_known_nodes) !== REDIS_CLUSTER_PORTS.length) return `${info.cluster_known_nodes} nodes known`;
  const nodes = parseClusterNodes(await redisCli(config, port, ['cluster', 'nodes']));
  const masters = nodes.filter((n) => n.role === 'master' && n.slots > 0 && !n.failing);
  if (masters.length !== REDIS_CLUSTER_MASTERS) return `${masters.length} masters serving slots`;
  for (const m of masters) {
    if (!nodes.some((n) => n.role === 'replica' && n.masterId === m.id && !n.failing && n.connected)) return `master ${m.host}:${m.port} has no replica`;
  }
  // A replica is in the cluster before its first sync; until then it holds nothing to fail over to.
  const replication = parseClusterInfo(await redisCli(config, port, ['info', 'replication']));
  if (replication.role === 'slave' && replication.master_link_status !== 'up') return `replica not yet in sync with its master (${replication.master_link_status})`;
  return null;
}

/**
 * Makes the six running nodes one cluster: `redis-cli --cluster create` when none of them has
 * joined any (a fresh start), nothing when they already form one (a restart: nodes.conf), then
 * waits until every node sees the whole cluster. A mix (some nodes in a cluster, others blank, as
 * after a node's directory was removed) is not repaired here.
 */
export async function ensureRedisClusterFormed(config: Config, cluster: ClusterPaths, deadline: number, say: (l: string) => void): Promise<void> {
  const known = await Promise.all(REDIS_CLUSTER_PORTS.map(async (p) => Number(parseClusterInfo(await clusterInfoLoaded(config, p, deadline)).cluster_known_nodes)));
  if (known.every((k) => k === 1)) {
    say(`redis-cluster: creating ${REDIS_CLUSTER_MASTERS} masters with one replica each`);
    const r = await runToEnd(
      'redis-cli',
      ['--cluster', 'create', ...REDIS_CLUSTER_PORTS.map(redisNodeAddress), '--cluster-replicas', '1', '--cluster-yes'],
      { env: redisCliEnv(config), timeoutMs: Math.max(10_000, deadline - Date.now()) },
    );
    // redis-cli exits 0 on most failures of --cluster create; its "[ERR]" lines are the verdict.
    if (r.code !== 0 || /\[ERR\]/.test(r.stdout + r.stderr)) {
      throw new StratusError(ErrorCode.STACK_START_FAILED, `redis-cli --cluster create failed: ${(r.stdout + r.stderr).split('\n').filter((l) => /ERR|rror/.test(l)).slice(0, 3).join(' | ') || tail(cluster.redis(REDIS_CLUSTER_PORTS[0]!).log, 3)}`);
    }
  } else if (known.some((k) => k === 1)) {
    const blank = REDIS_CLUSTER_PORTS.filter((_, i) => known[i] === 1);
    throw new StratusError(
      ErrorCode.STACK_DATA_CORRUPT,
      `Redis cluster nodes ${blank.join(', ')} are not in the cluster the others form (their nodes.conf in ${join(cluster.redisRoot, String(blank[0]))} is missing); run \`stratus stack up --fresh --redis-cluster\` to wipe the cluster's data`,
    );
  }
  await waitRedisClusterReady(config, deadline);
}

/**
 * CLUSTER INFO of a node, waiting (until deadline) while it answers LOADING: a node restarted on its
 * data answers PING before it has read its append-only file back.
 */
async function clusterInfoLoaded(config: Config, port: number, deadline: number): Promise<string> {
  for (;;) {
    try {
      return await redisCli(config, port, ['cluster', 'info']);
    } catch (err) {
      if (!/LOADING/.test((err as Error).message) || Date.now() > deadline) throw err;
      await sleep(100);
    }
  }
}

/** Waits until every running node answers that the cluster is whole (clusterNotReady is null). */
export async function waitRedisClusterReady(config: Config, deadline: number, ports: readonly number[] = REDIS_CLUSTER_PORTS): Promise<void> {
  let why: string | null = 'not asked yet';
  for (;;) {
    why = null;
    for (const p of ports) {
      try {
        const w = await clusterNotReady(config, p);
        if (w !== null) why = `${redisNodeAddress(p)}: ${w}`;
      } catch (err) {
        why = `${redisNodeAddress(p)}: ${(err as Error).message}`;
      }
      if (why !== null) break;
    }
    if (why === null) return;
    if (Date.now() > deadline) throw new StratusError(ErrorCode.STACK_START_FAILED, `the Redis cluster did not become ready in time (${why})`);
    await sleep(200);
  }
}
