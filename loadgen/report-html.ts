/**
 * report.html: one self-contained page drawn from a LoadgenSummary: the run's header, the
 * checker's counts, a percentile table per latency metric, the thresholds, the generator's own
 * footprint, and six plots: latency by percentile over the measured window, ack and result latency
 * (p50/p90/p99/p99.9) per second on a log axis, throughput, connected devices and errors per second.
 * Every over-time plot shades the warm-up (before the measured window) and the drain (after it), so
 * a connect storm or a slow tail is seen for what it is: outside the figures in the tables. With a
 * baseline (`--baseline DIR`), a comparison section (compare.ts) comes right after the header.
 * Inline CSS and inline SVG only: no script, no font, no link, and a
 * Content-Security-Policy that forbids fetching anything, so the page opens the same from a CI
 * artifact, a mail attachment or an air-gapped machine. Every string that came from the summary is
 * escaped: error kinds, reject codes and targets come from the network or the command line.
 */
import { METRIC_DOCS } from './recorder.js';
import type { LatencyStats, LoadgenSummary, PercentileSeries } from './summary.js';
import { escapeXml as esc, linePlot, type PlotBand, type PlotSeries } from './svg-plot.js';

export { percentileDistribution } from './distribution.js';

/** Ids of the plots, in page order (the browser test finds them by these). */
export const PLOT_IDS = ['plot-latency', 'plot-ack-over-time', 'plot-result-over-time', 'plot-throughput', 'plot-connected', 'plot-errors'] as const;

/** The over-time plots: they carry the warm-up and drain bands. */
export const OVER_TIME_PLOT_IDS = ['plot-ack-over-time', 'plot-result-over-time', 'plot-throughput', 'plot-connected', 'plot-errors'] as const;

/** Legend labels of the shaded ranges (the browser test finds the bands by them). */
export const WARMUP_LABEL = 'warm-up, not measured';
export const DRAIN_LABEL = 'drain, not measured';
/** A run stopped before its window started (window 0..0): nothing of it was measured. */
export const UNMEASURED_LABEL = 'not measured (no window)';
export const CONNECTED_LABEL = 'fleet connected';

const PLOT_WIDTH = 720;
const PLOT_HEIGHT = 320;

const n = (x: number) => x.toLocaleString('en-US');
const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const mb = (bytes: number) => (bytes / 1e6).toFixed(1);

export const CSS = `
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222; background: #f6f7f9; margin: 0; }
main { max-width: 1500px; margin: 0 auto; padding: 20px 28px 40px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #d8dbe0; padding-bottom: 4px; }
.sub { color: #555; margin: 0 0 14px; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 4px; font-weight: 600; margin-left: 8px; font-size: 14px; vertical-align: middle; }
.pass { background: #dff3e1; color: #135c1d; }
.fail { background: #fbe0df; color: #9b1111; }
p.warn { background: #fff4d6; border-left: 4px solid #e0a800; padding: 6px 10px; margin: 10px 0; max-width: 1100px; }
.none { background: #e9eaee; color: #444; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dl.meta dt { color: #555; }
dl.meta dd { margin: 0; }
.cols { display: flex; flex-wrap: wrap; gap: 16px 40px; align-items: flex-start; }
table { border-collapse: collapse; background: #fff; }
table.runs { margin-bottom: 12px; }
th, td { border: 1px solid #d8dbe0; padding: 3px 10px; text-align: right; white-space: nowrap; }
th { background: #eef0f3; font-weight: 600; }
th:first-child, td:first-child, th.text { text-align: left; }
td.text { text-align: left; white-space: normal; }
td.doc { text-align: left; color: #555; white-space: normal; font-size: 12px; }
tr.bad td { background: #fbe0df; color: #9b1111; font-weight: 600; }
td.better { color: #135c1d; background: #eef8ef; }
td.worse { color: #9b1111; background: #fdf0ef; }
tr.group th { text-align: left; background: #f6f7f9; }
code { font: 12px ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 16px; }
.plots figure { margin: 0; background: #fff; border: 1px solid #d8dbe0; padding: 4px; }
.plots svg { width: 100%; height: auto; display: block; }
.plots figcaption { color: #555; font-size: 12px; padding: 2px 6px 4px; }
details { margin-top: 10px; }
`;

