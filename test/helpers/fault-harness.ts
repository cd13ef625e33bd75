/**
 * The fault suite's harness (issue 7): a private Kafka and Redis (own data dir, own ports, never
 * the developer's stack), each behind a FaultProxy; the engine's roles as separate `stratus run`
 * / `stratus worker` processes, so one can be killed with SIGKILL and started again; the load
 * generator as a child process; and the fault table.
 *
 *   loadgen ──> balancer (FaultProxy) ──> gateway a | gateway b ──┐
 *                                                                 ├─> kafkaProxy ──> Kafka
 *   processor, forwarder, exporter, workers ──────────────────────┴─> redisProxy ──> Redis
 *
 * Kafka listens on its own port but advertises the proxy's, so every connection a client makes
 * after bootstrap crosses the proxy too.
 *
 * Everything started here is registered and killed (SIGKILL) by stopAll(), also on failure.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig, PROJECT_ROOT, type Config } from '../../src/config.js';
import { ensureTopics } from '../../src/kafka/admin.js';
import { startKafka } from '../../src/stack/kafka-server.js';
import { stackPaths } from '../../src/stack/paths.js';
import { isAlive } from '../../src/stack/processes.js';
import { startRedis } from '../../src/stack/redis-server.js';
import { topology } from '../../src/topology.js';
import type { LoadgenSummary } from '../../loadgen/summary.js';
import { runtimes, type Runtime } from '../../bench/runtimes.js';
import { FaultProxy } from './fault-proxy.js';
import { unusedPort } from './ports.js';

const BIN = join(PROJECT_ROOT, 'bin', 'stratus.js');

/**
 * The runtime the engine's processes run on (the load generator always runs on this Node):
 * FAULTS_ENGINE_RUNTIME=bun or node24 (scripts/setup-runtimes.sh fetches them), default this Node.
 * On Bun, kafka.client auto is @platformatic/kafka; STRATUS_KAFKA_CLIENT picks it on Node 24 too.
 */
export const ENGINE_RUNTIME: Runtime = (() => {
  const wanted = process.env.FAULTS_ENGINE_RUNTIME ?? 'node';
  if (wanted === 'node') return { name: `Node ${process.version}`, exec: process.execPath, args: [], bin: BIN };
  const all = runtimes();
  assert.ok(wanted === 'bun' || wanted === 'node24', `FAULTS_ENGINE_RUNTIME must be node, node24 or bun (got ${wanted})`);
  return all[wanted];
})();
const PARTITIONS = 6;

/** Every process this harness started, so a failed test still leaves nothing running. */
const children = new Set<number>();

/** Engine processes that exited without being killed by the harness: name, exit status, stderr tail. */
export const unexpectedExits: { name: string; atMs: number; status: string; stderr: string }[] = [];

