/**
 * Many schedules against one engine: what both entry points (run.ts, delivery.test.ts) do.
 * STRATUS_MODEL_SEED replays one seed; STRATUS_MODEL_OPS (comma-separated indices) keeps only
 * those operations of it (a shrunk schedule).
 */
import type { ModelEngine } from '../helpers/model-engine.js';
import { summarize, type Violation } from './model.js';
import { randomSeed } from './prng.js';
import { describe, replayLine, runSchedule, shrink, type RunResult } from './runner.js';
import { generate, subset, type Schedule } from './schedule.js';

export interface CampaignOptions {
  runs: number;
  /** Replay this seed (every run uses it). */
  seed?: number;
  /** Only these operations of the seed's schedule. */
  ops?: number[];
  /** No new schedule starts after this many ms. */
  budgetMs: number;
  /** Re-runs allowed to shrink the first failing schedule (0: no shrinking). */
  shrinkReruns: number;
  /** Runs a shrink candidate gets to show the failure (racy bugs); default 1. */
  shrinkTries?: number;
  /** Shrink for this violation kind only (default: any kind the failure showed). */
  shrinkKind?: string;
  opsMax: number;
  kills: boolean;
  /** Plain schedules only (see GenOptions.plain). */
  plain?: boolean;
  /** The command that replays a seed, for the printed replay line. */
  replayEntry: string;
  print: (line: string) => void;
}

export interface Failure { seed: number; violations: Violation[]; shrunk: { keep: number[]; text: string; violations: Violation[]; reruns: number } | null; replay: string }

export interface CampaignSummary {
  runs: number;
  ops: number;
  events: number;
  acked: number;
  results: number;
  violations: number;
  seconds: number;
  seeds: number[];
  failures: Failure[];
}

/**
 * STRATUS_MODEL_* read once and taken out of process.env: loadConfig() refuses unknown STRATUS_*
 * settings, and the engine's processes inherit this environment.
 */
export const MODEL_ENV: Readonly<Record<string, string>> = (() => {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('STRATUS_MODEL_') && v !== undefined) {
      out[k] = v;
      delete process.env[k];
    }
  }
  return out;
})();

export function optionsFromEnv(env: Readonly<Record<string, string | undefined>>, base: CampaignOptions): CampaignOptions {
  const o = { ...base };
  if (env.STRATUS_MODEL_SEED !== undefined && env.STRATUS_MODEL_SEED !== '') o.seed = Number(env.STRATUS_MODEL_SEED) >>> 0;
  if (env.STRATUS_MODEL_OPS !== undefined && env.STRATUS_MODEL_OPS !== '') o.ops = env.STRATUS_MODEL_OPS.split(',').map(Number);
  if (env.STRATUS_MODEL_RUNS !== undefined && env.STRATUS_MODEL_RUNS !== '') o.runs = Number(env.STRATUS_MODEL_RUNS);
  if (env.STRATUS_MODEL_KIND !== undefined && env.STRATUS_MODEL_KIND !== '') o.shrinkKind = env.STRATUS_MODEL_KIND;
  if (o.seed !== undefined && env.STRATUS_MODEL_RUNS === undefined) o.runs = 1;
  return o;
}

export function scheduleOf(seed: number, o: Pick<CampaignOptions, 'ops' | 'opsMax' | 'kills' | 'plain'>): Schedule {
  const s = generate(seed, { opsMax: o.opsMax, kills: o.kills, plain: o.plain === true });
  return o.ops !== undefined ? subset(s, o.ops) : s;
}

export async function campaign(engine: ModelEngine, o: CampaignOptions): Promise<CampaignSummary> {
  const started = Date.now();
  const sum: CampaignSummary = { runs: 0, ops: 0, events: 0, acked: 0, results: 0, violations: 0, seconds: 0, seeds: [], failures: [] };
  for (let k = 0; k < o.runs && Date.now() - started < o.budgetMs; k++) {
    const seed = o.seed ?? randomSeed();
    const schedule = scheduleOf(seed, o);
    const r: RunResult = await runSchedule(engine, schedule);
    sum.runs++;
    sum.seeds.push(seed);
    sum.ops += r.stats.ops;
    sum.events += r.stats.events;
    sum.acked += r.stats.acked;
    sum.results += r.stats.results;
    sum.violations += r.violations.length;
    o.print(`schedule ${k + 1} seed ${seed}: ${r.stats.ops} ops (${r.stats.skipped} skipped), ${r.stats.events} events, ${r.stats.acked} acked, ${r.stats.results} results, ${r.stats.seconds.toFixed(1)} s: ${r.violations.length === 0 ? 'ok' : `${r.violations.length} violations: ${summarize(r.violations)}`}${r.advisories.length > 0 ? ` (advisory: ${summarize(r.advisories)})` : ''}`);
    if (r.violations.length === 0) continue;
    for (const v of r.violations.slice(0, 8)) o.print(`  ${v.kind} ${v.device}${v.seq !== undefined ? ` seq ${v.seq}` : ''}: ${v.detail}`);
    const failure: Failure = { seed, violations: r.violations, shrunk: null, replay: replayLine(seed, o.ops ?? null, o.replayEntry) };
    // Shrink the first failure of the campaign only: each re-run costs a schedule.
    const shrinkable = o.shrinkKind === undefined || r.violations.some((v) => v.kind === o.shrinkKind);
    if (o.shrinkReruns > 0 && shrinkable && !sum.failures.some((f) => f.shrunk !== null) && o.ops === undefined) {
      const s = await shrink(engine, r, { reruns: o.shrinkReruns, deadlineMs: started + o.budgetMs, tries: o.shrinkTries ?? 1, ...(o.shrinkKind !== undefined ? { kind: o.shrinkKind } : {}) }, (line) => o.print(`  ${line}`));
      const text = describe(schedule, s.keep);
      failure.shrunk = { keep: s.keep, text, violations: s.result.violations, reruns: s.reruns };
      failure.replay = replayLine(seed, s.keep, o.replayEntry);
      o.print(`  shrunk after ${s.reruns} re-runs to:\n${text.replace(/^/gm, '    ')}\n  violations: ${summarize(s.result.violations)}`);
      for (const v of s.result.violations.slice(0, 6)) o.print(`    ${v.kind} ${v.device}${v.seq !== undefined ? ` seq ${v.seq}` : ''}: ${v.detail}`);
    }
    o.print(`  replay: ${failure.replay}`);
    sum.failures.push(failure);
  }
  sum.seconds = (Date.now() - started) / 1000;
  return sum;
}

export function formatSummary(s: CampaignSummary): string {
  return `model: ${s.runs} schedules, ${s.ops} ops, ${s.events} events, ${s.acked} acked, ${s.results} results, ${s.violations} violations (${s.failures.length} failing schedules), ${s.seconds.toFixed(1)} s; seeds ${s.seeds.join(',')}`;
}