/** A two-column table of labelled counts; `bad` rows are highlighted. */
type Row = { label: string; value: string; bad?: boolean } | { group: string };

function rowsTable(rows: Row[]): string {
  const body = rows
    .map((r) =>
      'group' in r
        ? `<tr class="group"><th colspan="2">${esc(r.group)}</th></tr>`
        : `<tr${r.bad === true ? ' class="bad"' : ''}><td>${esc(r.label)}</td><td>${esc(r.value)}</td></tr>`,
    )
    .join('\n');
  return `<table>\n${body}\n</table>`;
}

/** Rows for a by-code/by-kind record, largest first (name order breaks ties, for stable output). */
function byKindRows(rec: Record<string, number>, bad: boolean): Row[] {
  const entries = Object.entries(rec).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  if (entries.length === 0) return [{ label: 'none', value: '0' }];
  return entries.map(([k, v]) => ({ label: k, value: n(v), bad: bad && v > 0 }));
}

function header(s: LoadgenSummary): string {
  const passed = s.thresholds.filter((t) => t.ok).length;
  const verdict =
    s.thresholds.length === 0
      ? '<span class="verdict none">no thresholds</span>'
      : passed === s.thresholds.length
        ? `<span class="verdict pass">thresholds: all ${s.thresholds.length} pass</span>`
        : `<span class="verdict fail">thresholds: ${s.thresholds.length - passed} of ${s.thresholds.length} FAIL</span>`;
  const e = s.environment;
  const f = s.fleet;
  const meta: [string, string][] = [
    ['target', s.target],
    ['api', s.api],
    ['profile', s.profile],
    ['loop', s.loop === 'open' ? 'open (latency from each event\u2019s intended send time)' : 'closed (latency from the real send)'],
    ['devices', `${n(f.devices)} over ${n(f.connections)} connection(s), ${n(f.workers)} worker thread(s)${f.slowReaders > 0 ? `, ${n(f.slowReaders)} slow reader(s)` : ''}`],
    ['fleet connected', f.fleetConnectS === null ? `never all at once (peak ${n(f.connectedPeak)})` : `in ${f.fleetConnectS} s (peak ${n(f.connectedPeak)})`],
    ['duration', `${s.runS} s run, ${s.measuredS} s measured (from ${s.window.startS} s to ${s.window.endS} s after the start)`],
    ['started at', s.startedAt],
    ['environment', `Node ${e.node}, ${e.platform}, ${e.cpus} \u00d7 ${e.cpuModel}, ${(e.memoryBytes / 2 ** 30).toFixed(1)} GiB`],
  ];
  return [
    `<h1>stratus loadgen ${verdict}</h1>`,
    `<p class="sub">${esc(s.api)} API \u2192 <code>${esc(s.target)}</code></p>`,
    `<dl class="meta">`,
    ...meta.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`),
    `</dl>`,
    windowWarning(s),
    optionsTable(s.options),
  ].join('\n');
}

/**
 * Said at the top when the measured window holds part of the connect storm: the headline figures
 * then mix connecting with steady state (issue 16: a 2,000-device fleet connecting after the warm-up
 * gave an ack p99 of 2.9 s against a steady 100-200 ms). Empty when the fleet was connected before
 * the window opened.
 */
export function windowWarning(s: LoadgenSummary): string {
  const f = s.fleet;
  const w = s.window;
  // No window (a run stopped before it): nothing measured to warn about.
  if (w.endS <= w.startS || (f.fleetConnectS !== null && f.fleetConnectS <= w.startS)) return '';
  const when =
    f.fleetConnectS === null
      ? `The fleet was never all connected at once (peak ${n(f.connectedPeak)} of ${n(f.devices)})`
      : f.fleetConnectS >= w.endS
        ? `The fleet finished connecting at ${f.fleetConnectS} s, after the measured window (${w.startS} s to ${w.endS} s)`
        : `The fleet finished connecting at ${f.fleetConnectS} s, ${round1(f.fleetConnectS - w.startS)} s into the measured window (${w.startS} s to ${w.endS} s)`;
  return `<p class="warn"><strong>Connect storm in the figures.</strong> ${esc(when)}: latency and throughput below include devices still connecting; see the latency-over-time plots.</p>`;
}

const round1 = (x: number) => Math.round(x * 10) / 10;

function optionsTable(options: LoadgenSummary['options']): string {
  const keys = Object.keys(options).sort();
  if (keys.length === 0) return '';
  const show = (v: LoadgenSummary['options'][string]) => (v === null ? '\u2014' : Array.isArray(v) ? v.join(', ') : String(v));
  const rows = keys.map((k) => `<tr><td>${esc(k)}</td><td class="text"><code>${esc(show(options[k]!))}</code></td></tr>`).join('\n');
  return `<details><summary>options (${keys.length})</summary>\n<table>\n${rows}\n</table>\n</details>`;
}

function countsSection(s: LoadgenSummary): string {
  const c = s.counts;
  const t = s.throughput;
  const events: Row[] = [
    { group: 'events' },
    { label: 'sent', value: n(c.sent) },
    { label: 'acked', value: n(c.acked) },
    { label: 'results', value: n(c.results) },
    { label: 'unacked (sent, never acked nor rejected)', value: n(c.unacked), bad: c.unacked > 0 },
    { label: 'held unsent (device not connected)', value: n(c.heldUnsent) },
    { label: 'reconnects', value: n(c.reconnects) },
    { group: 'checker' },
    { label: 'missing (acked, no result)', value: n(c.missing), bad: c.missing > 0 },
    { label: 'duplicates', value: n(c.duplicates), bad: c.duplicates > 0 },
    { label: 'wrong values', value: n(c.wrong), bad: c.wrong > 0 },
    { group: 'throughput (measured window)' },
    { label: 'sent', value: `${n(t.sentPerS)} /s` },
    { label: 'acked', value: `${n(t.ackedPerS)} /s` },
    { label: 'results', value: `${n(t.resultsPerS)} /s` },
  ];
  const refusals: Row[] = [{ group: 'rejected, by code' }, ...byKindRows(c.rejected, false), { group: 'errors, by kind' }, ...byKindRows(c.errors, true)];
  return `<h2>Counts</h2>\n<div class="cols">\n${rowsTable(events)}\n${rowsTable(refusals)}\n</div>`;
}

function latencySection(s: LoadgenSummary): string {
  const metrics = Object.keys(s.latency);
  if (metrics.length === 0) return '<h2>Latency (ms)</h2>\n<p>No latency was measured.</p>';
  const docs = METRIC_DOCS as Record<string, string | undefined>;
  const cells = (l: LatencyStats) =>
    l.count === 0
      ? '<td colspan="6">no samples</td><td>0</td>'
      : [l.p50Ms, l.p90Ms, l.p99Ms, l.p999Ms, l.p9999Ms, l.maxMs].map((v) => `<td>${ms(v)}</td>`).join('') + `<td>${n(l.count)}</td>`;
  const rows = metrics.map((m) => `<tr><td>${esc(m)}</td>${cells(s.latency[m]!)}<td class="doc">${esc(docs[m] ?? '')}</td></tr>`);
  return [
    '<h2>Latency (ms)</h2>',
    '<table>',
    '<tr><th>metric</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>p99.99</th><th>max</th><th>count</th><th class="text">measures</th></tr>',
    ...rows,
    '</table>',
  ].join('\n');
}

function thresholdsSection(s: LoadgenSummary): string {
  if (s.thresholds.length === 0) return '<h2>Thresholds</h2>\n<p>None given (<code>--threshold</code>).</p>';
  // JSON turns NaN (nothing measured) into null.
  const actual = (v: number | null) => (v === null || Number.isNaN(v) ? 'nothing measured' : n(v));
  const rows = s.thresholds.map(
    (t) => `<tr${t.ok ? '' : ' class="bad"'}><td><code>${esc(t.expr)}</code></td><td>${esc(actual(t.actual))}</td><td><span class="verdict ${t.ok ? 'pass' : 'fail'}">${t.ok ? 'pass' : 'FAIL'}</span></td></tr>`,
  );
  return ['<h2>Thresholds</h2>', '<table>', '<tr><th>threshold</th><th>measured</th><th>result</th></tr>', ...rows, '</table>'].join('\n');
}

function footprintSection(s: LoadgenSummary): string {
  const f = s.footprint;
  return [
    '<h2>Load generator footprint</h2>',
    rowsTable([
      { label: 'RSS per device', value: `${(f.rssBytesPerDevice / 1024).toFixed(1)} KiB` },
      { label: 'RSS peak', value: `${mb(f.rssBytesPeak)} MB` },
      { label: 'RSS baseline', value: `${mb(f.rssBytesBaseline)} MB` },
      { label: 'CPU share (cores busy, on average)', value: String(f.cpuShare) },
      { label: 'CPU user / system', value: `${f.cpuUserS} s / ${f.cpuSystemS} s` },
    ]),
  ].join('\n');
}

/** [tS[i], values[i]] pairs. */
function overTime(tS: number[], values: number[]): [number, number][] {
  const out: [number, number][] = [];
  const len = Math.min(tS.length, values.length);
  for (let i = 0; i < len; i++) out.push([tS[i]!, values[i]!]);
  return out;
}

function figure(svg: string, caption: string): string {
  return `<figure>\n${svg}\n<figcaption>${esc(caption)}</figcaption>\n</figure>`;
}

/** [tS[i], v] pairs with NaN where a second has no sample: the line breaks there instead of bridging it. */
function withGaps(tS: number[], values: (number | null)[]): [number, number][] {
  const out: [number, number][] = [];
  const len = Math.min(tS.length, values.length);
  for (let i = 0; i < len; i++) out.push([tS[i]!, values[i] ?? NaN]);
  return out;
}

function percentileLines(tS: number[], p: PercentileSeries): PlotSeries[] {
  return [
    { name: 'p50', points: withGaps(tS, p.p50Ms) },
    { name: 'p90', points: withGaps(tS, p.p90Ms) },
    { name: 'p99', points: withGaps(tS, p.p99Ms) },
    { name: 'p99.9', points: withGaps(tS, p.p999Ms) },
  ];
}

/** The warm-up (before the window) and the drain (after it, to the end of the last second). */
export function windowBands(s: LoadgenSummary): PlotBand[] {
  const endOfRunS = s.series.tS.length === 0 ? 0 : s.series.tS[s.series.tS.length - 1]! + 1;
  const bands: PlotBand[] = [];
  if (s.window.endS <= s.window.startS) {
    if (endOfRunS > 0) bands.push({ from: 0, to: endOfRunS, label: UNMEASURED_LABEL, fill: '#d5d8de' });
    return bands;
  }
  if (s.window.startS > 0) bands.push({ from: 0, to: s.window.startS, label: WARMUP_LABEL, fill: '#f6d58e' });
  if (endOfRunS > s.window.endS) bands.push({ from: s.window.endS, to: endOfRunS, label: DRAIN_LABEL, fill: '#d5d8de' });
  return bands;
}

function plotsSection(s: LoadgenSummary): string {
  const size = { width: PLOT_WIDTH, height: PLOT_HEIGHT };
  // The marked moment explains a storm at the start: until then devices were still connecting.
  const marks = s.fleet.fleetConnectS === null ? [] : [{ x: s.fleet.fleetConnectS, label: CONNECTED_LABEL }];
  const timeAxis = { bands: windowBands(s), marks };
  const outside = timeAxis.bands.map((b) => (b.label === WARMUP_LABEL ? 'the warm-up before' : 'the drain after'));
  const shaded =
    (s.window.endS <= s.window.startS
      ? 'Shaded: the whole run, which stopped before its measured window started; the tables hold no measured figures.'
      : outside.length === 0
      ? `The whole run is the measured window (${s.window.startS} s to ${s.window.endS} s).`
      : `Shaded: ${outside.join(' and ')} the measured window (${s.window.startS} s to ${s.window.endS} s); the tables count only the window.`) +
    (s.fleet.fleetConnectS === null ? ' The fleet was never all connected at once.' : ` Dashed: every device connected (${s.fleet.fleetConnectS} s).`);
  const latency: PlotSeries[] = Object.entries(s.latency)
    .filter(([, l]) => l.distribution.length > 0)
    .map(([m, l]) => ({ name: m, points: l.distribution }));
  const t = s.series.tS;
  const plots = [
    figure(
      linePlot({ id: 'plot-latency', title: 'Latency by percentile', xLabel: 'percentile', yLabel: 'latency (ms, log scale)', xLog: 'percentile', yLog: true, series: latency, ...size }),
      'Each metric\u2019s whole measured window (HdrHistogram). The tail is to the right: 99% is as far from 90% as 90% is from 0%.',
    ),
    figure(
      linePlot({ id: 'plot-ack-over-time', title: 'Ack latency over time', xLabel: 'time since start (s)', yLabel: 'ack latency (ms, log scale)', yLog: true, series: percentileLines(t, s.series.ackLatency), ...timeAxis, ...size }),
      `p50, p90, p99 and p99.9 of the acks received in each second; a gap is a second with no ack. ${shaded}`,
    ),
    figure(
      linePlot({ id: 'plot-result-over-time', title: 'Result latency over time', xLabel: 'time since start (s)', yLabel: 'result latency (ms, log scale)', yLog: true, series: percentileLines(t, s.series.resultLatency), ...timeAxis, ...size }),
      `p50, p90, p99 and p99.9 of the results received in each second (send to result at the device); a gap is a second with no result. ${shaded}`,
    ),
    figure(
      linePlot({
        id: 'plot-throughput',
        title: 'Throughput',
        xLabel: 'time since start (s)',
        yLabel: 'events per second',
        series: [
          { name: 'sent', points: overTime(t, s.series.sentPerS) },
          { name: 'acked', points: overTime(t, s.series.ackedPerS) },
          { name: 'results', points: overTime(t, s.series.resultsPerS) },
        ],
        ...timeAxis,
        ...size,
      }),
      `Per second of the whole run. ${shaded}`,
    ),
    figure(
      linePlot({ id: 'plot-connected', title: 'Connected devices', xLabel: 'time since start (s)', yLabel: 'devices', series: [{ name: 'connected', points: overTime(t, s.series.connected) }], ...timeAxis, ...size }),
      `At the end of each second. ${shaded}`,
    ),
    figure(
      linePlot({ id: 'plot-errors', title: 'Errors', xLabel: 'time since start (s)', yLabel: 'errors per second', series: [{ name: 'errors', points: overTime(t, s.series.errorsPerS) }], ...timeAxis, ...size }),
      `Failed calls and connections per second, all kinds. ${shaded}`,
    ),
  ];
  return `<h2>Plots</h2>\n<div class="plots">\n${plots.join('\n')}\n</div>`;
}

/** A whole self-contained page: `title` is plain text (escaped here), `body` is HTML. */
export function htmlPage(title: string, body: string[]): string {
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    // Nothing may be fetched: a stray reference fails here instead of leaking a request.
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${esc(title)}</title>`,
    `<style>${CSS}</style>`,
    '</head>',
    '<body>',
    '<main>',
    ...body,
    '</main>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

/** `baselineSection`: the comparison with a baseline run (compare.ts compareSection), shown after the header. */
export function renderReportHtml(s: LoadgenSummary, baselineSection: string | null = null): string {
  return htmlPage(`stratus loadgen: ${s.api} \u2192 ${s.target}, ${s.startedAt}`, [
    header(s),
    ...(baselineSection === null ? [] : [baselineSection]),
    countsSection(s),
    latencySection(s),
    thresholdsSection(s),
    footprintSection(s),
    plotsSection(s),
  ]);
}
