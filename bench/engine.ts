/**
 * What the engine-level scenarios share: a `stratus run` of their own (its own topic and key
 * prefixes, so nothing collides with another run, and its topics deleted after), and load-generator
 * runs against it with throughput counted inside the measured window.
 */
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { deleteTopics } from '../src/kafka/admin.js';
import { loadConfig } from '../src/config.js';
import { stackPaths } from '../src/stack/paths.js';
import { topology } from '../src/topology.js';
import type { LoadgenSummary } from '../loadgen/summary.js';
import { unusedPort } from '../src/net/unused-port.js';
import { cpuSeconds, runJson, startService, STRATUS_BIN, type Service } from './child.js';
import { CHECKER_FAILED_EXIT, THRESHOLD_FAILED_EXIT } from '../src/cli/loadgen-command.js';
import type { BenchContext } from './scenario.js';

export interface Engine {
  target: string;
  /** The engine's process and its gateway worker processes (--threads). */
  pids(): number[];
  httpPort: number;
  service: Service;
  /** Stops the engine and deletes its topics. */
  stop(): Promise<void>;
}

export interface EngineOptions {
  roles?: string;
  threads?: number;
  /** How --threads shards the gateway's front end (run's --shard); the engine's default when not given. */
  shard?: 'threads' | 'processes';
  env?: Record<string, string>;
  /** Extra node options (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** Another runtime: its executable, options, and the stratus.js it runs (default: this Node). */
  runtime?: { exec: string; args: string[]; bin: string };
}

export async function startEngine(opts: EngineOptions = {}): Promise<Engine> {
  const prefix = `bench.${randomUUID().slice(0, 8)}.`;
  const env = {
    STRATUS_KAFKA_TOPIC_PREFIX: prefix,
    STRATUS_REDIS_KEY_PREFIX: `${prefix}:`,
    STRATUS_GATEWAY_INFLIGHT_MAX: '100000',
    STRATUS_REDIS_DEVICE_STATE_TTL_MS: '600000',
    ...opts.env,
  };
  const port = await unusedPort();
  const httpPort = await unusedPort();
  const exec = opts.runtime?.exec ?? process.execPath;
  const args = [...(opts.nodeArgs ?? []), ...(opts.runtime?.args ?? []), opts.runtime?.bin ?? STRATUS_BIN, 'run', '--grpc-port', String(port), '--http-port', String(httpPort), '--instance-id', `bench-${port}`];
  if (opts.roles !== undefined) args.push('--roles', opts.roles);
  if (opts.threads !== undefined) args.push('--threads', String(opts.threads));
  if (opts.shard !== undefined) args.push('--shard', opts.shard);
  // With --threads N the primary reports once every gateway worker is listening (each worker logs
  // its own `started` before that); otherwise the `started` line (JSON, src/log.ts).
  const service = await startService(exec, args, (opts.threads ?? 1) > 1 ? /gateway: \d+ worker (processes|threads)/ : /"msg":"started"/, { env });
  return {
    pids: () => [service.child.pid!, ...childPids(service.child.pid!)],
    target: `127.0.0.1:${port}`,
    httpPort,
    service,
    async stop() {
      await service.stop();
      const c = loadConfig({ flags: { 'kafka-topic-prefix': prefix } });
      await deleteTopics(c, [topology(c).topics.events, topology(c).topics.results]).catch(() => {});
    },
  };
}

export interface Fleet {
  devices: number;
  totalRate: number;
  durationS: number;
  warmupS: number;
  workers?: number;
  connections?: number;
  drainS?: number;
  extra?: string[];
  /** Run the load generator on another runtime (default: this Node). */
  runtime?: { exec: string; args: string[]; bin: string };
}

