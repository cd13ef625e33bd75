/**
 * A real `stratus run` in a child process for fault tests: its own free gRPC and HTTP ports, its
 * own topic and key prefixes (from testConfig()), so a crash shows as an exit and its memory can
 * be read from /proc/<pid>/status (VmHWM: the peak resident set, VmRSS: the current one).
 * stop() sends SIGTERM, waits for the exit and deletes the topics.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/config.js';
import { deleteTopics } from '../../src/kafka/admin.js';
import { findLogLine } from '../../src/log.js';
import { topology } from '../../src/topology.js';
import { testConfig } from './config.js';
import { unusedPort } from './ports.js';

export class EngineProcess {
  private err = '';
  /** Exit code (or signal name) once the process is gone; null while it runs. */
  exit: number | string | null = null;
  readonly exited: Promise<number | string>;

  private constructor(
    readonly child: ChildProcess,
    readonly grpcPort: number,
    readonly httpPort: number,
    private readonly topics: { config: ReturnType<typeof testConfig>; names: string[] },
  ) {
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => {
      // Keep the head (start-up) and the tail (the reason of a crash), not everything.
      this.err = this.err.length > 64 * 1024 ? this.err.slice(0, 16 * 1024) + '\n...\n' + this.err.slice(-32 * 1024) + s : this.err + s;
    });
    this.exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve((this.exit = code ?? sig ?? 'unknown'))));
  }

  /**
   * Starts `stratus run` (all roles) and resolves once it serves gRPC and HTTP. `env` adds
   * STRATUS_* options (e.g. STRATUS_GATEWAY_OUTBOUND_MAX).
   */
  static async start(env: Record<string, string> = {}): Promise<EngineProcess> {
    const config = testConfig();
    const t = topology(config);
    const grpcPort = await unusedPort();
    const httpPort = await unusedPort();
    const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'stratus.js'), 'run', '--grpc-port', String(grpcPort), '--instance-id', `faults-${grpcPort}`], {
      env: {
        ...process.env,
        STRATUS_KAFKA_TOPIC_PREFIX: config.kafka.topicPrefix,
        STRATUS_REDIS_KEY_PREFIX: config.redis.keyPrefix,
        STRATUS_KAFKA_PARTITIONS: '3',
        STRATUS_GATEWAY_DRAIN_GRACE_MS: '500',
        STRATUS_HTTP_PORT: String(httpPort),
        // info: the `started` line this waits for is an info line (src/log.ts); the rest are per change of state.
        STRATUS_LOG_LEVEL: 'info',
        ...env,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const engine = new EngineProcess(child, grpcPort, httpPort, { config, names: [t.topics.events, t.topics.results] });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        // Not left running behind a failed start: the test runner would wait for it.
        child.kill('SIGKILL');
        reject(new Error(`stratus run did not start in 60 s: ${engine.err}`));
      }, 60_000);
      const check = () => {
        if (findLogLine(engine.err, 'started', 'run') !== null) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stderr!.on('data', check);
      void engine.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`stratus run exited (${code}) while starting: ${engine.err}`));
      });
    });
    return engine;
  }

  get address(): string {
    return `127.0.0.1:${this.grpcPort}`;
  }

  get stderr(): string {
    return this.err;
  }

  /** VmHWM and VmRSS of the process in bytes (Linux /proc). */
  memory(): { peakBytes: number; rssBytes: number } {
    const text = readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB$`, 'm').exec(text)![1]) * 1024;
    return { peakBytes: kb('VmHWM'), rssBytes: kb('VmRSS') };
  }

  /** SIGTERM, then the exit code (0 for a graceful stop); SIGKILL after 20 s. Deletes the topics. */
  async stop(): Promise<number | string> {
    if (this.exit === null) {
      this.child.kill('SIGTERM');
      const kill = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
      await this.exited;
      clearTimeout(kill);
    }
    await deleteTopics(this.topics.config, this.topics.names).catch(() => {});
    return this.exit!;
  }
}
