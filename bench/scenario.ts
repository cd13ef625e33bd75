/**
 * What a bench scenario is and what it yields. Every scenario measures Stratus and its baseline in
 * the same run with the same settings, and reports the ratio: on a shared, noisy machine absolute
 * figures drift, ratios from one run hold.
 */
import type { Config } from '../src/config.js';

export interface Side {
  name: string;
  /** Figures as measured: events/s, ms, ops/s, bytes. */
  figures: Record<string, number>;
}

export interface Ratio {
  /** e.g. "acked/s: Stratus / grpc-js ceiling". */
  name: string;
  value: number;
  /** The target for this ratio, when it has one. */
  target?: { op: '>=' | '<='; value: number };
  met?: boolean;
}

export interface ScenarioResult {
  id: string;
  title: string;
  params: Record<string, number | string | boolean>;
  sides: Side[];
  ratios: Ratio[];
  /** One or two plain sentences on what the table says. */
  reading: string;
  /**
   * Latency-by-percentile plots drawn next to the scenario's table in RESULTS.md (an SVG each, log
   * scale). Distributions come from the measuring HdrHistograms (a loadgen summary's
   * `latency[metric].distribution`), one series per side.
   */
  plots?: LatencyPlot[];
  /** Anything else the scenario measured, kept in the JSON (not drawn in RESULTS.md). */
  raw?: unknown;
}

export interface LatencyPlot {
  /** Unique within the scenario; part of the SVG's file name. */
  id: string;
  title: string;
  series: { name: string; distribution: [number, number][] }[];
}

export interface BenchContext {
  quick: boolean;
  config: Config;
  log(line: string): void;
}

export interface Scenario {
  id: string;
  title: string;
  run(ctx: BenchContext): Promise<ScenarioResult>;
}

export function ratio(name: string, value: number, target?: Ratio['target']): Ratio {
  const v = Math.round(value * 1000) / 1000;
  if (target === undefined) return { name, value: v };
  return { name, value: v, target, met: target.op === '>=' ? v >= target.value : v <= target.value };
}