function kill9(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

async function waitGone(pid: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(50);
}

export class FaultStack {
  kafkaPid = 0;
  redisPid = 0;
  private constructor(
    /** Direct ports: what the stack's servers listen on. */
    readonly stackConfig: Config,
    readonly kafkaProxy: FaultProxy,
    readonly redisProxy: FaultProxy,
    readonly dataDir: string,
  ) {}

  static async start(): Promise<FaultStack> {
    const dataDir = mkdtempSync(join(tmpdir(), 'stratus-faults-'));
    const [redisPort, kafkaPort, controllerPort] = [await unusedPort(), await unusedPort(), await unusedPort()];
    const stackConfig = loadConfig({
      flags: {
        'data-dir': dataDir,
        'redis-port': String(redisPort),
        'kafka-brokers': `127.0.0.1:${kafkaPort}`,
        'kafka-controller-port': String(controllerPort),
        'kafka-partitions': String(PARTITIONS),
        'kafka-heap-mb': '384',
      },
    });
    const kafkaProxy = await FaultProxy.start(kafkaPort);
    const redisProxy = await FaultProxy.start(redisPort);
    const stack = new FaultStack(stackConfig, kafkaProxy, redisProxy, dataDir);
    mkdirSync(stackPaths(stackConfig).runDir, { recursive: true });
    try {
      await stack.startRedis();
      await stack.startKafka();
      const t = topology(stack.engineConfig());
      await ensureTopics(stack.engineConfig(), [
        { topic: t.topics.events, partitions: PARTITIONS },
        { topic: t.topics.results, partitions: PARTITIONS },
      ]);
    } catch (err) {
      await stack.stop();
      throw err;
    }
    return stack;
  }

  /** STRATUS_* for every engine process: Kafka and Redis through the proxies. */
  env(): Record<string, string> {
    return {
      STRATUS_DATA_DIR: this.dataDir,
      STRATUS_REDIS_PORT: String(this.redisProxy.port),
      STRATUS_KAFKA_BROKERS: `127.0.0.1:${this.kafkaProxy.port}`,
      STRATUS_KAFKA_CONTROLLER_PORT: String(this.stackConfig.kafka.controllerPort),
      STRATUS_KAFKA_PARTITIONS: String(PARTITIONS),
      // info: the `started` line RoleProcess waits for is an info line (src/log.ts).
      STRATUS_LOG_LEVEL: 'info',
    };
  }

  engineConfig(): Config {
    return loadConfig({
      flags: {
        'data-dir': this.dataDir,
        'redis-port': String(this.redisProxy.port),
        'kafka-brokers': `127.0.0.1:${this.kafkaProxy.port}`,
        'kafka-controller-port': String(this.stackConfig.kafka.controllerPort),
        'kafka-partitions': String(PARTITIONS),
      },
    });
  }

  async startRedis(): Promise<void> {
    this.redisPid = await startRedis(this.stackConfig, stackPaths(this.stackConfig));
    children.add(this.redisPid);
  }

  async startKafka(): Promise<void> {
    this.kafkaPid = await startKafka(this.stackConfig, stackPaths(this.stackConfig), { advertisedPort: this.kafkaProxy.port });
    children.add(this.kafkaPid);
  }

  async killRedis(): Promise<void> {
    kill9(this.redisPid);
    await waitGone(this.redisPid);
    children.delete(this.redisPid);
  }

  async killKafka(): Promise<void> {
    kill9(this.kafkaPid);
    await waitGone(this.kafkaPid);
    children.delete(this.kafkaPid);
  }

  async stop(): Promise<void> {
    await this.kafkaProxy.close().catch(() => {});
    await this.redisProxy.close().catch(() => {});
    for (const pid of [this.kafkaPid, this.redisPid]) {
      kill9(pid);
      await waitGone(pid);
      children.delete(pid);
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** What `stratus run` and `stratus worker` log once they are up (a JSON line, src/log.ts). */
export const READY_LINE = '"msg":"started"';

/** One engine process (`stratus run --roles ...` or `stratus worker`) that can be killed and started again. */
export class RoleProcess {
  private child: ChildProcess | null = null;
  private stderr = '';
  constructor(
    readonly name: string,
    private readonly args: string[],
    private readonly env: Record<string, string>,
    /** A line on stderr that says the process is ready. */
    private readonly readyLine: string,
  ) {}

  static async run(name: string, roles: string, stack: FaultStack, extra: Record<string, string> = {}): Promise<RoleProcess> {
    const args = ['run', '--roles', roles, '--grpc-port', String(await unusedPort()), '--http-port', String(await unusedPort()), '--instance-id', name];
    const p = new RoleProcess(name, args, { ...stack.env(), ...extra }, READY_LINE);
    await p.start();
    return p;
  }

  get grpcPort(): number {
    return Number(this.args[this.args.indexOf('--grpc-port') + 1]);
  }

  get httpPort(): number {
    return Number(this.args[this.args.indexOf('--http-port') + 1]);
  }

  get alive(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  get log(): string {
    return this.stderr;
  }

  async start(timeoutMs = 90_000): Promise<void> {
    this.stderr = '';
    const child = spawn(ENGINE_RUNTIME.exec, [...ENGINE_RUNTIME.args, ENGINE_RUNTIME.bin, ...this.args], {
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    children.add(child.pid!);
    child.once('exit', (code, sig) => {
      // kill9() clears this.child first: an exit seen here with this.child still set is the process's own.
      if (this.child !== child) return;
      this.child = null;
      children.delete(child.pid!);
      unexpectedExits.push({ name: this.name, atMs: Date.now(), status: String(code ?? sig), stderr: this.stderr.slice(-3000) });
      process.stdout.write(`# ${this.name} exited by itself (${code ?? sig}); stderr ends with:\n${this.stderr.slice(-1500).replace(/^/gm, '#   ')}\n`);
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name} not ready within ${timeoutMs} ms:\n${this.stderr.slice(-2000)}`)), timeoutMs);
      child.stderr!.on('data', (b: Buffer) => {
        // Keep the tail only: a long run under faults logs a lot.
        this.stderr = (this.stderr + b.toString()).slice(-20_000);
        if (this.stderr.includes(this.readyLine)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code, sig) => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited while starting (${code ?? sig}):\n${this.stderr.slice(-2000)}`));
      });
    });
  }

  async kill9(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    this.child = null;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    children.delete(child.pid!);
  }
}

/** Kills everything the harness started that is still running. */
export function killAll(): void {
  for (const pid of children) kill9(pid);
  children.clear();
}

export interface LoadgenRun {
  /** Wall-clock ms of the load generator's start (its per-second series counts from here). */
  startedAtMs: number;
  done: Promise<LoadgenSummary>;
  kill(): void;
}

export function startLoadgen(target: string, env: Record<string, string>, args: string[]): LoadgenRun {
  const startedAtMs = Date.now();
  const child = spawn(process.execPath, [BIN, 'loadgen', '--target', target, '--json', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child.pid!);
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
  const done = new Promise<LoadgenSummary>((resolve, reject) => {
    child.once('exit', (code) => {
      children.delete(child.pid!);
      try {
        resolve(JSON.parse(out) as LoadgenSummary);
      } catch {
        reject(new Error(`loadgen exited ${code} without a JSON summary:\n${err}`));
      }
    });
  });
  return { startedAtMs, done, kill: () => kill9(child.pid!) };
}

export interface FaultRow {
  fault: string;
  acked: number;
  lost: number;
  duplicates: number;
  wrong: number;
  unacked: number;
  /** Seconds from the restart (or heal) until acks and results flow at half the pre-fault rate; null: never within the run. */
  recoveryS: number | null;
  /** Seconds the fault lasted (kill to restarted and ready, or injection to heal). */
  outageS: number;
  reconnects: number;
  errors: Record<string, number>;
}

/**
 * Recovery time from the load generator's per-second series (second i covers [i, i+1) s after its
 * start, taken as its startedAt, a fraction of a second before its first device): the whole
 * seconds from the one in which the restart (or heal) completed to the first second, from that one
 * on, in which acks and results both reach half their mean rate before the fault. Once the load
 * has stopped (second >= sendingS) only results count: what is left is the backlog.
 * 0: the flow was at half rate or more in the very second of the restart. Resolution one second.
 */
export function recoveryS(summary: LoadgenSummary, faultAtMs: number, restoredAtMs: number, sendingS: number): number | null {
  const s = summary.series;
  const startedAtMs = Date.parse(summary.startedAt);
  const faultSec = Math.floor((faultAtMs - startedAtMs) / 1000);
  const restoredSec = Math.floor((restoredAtMs - startedAtMs) / 1000);
  const before = (xs: number[]) => {
    const w = xs.slice(2, Math.max(3, faultSec));
    return w.reduce((a, b) => a + b, 0) / Math.max(1, w.length);
  };
  const ackBase = before(s.ackedPerS);
  const resBase = before(s.resultsPerS);
  for (let i = Math.max(0, restoredSec); i < s.tS.length; i++) {
    if ((i >= sendingS || s.ackedPerS[i]! >= ackBase / 2) && s.resultsPerS[i]! >= resBase / 2) return i - restoredSec;
  }
  return null;
}

export function rowOf(fault: string, summary: LoadgenSummary, recovery: number | null, outageS: number): FaultRow {
  const c = summary.counts;
  return {
    fault,
    acked: c.acked,
    lost: c.missing,
    duplicates: c.duplicates,
    wrong: c.wrong,
    unacked: c.unacked,
    recoveryS: recovery,
    outageS: Math.round(outageS * 10) / 10,
    reconnects: c.reconnects,
    errors: c.errors,
  };
}

export function printTable(title: string, rows: FaultRow[], file: string): string {
  const head = ['fault', 'acked', 'lost', 'duplicate results', 'wrong', 'unacked', 'outage s', 'recovery s'];
  const lines = rows.map((r) => [r.fault, String(r.acked), String(r.lost), String(r.duplicates), String(r.wrong), String(r.unacked), String(r.outageS), r.recoveryS === null ? 'never' : String(r.recoveryS)]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const text = [title, fmt(head), `|${widths.map((w, i) => (i === 0 ? `-${'-'.repeat(w)}-` : `-${'-'.repeat(w)}:`)).join('|')}|`, ...lines.map(fmt)].join('\n');
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, `${JSON.stringify({ title, date: new Date().toISOString(), rows }, null, 2)}\n`);
  return text;
}

/** A gRPC-path fault row's verdict: something acked, every acked event's one right result, flow back. */
export function checkDeliveryRow(row: FaultRow): void {
  assert.ok(row.acked > 0, `${row.fault}: no event was acknowledged`);
  assert.equal(row.lost, 0, `${row.fault}: ${row.lost} acked events have no result`);
  assert.equal(row.duplicates, 0, `${row.fault}: ${row.duplicates} duplicate results`);
  assert.equal(row.wrong, 0, `${row.fault}: ${row.wrong} wrong results`);
  assert.notEqual(row.recoveryS, null, `${row.fault}: acks and results did not return to half their rate`);
}
