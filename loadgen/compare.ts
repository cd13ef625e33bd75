/**
 * Two load-generator runs side by side: `stratus report compare A B` (compareReports) and
 * `stratus loadgen --baseline A --report B` (compareSection, inside B's report.html) read each run's
 * summary.json and show
 *
 *   - both runs' latency-by-percentile curves, ack and result, on one plot: run A in blue, run B in
 *     orange, ack solid and result dashed, so a shift in the body or the tail is seen at once;
 *   - a table of deltas: p50/p90/p99/p99.9/max of ack and result, throughput, and the counts that
 *     must stay at zero (missing, duplicates, wrong, errors), each with B - A and (B - A) / A.
 *
 * A is the baseline, B the run compared with it. Nothing is judged against a threshold: on a shared
 * machine a few percent either way is noise, and the reader knows their machine; the cells are only
 * tinted by direction (green: B better, red: B worse), and not at all under TINT_RELATIVE_MIN.
 */
import { readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, StratusError } from '../src/errors.js';
import { htmlPage } from './report-html.js';
import type { LatencyStats, LoadgenSummary } from './summary.js';
import { escapeXml as esc, linePlot, type PlotSeries } from './svg-plot.js';

export const COMPARE_FILE = 'compare.html';
export const COMPARE_PLOT_ID = 'plot-compare-latency';

/** Run colours: A (baseline) blue, B orange, as in the palette of the other plots. */
const RUN_COLOURS = { A: '#1f77b4', B: '#ff7f0e' } as const;
const METRIC_DASHES: Record<string, string> = { ack: '', result: '6 3' };

/**
 * Reads and checks a report's summary.json. `path` is a report folder (or the summary.json itself).
 * Throws a StratusError naming the path and what is wrong with it; checks what the comparison reads,
 * so a summary from an older or newer version of this format is refused, not half-drawn.
 */
