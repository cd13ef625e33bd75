/**
 * A real Prometheus server (Debian's /usr/bin/prometheus; setup.sh --for test installs it) for
 * tests, configured from deploy/prometheus/prometheus.yml with only what a test must change: the
 * targets (the test engine's HTTP port), the scrape and evaluation interval, and rule_files made
 * absolute (the real alerts.yml). Its data lives in a temporary folder removed by stop().
 *
 * It runs under `timeout <boundS>`: if the test process dies without calling stop(), Prometheus
 * still ends by itself (timeout sends SIGTERM, then SIGKILL 5 s later). stop() sends SIGTERM to
 * the process group (timeout forwards it; the group is killed outright after 10 s).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { PROJECT_ROOT } from '../../src/config.js';

export const PROMETHEUS_BIN = '/usr/bin/prometheus';
export const SCRAPE_CONFIG = join(PROJECT_ROOT, 'deploy', 'prometheus', 'prometheus.yml');
export const ALERT_RULES = join(PROJECT_ROOT, 'deploy', 'prometheus', 'alerts.yml');

export interface PrometheusOptions {
  /** host:port every scrape job of prometheus.yml is pointed at (the engine's http.port). */
  target: string;
  /** scrape_interval and evaluation_interval, seconds (default 1). */
  intervalS?: number;
  /** Prometheus is stopped by `timeout` after this many seconds whatever the test does. */
  boundS: number;
}

/** One series of an instant query: its labels and its value as Prometheus printed it ("NaN" too). */
export interface Sample {
  metric: Record<string, string>;
  value: string;
}

export interface RuleState {
  name: string;
  type: 'alerting' | 'recording';
  health: string;
  lastError?: string;
  lastEvaluation: string;
  state?: string;
}

export interface TargetState {
  labels: Record<string, string>;
  scrapeUrl: string;
  health: string;
  lastError: string;
}

/** A port below 32768 (outside Linux's ephemeral range, so no outgoing socket holds it) that binds now. */
async function freeLowPort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const ok = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free port in 20000..31999 after 50 tries');
}

export class PrometheusServer {
  private log = '';
  exit: number | string | null = null;
  readonly exited: Promise<number | string>;

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    private readonly dir: string,
  ) {
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    const keep = (s: string) => {
      this.log = (this.log + s).slice(-32 * 1024);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve((this.exit = code ?? sig ?? 'unknown'))));
  }

  /** The config a test Prometheus runs: prometheus.yml with the targets, intervals and rule path replaced. */
  static testConfig(opts: Omit<PrometheusOptions, 'boundS'>): Record<string, unknown> {
    const interval = `${opts.intervalS ?? 1}s`;
    const config = parse(readFileSync(SCRAPE_CONFIG, 'utf8')) as {
      global: Record<string, unknown>;
      rule_files: string[];
      scrape_configs: { job_name: string; static_configs: { targets: string[] }[]; [k: string]: unknown }[];
    };
    config.global = { ...config.global, scrape_interval: interval, evaluation_interval: interval, scrape_timeout: interval };
    config.rule_files = config.rule_files.map((f) => join(PROJECT_ROOT, 'deploy', 'prometheus', f));
    for (const job of config.scrape_configs) job.static_configs = [{ targets: [opts.target] }];
    return config;
  }

  static async start(opts: PrometheusOptions): Promise<PrometheusServer> {
    const dir = mkdtempSync(join(tmpdir(), 'stratus-prom-'));
    const configFile = join(dir, 'prometheus.yml');
    writeFileSync(configFile, stringify(PrometheusServer.testConfig(opts)));
    let lastError = '';
    // A port free when probed may be taken before Prometheus binds it: try again on another.
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freeLowPort();
      const child = spawn(
        'timeout',
        [
          '--kill-after=5s',
          `${opts.boundS}s`,
          PROMETHEUS_BIN,
          `--config.file=${configFile}`,
          `--storage.tsdb.path=${join(dir, 'data')}`,
          `--web.listen-address=127.0.0.1:${port}`,
          '--web.enable-lifecycle',
          '--log.level=warn',
        ],
        // timeout makes itself a process group leader; detached keeps that group apart from the test's.
        { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
      );
      const prom = new PrometheusServer(child, port, dir);
      const ready = await prom.waitReady(30_000);
      if (ready) return prom;
      lastError = prom.log;
      await prom.stop({ keepDir: true });
      if (!/address already in use/.test(lastError)) break;
    }
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`prometheus did not become ready: ${lastError}`);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get output(): string {
    return this.log;
  }

  /** true once GET /-/ready answers 200; false if the process exits or `ms` pass first. */
  private async waitReady(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline && this.exit === null) {
      try {
        const res = await fetch(`${this.url}/-/ready`);
        await res.arrayBuffer();
        if (res.status === 200) return true;
      } catch {
        // Not listening yet: the loop tries again (bounded by the deadline).
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  }

  private async api<T>(path: string): Promise<T> {
    const res = await fetch(`${this.url}/api/v1/${path}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error ?? res.status}`);
    return body.data;
  }

  /** An instant query at the server's now. */
  async query(expr: string): Promise<Sample[]> {
    const data = await this.api<{ resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] }>(`query?query=${encodeURIComponent(expr)}`);
    if (data.resultType !== 'vector') throw new Error(`${expr}: a ${data.resultType}, not an instant vector`);
    return data.result.map((r) => ({ metric: r.metric, value: r.value[1] }));
  }

  async rules(): Promise<{ file: string; name: string; rules: RuleState[] }[]> {
    return (await this.api<{ groups: { file: string; name: string; rules: RuleState[] }[] }>('rules')).groups;
  }

  async targets(): Promise<TargetState[]> {
    return (await this.api<{ activeTargets: TargetState[] }>('targets?state=active')).activeTargets;
  }

  /** Polls `check` every 250 ms until it returns a value other than undefined; throws after `ms`. */
  async until<T>(what: string, ms: number, check: () => Promise<T | undefined>): Promise<T> {
    const deadline = Date.now() + ms;
    let last: unknown;
    for (;;) {
      try {
        const v = await check();
        if (v !== undefined) return v;
      } catch (e) {
        last = e;
      }
      if (Date.now() > deadline) throw new Error(`prometheus: ${what} not within ${ms} ms${last ? ` (last error: ${String(last)})` : ''}\n${this.log}`);
      if (this.exit !== null) throw new Error(`prometheus exited (${this.exit}) waiting for ${what}\n${this.log}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** SIGTERM to timeout and Prometheus (their group), SIGKILL after 10 s; removes the data folder. */
  async stop(opts: { keepDir?: boolean } = {}): Promise<void> {
    if (this.exit === null) {
      const group = -this.child.pid!;
      try {
        process.kill(group, 'SIGTERM');
      } catch {
        // Gone between the check and the kill: nothing to stop.
      }
      const kill = setTimeout(() => {
        try {
          process.kill(group, 'SIGKILL');
        } catch {
          // Exited meanwhile.
        }
      }, 10_000);
      await this.exited;
      clearTimeout(kill);
    }
    if (!opts.keepDir) rmSync(this.dir, { recursive: true, force: true });
  }
}
