/**
 * `stratus stack up | down | status`: the local Kafka and Redis for machines without Docker.
 *
 * up      idempotent: finds what runs (pid file + live process + marker), starts what does not,
 *         waits until Redis answers PING and Kafka answers a metadata request, then creates the
 *         topics explicitly. Whatever this call started is stopped again if a later step fails,
 *         so a failed `up` leaves nothing half-started.
 * down    stops exactly the processes the pid files name (and only if they are still ours).
 * status  what runs, where, and whether it answers.
 */
import { mkdirSync, rmSync } from 'node:fs';
import type { Config } from '../config.js';
import { ensureTopics, waitForKafka } from '../kafka/admin.js';
import { pingRedis } from '../redis/client.js';
import { topology } from '../topology.js';
import { kafkaAddress, kafkaState, startKafka, stopKafka } from './kafka-server.js';
import { stackPaths, type StackPaths } from './paths.js';
import { removeFile, withLock } from './processes.js';
import { redisAddress, redisState, startRedis, stopRedis } from './redis-server.js';

export type ServiceName = 'redis' | 'kafka';

export interface ServiceReport {
  name: ServiceName;
  state: 'running' | 'started' | 'stopped' | 'stale pid file removed';
  address: string;
  pid: number | null;
  /** Time from spawn to answering, for a service this call started. */
  startMs: number | null;
  answering: boolean;
}

export interface UpReport {
  services: ServiceReport[];
  topics: { topic: string; partitions: number }[];
}

export interface UpOptions {
  fresh?: boolean;
  /** Called with one line per step, for the CLI's progress output. */
  progress?: (line: string) => void;
}

const LOCK_WAIT_MS = 180_000;

export async function stackUp(config: Config, options: UpOptions = {}): Promise<UpReport> {
  const paths = stackPaths(config);
  const say = options.progress ?? (() => {});
  mkdirSync(paths.runDir, { recursive: true });
  return withLock(paths.lock, LOCK_WAIT_MS, async () => {
    if (options.fresh) {
      await stopAll(config, paths);
      say(`wiping ${paths.dataDir}`);
      // Keep run/ (it holds our lock); everything else goes.
      for (const dir of [paths.kafkaDir, paths.redisData, paths.logDir]) rmSync(dir, { recursive: true, force: true });
    }
    const started: { name: ServiceName; pid: number }[] = [];
    const services: ServiceReport[] = [];
    try {
      services.push(await ensureRedis(config, paths, started, say));
      services.push(await ensureKafka(config, paths, started, say));
      const t = topology(config);
      const topics = [
        { topic: t.topics.events, partitions: config.kafka.partitions },
        { topic: t.topics.results, partitions: config.kafka.partitions },
      ];
      await ensureTopics(config, topics);
      return { services, topics };
    } catch (err) {
      // Nothing half-started: undo what this call started, newest first.
      for (const s of started.reverse()) {
        say(`stopping ${s.name} (pid ${s.pid}) after the failure`);
        if (s.name === 'kafka') await stopKafka(paths, s.pid);
        else await stopRedis(paths, s.pid);
      }
      throw err;
    }
  });
}

async function ensureRedis(config: Config, paths: StackPaths, started: { name: ServiceName; pid: number }[], say: (l: string) => void): Promise<ServiceReport> {
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
  started.push({ name: 'redis', pid });
  return { name: 'redis', state: 'started', address, pid, startMs: performance.now() - t0, answering: true };
}

async function ensureKafka(config: Config, paths: StackPaths, started: { name: ServiceName; pid: number }[], say: (l: string) => void): Promise<ServiceReport> {
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
  started.push({ name: 'kafka', pid });
  return { name: 'kafka', state: 'started', address, pid, startMs: performance.now() - t0, answering: true };
}

async function stopAll(config: Config, paths: StackPaths): Promise<ServiceReport[]> {
  const out: ServiceReport[] = [];
  const k = kafkaState(paths);
  if (k.state === 'running') await stopKafka(paths, k.pid);
  else if (k.state === 'stale') removeFile(paths.kafkaPid);
  out.push({ name: 'kafka', state: k.state === 'stale' ? 'stale pid file removed' : 'stopped', address: kafkaAddress(config), pid: k.state === 'none' ? null : k.pid, startMs: null, answering: false });
  const r = redisState(config, paths);
  if (r.state === 'running') await stopRedis(paths, r.pid);
  else if (r.state === 'stale') removeFile(paths.redisPid);
  out.push({ name: 'redis', state: r.state === 'stale' ? 'stale pid file removed' : 'stopped', address: redisAddress(config), pid: r.state === 'none' ? null : r.pid, startMs: null, answering: false });
  return out;
}

/** Stops Kafka first (it is the client of nothing here, but the engine's consumers are), then Redis. */
export async function stackDown(config: Config): Promise<ServiceReport[]> {
  const paths = stackPaths(config);
  mkdirSync(paths.runDir, { recursive: true });
  return withLock(paths.lock, LOCK_WAIT_MS, () => stopAll(config, paths));
}

export async function stackStatus(config: Config): Promise<ServiceReport[]> {
  const paths = stackPaths(config);
  const r = redisState(config, paths);
  const k = kafkaState(paths);
  const answers = async (f: () => Promise<void>) => f().then(() => true, () => false);
  return [
    {
      name: 'redis',
      state: r.state === 'running' ? 'running' : 'stopped',
      address: redisAddress(config),
      pid: r.state === 'running' ? r.pid : null,
      startMs: null,
      answering: r.state === 'running' && (await answers(() => pingRedis(config, 2000))),
    },
    {
      name: 'kafka',
      state: k.state === 'running' ? 'running' : 'stopped',
      address: kafkaAddress(config),
      pid: k.state === 'running' ? k.pid : null,
      startMs: null,
      answering: k.state === 'running' && (await answers(() => waitForKafka(config, 3000))),
    },
  ];
}

export function logFiles(config: Config): Record<ServiceName, string[]> {
  const p = stackPaths(config);
  return { kafka: [p.kafkaLog, p.kafkaOut], redis: [p.redisLog] };
}
