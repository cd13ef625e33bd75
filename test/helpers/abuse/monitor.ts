/**
 * What the abuse suite measures on the engine while an attack runs, from the test process:
 * - RssSampler: the engine's VmRSS every 100 ms (VmHWM is the peak since the process started, so
 *   it cannot tell one attack's peak from an earlier one's);
 * - ReadyzProber: GET /readyz every 200 ms, each on a fresh connection (a load balancer's probe
 *   does not get to reuse a socket the server already accepted), 1 s timeout.
 * - runAttack: one attack as a child process (attack.ts), killed if it outlives its duration by
 *   more than a margin.
 */
import { spawn } from 'node:child_process';
import { setPriority } from 'node:os';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { AttackKind, AttackSummary } from './attack.js';

export class RssSampler {
  peakBytes = 0;
  samples = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pid: number) {
    this.sample();
    this.timer = setInterval(() => this.sample(), 100);
  }

  private sample(): void {
    try {
      const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
      if (m !== null) {
        this.peakBytes = Math.max(this.peakBytes, Number(m[1]) * 1024);
        this.samples++;
      }
    } catch {
      // The process is gone: the test sees its exit; nothing more to sample.
    }
  }

  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.peakBytes;
  }
}

export interface ProbeCounts {
  ok: number;
  other: number;
  failed: number;
  total: number;
  /** Failure reasons and non-200 statuses, counted. */
  why: Record<string, number>;
}

export class ReadyzProber {
  readonly counts: ProbeCounts = { ok: 0, other: 0, failed: 0, total: 0, why: {} };
  private readonly timer: NodeJS.Timeout;
  private readonly inflight = new Set<Promise<void>>();

  constructor(private readonly port: number) {
    this.timer = setInterval(() => {
      const p = this.probe().finally(() => this.inflight.delete(p));
      this.inflight.add(p);
    }, 200);
  }

  private probe(): Promise<void> {
    const c = this.counts;
    c.total++;
    return new Promise((resolve) => {
      let done = false;
      const finish = (outcome: 'ok' | 'other' | 'failed', why?: string) => {
        if (done) return;
        done = true;
        c[outcome]++;
        if (why !== undefined) c.why[why] = (c.why[why] ?? 0) + 1;
        resolve();
      };
      // agent: false: a new connection per probe.
      const req = request({ host: '127.0.0.1', port: this.port, path: '/readyz', agent: false, timeout: 1000 }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? finish('ok') : finish('other', String(res.statusCode))));
        res.on('error', () => finish('failed', 'response error'));
      });
      const timer = setTimeout(() => {
        finish('failed', 'timeout');
        req.destroy();
      }, 1000);
      req.on('timeout', () => {
        finish('failed', 'timeout');
        req.destroy();
      });
      req.on('error', (e: NodeJS.ErrnoException) => finish('failed', e.code ?? e.message));
      req.on('close', () => clearTimeout(timer));
      req.end();
    });
  }

  async stop(): Promise<ProbeCounts> {
    clearInterval(this.timer);
    await Promise.all(this.inflight);
    return this.counts;
  }
}

const ATTACK_JS = fileURLToPath(new URL('./attack.js', import.meta.url));

export interface AttackRun {
  summary: AttackSummary | null;
  exit: number | string;
  stderr: string;
}

/** Runs one attack in its own process; SIGKILL at duration + marginMs if it has not exited. */
export function runAttack(kind: AttackKind, grpcAddress: string, httpAddress: string, durationMs: number, extra: string[] = [], marginMs = 15_000): Promise<AttackRun> {
  const child = spawn(process.execPath, [ATTACK_JS, kind, '--target', grpcAddress, '--http', httpAddress, '--duration-ms', String(durationMs), ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  // The attacker at the lowest CPU priority: a real one runs on its own machines, not on the
  // engine's cores. Here it shares two cores with the engine, Kafka, Redis and the canary, and at
  // normal priority its own CPU (not anything the engine does) took the canary's p99 up by
  // hundreds of ms in a connection storm (the engine's event loop stalled with nothing of its own
  // running: a CPU profile showed no long task). Its traffic and the kernel's work for it still
  // land on the same cores.
  if (child.pid !== undefined) {
    try {
      setPriority(child.pid, 19);
    } catch {
      // Not allowed to lower it (it can only fail for lack of permission): the attack runs as is.
    }
  }
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err = (err + s).slice(-4000)));
  const kill = setTimeout(() => child.kill('SIGKILL'), durationMs + marginMs);
  return new Promise((resolve) => {
    child.once('exit', (code, sig) => {
      clearTimeout(kill);
      const line = out.trim().split('\n').pop() ?? '';
      let summary: AttackSummary | null = null;
      try {
        summary = JSON.parse(line) as AttackSummary;
      } catch {
        summary = null;
      }
      resolve({ summary, exit: code ?? sig ?? 'unknown', stderr: err });
    });
  });
}
