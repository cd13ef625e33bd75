/**
 * The demo's engine: a real `stratus run` (gateway, processor, forwarder) in a child process, so it
 * never shares an event loop with the simulated fleet. It gets the demo's whole configuration
 * through STRATUS_* variables, plus Kafka topics and Redis keys of its own (a prefix per run: a
 * second demo, or anything else on the same stack, never reads its events), and its topics are
 * deleted when it stops.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { configValue, envName, loadConfig, OPTIONS, PROJECT_ROOT, type Config, type OptionKey } from '../config.js';
import { deleteTopics } from '../kafka/admin.js';
import { topology } from '../topology.js';
import { findLogLine } from '../log.js';

/** How long the engine may take to report it is up. */
const READY_TIMEOUT_MS = 90_000;
/** SIGTERM first (it flushes and leaves its groups); SIGKILL if it is still there after this. */
const STOP_GRACE_MS = 15_000;
/** Stderr kept for the one line saying why the engine did not start. */
const STDERR_KEEP_CHARS = 4_000;

export interface DemoEngine {
  /** host:port of the gateway (gRPC). */
  grpcTarget: string;
  /** host:port of the HTTP surface (/metrics, /livez, /readyz, SSE). */
  httpAddress: string;
  topics: { events: string; results: string };
  /** From spawn to the engine's `started` log line. */
  startMs: number;
  /** Stops the engine and deletes its topics. Idempotent. */
  stop(): Promise<void>;
}

/** Every option of `config` as the STRATUS_* variable `stratus run` reads it from. */
export function configEnv(config: Config): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of Object.keys(OPTIONS) as OptionKey[]) {
    const v = configValue(config, key);
    env[envName(key)] = Array.isArray(v) ? v.join(',') : String(v);
  }
  return env;
}

export async function startDemoEngine(config: Config, runId: string): Promise<DemoEngine> {
  const topicPrefix = `${config.kafka.topicPrefix}demo-${runId}.`;
  const env: Record<string, string> = {
    ...configEnv(config),
    STRATUS_KAFKA_TOPIC_PREFIX: topicPrefix,
    STRATUS_REDIS_KEY_PREFIX: `${config.redis.keyPrefix}demo-${runId}:`,
    // The demo's devices are gone when it ends: their dedupe marks and buffers need not stay a week.
    STRATUS_REDIS_DEVICE_STATE_TTL_MS: '600000',
    // Plain gRPC on the loopback: the demo's load generator connects without certificates or tokens.
    STRATUS_GRPC_HOST: '127.0.0.1',
    STRATUS_TLS_CERT: '',
    STRATUS_TLS_KEY: '',
    STRATUS_TLS_CA: '',
    STRATUS_AUTH_TOKEN_SECRET: '',
    STRATUS_INSTANCE_ID: `demo-${runId}`,
    // Its `started` line (info) is how the demo learns it is up and where it listens.
    STRATUS_LOG_LEVEL: 'info',
  };
  // The caller's .env is already in `config`; the child reads no other.
  const childEnv = { ...withoutStratus(process.env), ...env, STRATUS_ENV_FILE: '/dev/null' };
  const runConfig = loadConfig({ env, envFile: null });
  const t = topology(runConfig);
  const topics = { events: t.topics.events, results: t.topics.results };
  const deleteOwnTopics = () => deleteTopics(runConfig, [topics.events, topics.results]).catch(() => {
    // Best effort: the topics carry this run's prefix, so nothing else reads them if they stay.
  });

  const t0 = performance.now();
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'stratus.js'), 'run'], {
    // Only the variables above name settings: a STRATUS_* of the caller's is already in them.
    env: childEnv,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  const ready = await new Promise<{ grpc: string; http: string } | { error: string }>((resolve) => {
    const timer = setTimeout(() => resolve({ error: `it did not say it was up within ${READY_TIMEOUT_MS / 1000} s` }), READY_TIMEOUT_MS);
    const onData = (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_KEEP_CHARS);
      // The engine's log is JSON lines (src/log.ts); its `started` line names the bound addresses.
      const started = findLogLine(stderr, 'started', 'run');
      if (started === null) return;
      clearTimeout(timer);
      const { grpc, http } = started as { grpc?: unknown; http?: unknown };
      resolve(typeof grpc === 'string' && typeof http === 'string' ? { grpc, http } : { error: lastLines(stderr) });
    };
    child.stderr!.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ error: `it exited with ${code ?? signal}: ${lastLines(stderr)}` });
    });
  });
  const startMs = performance.now() - t0;
  // Keep draining stderr (a full pipe would block the engine's logger); only the tail is kept.
  child.stderr!.on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-STDERR_KEEP_CHARS)));
  let stopped: Promise<void> | null = null;
  const stop = () => (stopped ??= stopChild(child).then(deleteOwnTopics));
  if ('error' in ready) {
    await stop();
    throw new Error(ready.error);
  }
  return { grpcTarget: ready.grpc, httpAddress: ready.http, topics, startMs, stop };
}

function withoutStratus(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('STRATUS_')));
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-3).join(' | ') || 'no output';
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const kill = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