export async function loadgen(ctx: BenchContext, target: string, f: Fleet): Promise<LoadgenSummary> {
  const [summary] = await runJson<LoadgenSummary>(
    f.runtime?.exec ?? process.execPath,
    [
      ...(f.runtime?.args ?? []), f.runtime?.bin ?? STRATUS_BIN, 'loadgen', '--json', '--target', target,
      '--devices', String(f.devices), '--total-rate', String(f.totalRate), '--connections', String(f.connections ?? Math.ceil(f.devices / 100)),
      '--duration', `${f.durationS}s`, '--warmup', `${f.warmupS}s`, '--drain', `${f.drainS ?? 15}s`, '--seed', '1', '--workers', String(f.workers ?? 1),
      ...(f.extra ?? []),
    ],
    // 3 (the checker found missing, duplicate or wrong results) and 99 (a threshold failed) still
    // print the summary, which the scenario reads and reports; 4 (no device connected) does not.
    { timeoutMs: (f.durationS + f.warmupS + (f.drainS ?? 15) + 120) * 1000, okCodes: [CHECKER_FAILED_EXIT, THRESHOLD_FAILED_EXIT] },
  );
  const s = summary!;
  ctx.log(`  ${target}: ${perSInWindow(s, 'ackedPerS')} acks/s, ${perSInWindow(s, 'resultsPerS')} results/s in the window; ack p99 ${s.latency.ack?.p99Ms ?? '-'} ms, result p99 ${s.latency.result?.p99Ms ?? '-'} ms, sendLag p99 ${s.latency.sendLag?.p99Ms ?? '-'} ms`);
  return s;
}

/**
 * Acks (or results) that happened inside the measured window, per second. (The summary's
 * throughput counts the window's events acked by the end of the drain: under overload that is the
 * offered rate, late.)
 */
export function perSInWindow(s: LoadgenSummary, series: 'ackedPerS' | 'resultsPerS' | 'sentPerS'): number {
  // The window starts once the fleet has connected plus --warmup (summary.window), not at --warmup.
  const from = Math.floor(s.window.startS);
  const to = from + Math.round(s.measuredS);
  const v = s.series[series].filter((_, i) => i >= from && i < to);
  return v.length === 0 ? 0 : Math.round(v.reduce((a, b) => a + b, 0) / v.length);
}

export function kafkaPid(ctx: BenchContext): number {
  return Number(readFileSync(stackPaths(ctx.config).kafkaPid, 'utf8').trim());
}

/** CPU seconds of the given processes while `run` runs. */
export async function withCpu<T>(pids: number[], run: () => Promise<T>): Promise<{ result: T; cpuS: number[] }> {
  const before = pids.map(cpuSeconds);
  const result = await run();
  return { result, cpuS: pids.map((p, i) => cpuSeconds(p) - before[i]!) };
}

/** The figures every loadgen-driven side reports. Latencies without samples are left out. */
export function loadFigures(s: LoadgenSummary): Record<string, number> {
  const f: Record<string, number> = {
    ackedPerS: perSInWindow(s, 'ackedPerS'),
    resultsPerS: perSInWindow(s, 'resultsPerS'),
    ackP50Ms: s.latency.ack?.p50Ms ?? NaN,
    ackP99Ms: s.latency.ack?.p99Ms ?? NaN,
    resultP50Ms: s.latency.result?.p50Ms ?? NaN,
    resultP99Ms: s.latency.result?.p99Ms ?? NaN,
    sendLagP99Ms: s.latency.sendLag?.p99Ms ?? NaN,
    loadgenCores: Math.round(s.footprint.cpuShare * 100) / 100,
    errors: Object.values(s.counts.errors).reduce((a, b) => a + b, 0),
    rejected: Object.values(s.counts.rejected).reduce((a, b) => a + b, 0),
    missing: s.counts.missing,
    duplicates: s.counts.duplicates,
    wrong: s.counts.wrong,
  };
  for (const [k, v] of Object.entries(f)) if (!Number.isFinite(v)) delete f[k];
  return f;
}

/** Child processes of pid, from /proc (Linux). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(d));
    } catch {
      // Gone since the listing.
    }
  }
  return out;
}