export function readReportSummary(path: string): LoadgenSummary {
  let file = path;
  try {
    if (statSync(path).isDirectory()) file = join(path, 'summary.json');
  } catch {
    throw notReport(path, 'no such file or folder');
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw notReport(path, `${file} cannot be read`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw notReport(path, `${file} is not JSON (${(err as Error).message})`);
  }
  const problem = summaryProblem(data);
  if (problem !== null) throw notReport(path, `${file}: ${problem}`);
  return data as LoadgenSummary;
}

function notReport(path: string, why: string): StratusError {
  return new StratusError(ErrorCode.USAGE, `${path} is not a load-generator report: ${why} (write one with \`stratus loadgen --report DIR\`)`);
}

/** What makes `data` unusable as a LoadgenSummary, or null. Checks the fields the comparison reads. */
export function summaryProblem(data: unknown): string | null {
  if (!isRecord(data)) return 'not a JSON object';
  if (data.version !== 1) return `version ${JSON.stringify(data.version)}, this stratus reads version 1`;
  for (const k of ['startedAt', 'target', 'api', 'profile', 'loop'] as const) if (typeof data[k] !== 'string') return `${k} is not a string`;
  if (typeof data.measuredS !== 'number') return 'measuredS is not a number';
  if (!isRecord(data.options)) return 'options is not an object';
  if (!isRecord(data.fleet) || typeof data.fleet.devices !== 'number') return 'fleet.devices is not a number';
  if (!isRecord(data.throughput)) return 'throughput is not an object';
  for (const k of ['sentPerS', 'ackedPerS', 'resultsPerS']) if (typeof data.throughput[k] !== 'number') return `throughput.${k} is not a number`;
  if (!isRecord(data.counts)) return 'counts is not an object';
  for (const k of ['sent', 'acked', 'results', 'missing', 'duplicates', 'wrong', 'unacked']) if (typeof data.counts[k] !== 'number') return `counts.${k} is not a number`;
  for (const k of ['rejected', 'errors']) {
    const rec = data.counts[k];
    if (!isRecord(rec) || !Object.values(rec).every((v) => typeof v === 'number')) return `counts.${k} is not a record of counts`;
  }
  if (!isRecord(data.latency)) return 'latency is not an object';
  for (const [m, l] of Object.entries(data.latency)) {
    if (!isRecord(l)) return `latency.${m} is not an object`;
    for (const k of ['count', 'p50Ms', 'p90Ms', 'p99Ms', 'p999Ms', 'maxMs']) if (typeof l[k] !== 'number') return `latency.${m}.${k} is not a number`;
    if (!Array.isArray(l.distribution) || !l.distribution.every((r) => Array.isArray(r) && r.length === 2 && typeof r[0] === 'number' && typeof r[1] === 'number')) {
      return `latency.${m}.distribution is not a list of [percentile, ms] pairs`;
    }
  }
  return null;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** One line of the delta table. `a`/`b` null: the run did not measure it (no acks on that API). */
export interface DeltaRow {
  group: string;
  label: string;
  unit: 'ms' | '/s' | '';
  a: number | null;
  b: number | null;
  /** b - a; null when either is null. */
  change: number | null;
  /** (b - a) / a; null when either is null or a is 0. */
  relative: number | null;
  /** Which way is better: 'lower' (latency, failures), 'higher' (throughput) or 'none' (offered load). */
  better: 'lower' | 'higher' | 'none';
}

const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits;

const LATENCY_ROWS: [string, keyof LatencyStats][] = [['p50', 'p50Ms'], ['p90', 'p90Ms'], ['p99', 'p99Ms'], ['p99.9', 'p999Ms'], ['max', 'maxMs']];

export function deltaRows(a: LoadgenSummary, b: LoadgenSummary): DeltaRow[] {
  const rows: DeltaRow[] = [];
  const add = (group: string, label: string, unit: DeltaRow['unit'], better: DeltaRow['better'], va: number | null, vb: number | null) => {
    const change = va === null || vb === null ? null : round(vb - va);
    const relative = change === null || va === 0 ? null : round(change / va!, 4);
    rows.push({ group, label, unit, a: va, b: vb, change, relative, better });
  };
  for (const metric of ['ack', 'result']) {
    const la = a.latency[metric];
    const lb = b.latency[metric];
    if (la === undefined && lb === undefined) continue;
    for (const [label, key] of LATENCY_ROWS) add(`${metric} latency`, label, 'ms', 'lower', (la?.[key] as number | undefined) ?? null, (lb?.[key] as number | undefined) ?? null);
  }
  add('throughput (measured window)', 'sent', '/s', 'none', a.throughput.sentPerS, b.throughput.sentPerS);
  add('throughput (measured window)', 'acked', '/s', 'higher', a.throughput.ackedPerS, b.throughput.ackedPerS);
  add('throughput (measured window)', 'results', '/s', 'higher', a.throughput.resultsPerS, b.throughput.resultsPerS);
  const total = (rec: Record<string, number>) => Object.values(rec).reduce((x, y) => x + y, 0);
  add('counts', 'missing (acked, no result)', '', 'lower', a.counts.missing, b.counts.missing);
  add('counts', 'duplicates', '', 'lower', a.counts.duplicates, b.counts.duplicates);
  add('counts', 'wrong values', '', 'lower', a.counts.wrong, b.counts.wrong);
  add('counts', 'errors', '', 'lower', total(a.counts.errors), total(b.counts.errors));
  add('counts', 'rejected', '', 'lower', total(a.counts.rejected), total(b.counts.rejected));
  add('counts', 'unacked', '', 'lower', a.counts.unacked, b.counts.unacked);
  return rows;
}

/**
 * Changes smaller than this (relative) get no verdict: an open-loop run's throughput moves by a few
 * tenths of a percent with the arrivals alone, and a red cell for that would be read as a regression.
 */
export const TINT_RELATIVE_MIN = 0.02;

/** 'better' or 'worse' for B, or '' when equal, under TINT_RELATIVE_MIN, unmeasured or without a direction. */
export function verdictOf(r: DeltaRow): 'better' | 'worse' | '' {
  if (r.change === null || r.change === 0 || r.better === 'none') return '';
  if (r.relative !== null && Math.abs(r.relative) < TINT_RELATIVE_MIN) return '';
  return (r.change < 0) === (r.better === 'lower') ? 'better' : 'worse';
}

/** One line saying which run it is: when, against what, with which load. */
export function runLabel(s: LoadgenSummary): string {
  const o = s.options;
  const rate = typeof o.totalRate === 'number' ? `${o.totalRate.toLocaleString('en-US')} ev/s` : `${String(o.ratePerDevice)} ev/s per device`;
  const parts = [`${s.fleet.devices.toLocaleString('en-US')} devices`, rate, `${s.api} API`, s.profile, `${s.loop} loop`];
  if (typeof o.batch === 'number' && o.batch !== 1) parts.push(`batch ${o.batch}`);
  parts.push(`${s.measuredS} s measured`);
  return `${s.startedAt} \u2192 ${s.target}: ${parts.join(', ')}`;
}

const fmt = (v: number | null, unit: DeltaRow['unit']) => {
  if (v === null) return '\u2014';
  const text = unit === 'ms' ? (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2)) : v.toLocaleString('en-US');
  return unit === '' ? text : `${text} ${unit === 'ms' ? 'ms' : '/s'}`;
};
const signed = (v: number | null, unit: DeltaRow['unit']) => (v === null ? '\u2014' : v > 0 ? `+${fmt(v, unit)}` : fmt(v, unit));
const percent = (r: DeltaRow) => {
  if (r.relative === null) return r.change === null || r.change === 0 ? '\u2014' : 'from 0';
  const p = r.relative * 100;
  return `${p > 0 ? '+' : ''}${Math.abs(p) >= 10 ? p.toFixed(0) : p.toFixed(1)}%`;
};

function deltaTable(rows: DeltaRow[]): string {
  const out = ['<table class="deltas">', '<tr><th>quantity</th><th>A (baseline)</th><th>B</th><th>B \u2212 A</th><th>relative</th></tr>'];
  let group = '';
  for (const r of rows) {
    if (r.group !== group) {
      group = r.group;
      out.push(`<tr class="group"><th colspan="5">${esc(group)}</th></tr>`);
    }
    const v = verdictOf(r);
    const cls = v === '' ? '' : ` class="${v}"`;
    out.push(`<tr><td>${esc(r.label)}</td><td>${esc(fmt(r.a, r.unit))}</td><td>${esc(fmt(r.b, r.unit))}</td><td${cls}>${esc(signed(r.change, r.unit))}</td><td${cls}>${esc(percent(r))}</td></tr>`);
  }
  out.push('</table>');
  return out.join('\n');
}

/** The delta table as plain text (stdout of `stratus report compare`). */
export function deltaText(a: LoadgenSummary, b: LoadgenSummary): string {
  const rows = deltaRows(a, b);
  const table: string[][] = [['', 'A (baseline)', 'B', 'B - A', 'relative']];
  let group = '';
  for (const r of rows) {
    if (r.group !== group) {
      group = r.group;
      table.push([group, '', '', '', '']);
    }
    const v = verdictOf(r);
    table.push([`  ${r.label}`, fmt(r.a, r.unit), fmt(r.b, r.unit), signed(r.change, r.unit), percent(r) + (v === '' ? '' : ` ${v}`)]);
  }
  const widths = table[0]!.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
  const lines = [`A: ${runLabel(a)}`, `B: ${runLabel(b)}`, ''];
  for (const row of table) lines.push(row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd());
  return lines.join('\n') + '\n';
}

function overlaySeries(runs: [string, LoadgenSummary][]): PlotSeries[] {
  const out: PlotSeries[] = [];
  for (const [name, s] of runs) {
    for (const metric of ['ack', 'result']) {
      const l = s.latency[metric];
      if (l === undefined || l.distribution.length === 0) continue;
      out.push({ name: `${name} ${metric}`, points: l.distribution, colour: RUN_COLOURS[name as 'A' | 'B'], dash: METRIC_DASHES[metric]! });
    }
  }
  return out;
}

/** The comparison as a page section: run key, overlay plot, delta table. A is the baseline. */
export function compareSection(a: LoadgenSummary, b: LoadgenSummary, heading = 'Compared with the baseline'): string {
  const plot = linePlot({
    id: COMPARE_PLOT_ID,
    title: 'Latency by percentile: A (baseline) and B',
    xLabel: 'percentile',
    yLabel: 'latency (ms, log scale)',
    xLog: 'percentile',
    yLog: true,
    series: overlaySeries([['A', a], ['B', b]]),
    width: 900,
    height: 380,
  });
  return [
    `<h2>${esc(heading)}</h2>`,
    '<table class="runs">',
    '<tr><th>run</th><th class="text">started, target, load</th></tr>',
    `<tr><td><span style="color:${RUN_COLOURS.A}">\u25a0</span> A (baseline)</td><td class="text">${esc(runLabel(a))}</td></tr>`,
    `<tr><td><span style="color:${RUN_COLOURS.B}">\u25a0</span> B</td><td class="text">${esc(runLabel(b))}</td></tr>`,
    '</table>',
    '<div class="cols">',
    `<div class="plots"><figure>\n${plot}\n<figcaption>${esc('Each run\u2019s whole measured window: A blue, B orange; ack solid, result dashed. A curve lower is faster at that percentile.')}</figcaption>\n</figure></div>`,
    deltaTable(deltaRows(a, b)),
    '</div>',
    `<p class="sub">${esc(`B \u2212 A and (B \u2212 A) / A; green: B better, red: B worse (changes under ${TINT_RELATIVE_MIN * 100}% are not tinted). On a shared machine a few percent either way is run-to-run noise.`)}</p>`,
  ].join('\n');
}

export function renderCompareHtml(a: LoadgenSummary, b: LoadgenSummary): string {
  return htmlPage(`stratus loadgen: compare ${a.startedAt} and ${b.startedAt}`, [
    '<h1>stratus loadgen: two runs compared</h1>',
    compareSection(a, b, 'A (baseline) and B'),
  ]);
}

/**
 * Reads the summary.json of two report folders (A the baseline, B the run compared with it) and
 * writes outDir/compare.html. Returns the path written and both summaries.
 */
export function compareReports(dirA: string, dirB: string, outDir: string): { file: string; a: LoadgenSummary; b: LoadgenSummary } {
  const a = readReportSummary(dirA);
  const b = readReportSummary(dirB);
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, COMPARE_FILE);
  writeFileSync(file, renderCompareHtml(a, b));
  return { file, a, b };
}
