/**
 * A real `stratus run` in a child process for tests that need what only a process has: its RSS
 * (VmRSS, VmHWM from /proc), its /metrics, or a crash that must show. Ports are picked free; the
 * config comes from a test Config (its topic and key prefixes) plus STRATUS_* overrides.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT, type Config } from '../../src/config.js';
import { unusedPort } from './ports.js';

export interface EngineChild {
  readonly child: ChildProcess;
  readonly grpcAddress: string;
  readonly httpPort: number;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Bytes: resident now, and the peak (VmHWM) since start. */
  rss(): { nowBytes: number; peakBytes: number };
  /** The process is still running. */
  alive(): boolean;
  /** Prometheus text from its /metrics. */
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

export async function startEngineChild(config: Config, env: Record<string, string> = {}, roles = 'gateway,processor,forwarder'): Promise<EngineChild> {
  const grpcPort = await unusedPort();
  const httpPort = await unusedPort();
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'stratus.js'), 'run', '--roles', roles, '--grpc-port', String(grpcPort), '--instance-id', `child-${grpcPort}`], {
    env: {
      ...process.env,
      STRATUS_KAFKA_TOPIC_PREFIX: config.kafka.topicPrefix,
      STRATUS_REDIS_KEY_PREFIX: config.redis.keyPrefix,
      STRATUS_KAFKA_PARTITIONS: String(config.kafka.partitions),
      STRATUS_HTTP_PORT: String(httpPort),
      STRATUS_GATEWAY_DRAIN_GRACE_MS: '500',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const deadline = Date.now() + 90_000;
  while (!out.includes('stratus run:')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`stratus run did not start: ${out.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const status = (field: string) => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
    return m === null ? 0 : Number(m[1]) * 1024;
  };
  return {
    child,
    grpcAddress: `127.0.0.1:${grpcPort}`,
    httpPort,
    output: () => out,
    rss: () => ({ nowBytes: status('VmRSS'), peakBytes: status('VmHWM') }),
    alive: () => child.exitCode === null && child.signalCode === null,
    metrics: async () => (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text(),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

/** The value of one Prometheus sample (`name{labels}`), 0 when absent. */
export function metricValue(text: string, sample: string): number {
  for (const line of text.split('\n')) {
    if (line.startsWith(sample + ' ')) return Number(line.slice(sample.length + 1));
  }
  return 0;
}
