import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CONNECTED_LABEL, DRAIN_LABEL, OVER_TIME_PLOT_IDS, PLOT_IDS, renderReportHtml, UNMEASURED_LABEL, WARMUP_LABEL } from '../../../loadgen/report-html.js';
import type { LatencyStats, LoadgenSummary } from '../../../loadgen/summary.js';

const EVIL = `<img src=x onerror="alert(1)">`;

function latency(count: number, p50: number): LatencyStats {
  return {
    count,
    minMs: p50 / 4,
    meanMs: p50 * 1.1,
    p50Ms: p50,
    p90Ms: p50 * 2,
    p99Ms: p50 * 4,
    p999Ms: p50 * 8,
    p9999Ms: p50 * 16,
    maxMs: p50 * 20,
    distribution: count === 0 ? [] : [[0, p50 / 4], [50, p50], [90, p50 * 2], [99, p50 * 4], [99.9, p50 * 8], [100, p50 * 20]],
  };
}

function summary(over: Partial<LoadgenSummary> = {}): LoadgenSummary {
  const tS = [0, 1, 2, 3, 4];
  return {
    version: 1,
    startedAt: '2025-01-01T12:00:00.000Z',
    target: `grpc.example:443/${EVIL}`,
    api: 'stratus',
    profile: 'mobile',
    loop: 'closed',
    options: { devices: 10, note: EVIL, tags: ['a', 'b'], token: null, tls: true },
    environment: { node: 'v20.20.2', platform: 'linux x64', cpuModel: `CPU ${EVIL}`, cpus: 4, memoryBytes: 8 * 2 ** 30 },
    runS: 5.2,
    measuredS: 3,
    window: { startS: 1, endS: 4 },
    fleet: { devices: 10, connections: 10, workers: 1, connectedPeak: 10, fleetConnectS: 0.4, slowReaders: 0 },
    counts: {
      sent: 500,
      acked: 490,
      results: 480,
      rejected: { RESOURCE_EXHAUSTED: 10 },
      errors: { UNAVAILABLE: 2, [EVIL]: 1 },
      missing: 7,
      duplicates: 0,
      wrong: 3,
      unacked: 0,
      heldUnsent: 0,
      reconnects: 2,
    },
    throughput: { sentPerS: 100, ackedPerS: 98, resultsPerS: 96 },
    latency: { ack: latency(490, 2), result: latency(480, 5), ackSlow: latency(0, 0) },
    series: {
      tS,
      connected: [4, 10, 10, 10, 10],
      sentPerS: [40, 100, 120, 120, 120],
      ackedPerS: [38, 98, 118, 118, 118],
      resultsPerS: [30, 96, 118, 118, 118],
      errorsPerS: [0, 0, 3, 0, 0],
      latencyP99Ms: [0, 8.5, 9, 0, 7],
      // Second 0 (warm-up) and 3 have no ack; the result lines start at second 1.
      ackLatency: { p50Ms: [null, 2, 2.5, null, 3], p90Ms: [null, 4, 5, null, 6], p99Ms: [null, 8.5, 9, null, 7], p999Ms: [null, 40, 90, null, 300] },
      resultLatency: { p50Ms: [null, 5, 5, 6, 6], p90Ms: [null, 10, 10, 11, 12], p99Ms: [null, 20, 21, 22, 23], p999Ms: [null, 80, 81, 82, 83] },
    },
    footprint: { rssBytesBaseline: 50_000_000, rssBytesPeak: 62_500_000, rssBytesPerDevice: 12_800, cpuUserS: 1.25, cpuSystemS: 0.5, cpuShare: 0.34 },
    thresholds: [
      { expr: 'ack.p99<10ms', actual: 8, ok: true },
      { expr: `missing==0 ${EVIL}`, actual: 7, ok: false },
    ],
    ...over,
  };
}

/** The series paths of one plot: [name, data-points]. */
function plotSeries(html: string, id: string): [string, number][] {
  const svg = new RegExp(`<svg [^>]*id="${id}"[\\s\\S]*?</svg>`).exec(html);
  assert.ok(svg !== null, `${id} present`);
  return [...svg[0].matchAll(/<path class="series" data-series="([^"]*)" data-points="(\d+)"/g)].map((m) => [m[1]!, Number(m[2])]);
}

function row(html: string, label: string): string {
  const m = new RegExp(`<tr[^>]*><td>${label.replace(/[()]/g, '\\$&')}</td>[\\s\\S]*?</tr>`).exec(html);
  assert.ok(m !== null, `row ${label}`);
  return m[0];
}

test('every plot is there, in order, with the series the summary holds', () => {
  const html = renderReportHtml(summary());
  const ids = [...html.matchAll(/<svg [^>]*id="(plot-[^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(ids, [...PLOT_IDS]);
  // Latency: one line per metric with samples (ackSlow has none), one point per distribution row.
  assert.deepEqual(plotSeries(html, 'plot-latency'), [['ack', 6], ['result', 6]]);
  assert.deepEqual(plotSeries(html, 'plot-throughput'), [['sent', 5], ['acked', 5], ['results', 5]]);
  assert.deepEqual(plotSeries(html, 'plot-connected'), [['connected', 5]]);
  assert.deepEqual(plotSeries(html, 'plot-errors'), [['errors', 5]]);
  // Seconds with no latency sample (null) are left out rather than drawn as a dive to zero.
  assert.deepEqual(plotSeries(html, 'plot-ack-over-time'), [['p50', 3], ['p90', 3], ['p99', 3], ['p99.9', 3]]);
  assert.deepEqual(plotSeries(html, 'plot-result-over-time'), [['p50', 4], ['p90', 4], ['p99', 4], ['p99.9', 4]]);
});

/** The svg element of one plot. */
function plotSvg(html: string, id: string): string {
  const svg = new RegExp(`<svg [^>]*id="${id}"[\\s\\S]*?</svg>`).exec(html);
  assert.ok(svg !== null, `${id} present`);
  return svg[0];
}

/** [label, x, width] of each shaded band in a plot, and the frame's x and width. */
function bandsOf(svg: string): { bands: [string, number, number][]; frame: [number, number] } {
  const bands = [...svg.matchAll(/<rect class="band" data-band="([^"]*)"[^>]* x="([\d.]+)" y="[\d.]+" width="([\d.]+)"/g)].map(
    (m) => [m[1]!, Number(m[2]), Number(m[3])] as [string, number, number],
  );
  const f = /<rect class="frame" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"/.exec(svg)!;
  return { bands, frame: [Number(f[1]), Number(f[2])] };
}

test('over-time plots shade the warm-up and the drain, with a legend entry each; the percentile plot does not', () => {
  const html = renderReportHtml(summary());
  for (const id of OVER_TIME_PLOT_IDS) {
    const svg = plotSvg(html, id);
    const { bands, frame } = bandsOf(svg);
    assert.deepEqual(bands.map((b) => b[0]), [WARMUP_LABEL, DRAIN_LABEL], id);
    // x axis 0..5 s (the last second ends at 5): warm-up [0, 1) is a fifth, drain [4, 5) the last fifth.
    const [fx, fw] = frame;
    const near = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 0.02, `${id} ${what}: ${a} ~ ${b}`);
    near(bands[0]![1], fx, 'warm-up x');
    near(bands[0]![2], fw / 5, 'warm-up width');
    near(bands[1]![1], fx + (fw * 4) / 5, 'drain x');
    near(bands[1]![2], fw / 5, 'drain width');
    assert.match(svg, new RegExp(`<g class="legend-item legend-band"><title>${WARMUP_LABEL}</title><rect [^>]*/><text [^>]*>${WARMUP_LABEL}</text>`), id);
    assert.match(svg, new RegExp(`<g class="legend-item legend-band"><title>${DRAIN_LABEL}</title>`), id);
  }
  assert.doesNotMatch(plotSvg(html, 'plot-latency'), /class="band"|legend-band|class="mark"/);
  // The moment the whole fleet was connected (0.4 s), dashed on every over-time plot.
  for (const id of OVER_TIME_PLOT_IDS) assert.match(plotSvg(html, id), new RegExp(`<line class="mark" data-mark="${CONNECTED_LABEL}" data-x="0.4" `), id);
  assert.match(html, / Dashed: every device connected \(0.4 s\)\./);
  const never = renderReportHtml(summary({ fleet: { ...summary().fleet, fleetConnectS: null } }));
  assert.doesNotMatch(never, /class="mark"/);
  assert.match(never, /The fleet was never all connected at once\./);
  assert.match(html, /Shaded: the warm-up before and the drain after the measured window \(1 s to 4 s\); the tables count only the window\./);
  assert.match(html, /<dt>duration<\/dt><dd>5.2 s run, 3 s measured \(from 1 s to 4 s after the start\)<\/dd>/);

  // No warm-up and no drain: nothing shaded, and the caption says the whole run was measured.
  const whole = renderReportHtml(summary({ window: { startS: 0, endS: 5 } }));
  for (const id of OVER_TIME_PLOT_IDS) assert.doesNotMatch(plotSvg(whole, id), /class="band"|legend-band/, id);
  assert.match(whole, /The whole run is the measured window \(0 s to 5 s\)\./);
  const warmOnly = renderReportHtml(summary({ window: { startS: 2, endS: 5 } }));
  assert.deepEqual(bandsOf(plotSvg(warmOnly, 'plot-throughput')).bands.map((b) => b[0]), [WARMUP_LABEL]);
  // A run stopped before its window started (window 0..0): all of it shaded as not measured.
  const none = renderReportHtml(summary({ window: { startS: 0, endS: 0 } }));
  const { bands: noWindow, frame } = bandsOf(plotSvg(none, 'plot-throughput'));
  assert.deepEqual(noWindow.map((b) => [b[0], b[1], b[2]]), [[UNMEASURED_LABEL, frame[0], frame[1]]]);
  assert.match(none, /Shaded: the whole run, which stopped before its measured window started/);
  assert.doesNotMatch(none, /<p class="warn">/);
});

test('latency over time: a log y axis, and a second with no sample breaks the line instead of bridging it', () => {
  const html = renderReportHtml(summary());
  const ack = plotSvg(html, 'plot-ack-over-time');
  const yTicks = [.../<g class="y-ticks"[^>]*>([\s\S]*?)<\/g>/.exec(ack)![1]!.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
  // 2 ms .. 300 ms: whole decades 1 .. 1000.
  assert.deepEqual(yTicks, ['1', '10', '100', '1000']);
  assert.match(ack, /ack latency \(ms, log scale\)/);
  // Seconds 1, 2 then (gap at 3) second 4: two sub-paths, the lone point marked.
  const d = /<path class="series" data-series="p50" data-points="3" d="([^"]*)"/.exec(ack)![1]!;
  assert.equal(d.match(/M/g)?.length, 2, d);
  assert.equal(d.match(/L/g)?.length, 1, d);
  assert.equal(ack.match(/<circle class="marker"/g)?.length, 4, 'one marker per percentile line for the lone second 4');
  const result = plotSvg(html, 'plot-result-over-time');
  assert.equal(/<path class="series" data-series="p50" data-points="4" d="([^"]*)"/.exec(result)![1]!.match(/M/g)?.length, 1);
});

test('a warning when the fleet was still connecting inside the measured window', () => {
  const warn = (fleetConnectS: number | null) => renderReportHtml(summary({ fleet: { ...summary().fleet, fleetConnectS } })).match(/<p class="warn">.*<\/p>/)?.[0] ?? '';
  // Window 1 s .. 4 s.
  assert.equal(warn(0.4), '');
  assert.equal(warn(1), '');
  assert.equal(
    warn(2.73),
    '<p class="warn"><strong>Connect storm in the figures.</strong> The fleet finished connecting at 2.73 s, 1.7 s into the measured window (1 s to 4 s): latency and throughput below include devices still connecting; see the latency-over-time plots.</p>',
  );
  assert.match(warn(4), /finished connecting at 4 s, after the measured window \(1 s to 4 s\)/);
  assert.match(warn(null), /The fleet was never all connected at once \(peak 10 of 10\): /);
  // In the header, before the options.
  const html = renderReportHtml(summary({ fleet: { ...summary().fleet, fleetConnectS: 2 } }));
  assert.ok(html.indexOf('<p class="warn">') > html.indexOf('</dl>') && html.indexOf('<p class="warn">') < html.indexOf('<details>'));
});

test('a baseline section goes right after the header', () => {
  const html = renderReportHtml(summary(), '<h2>Compared with the baseline</h2>');
  const at = (text: string) => html.indexOf(text);
  assert.ok(at('</dl>') < at('<h2>Compared with the baseline</h2>') && at('<h2>Compared with the baseline</h2>') < at('<h2>Counts</h2>'));
  assert.equal(renderReportHtml(summary()).indexOf('Compared with'), -1);
});

test('self-contained: no script, no external src/href, no stylesheet link, a CSP that fetches nothing', () => {
  const html = renderReportHtml(summary());
  assert.doesNotMatch(html, /<script/i);
  assert.doesNotMatch(html, /<link/i);
  assert.doesNotMatch(html, /@import|url\(/i);
  assert.doesNotMatch(html, /\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?\/\//i);
  // Not even a local one (summary text that reads "src=" is escaped, so it is never inside a tag).
  assert.doesNotMatch(html, /<[^>]*\b(?:src|href)\s*=/i);
  assert.match(html, /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">/);
});

test('every string from the summary is escaped', () => {
  const html = renderReportHtml(summary());
  assert.ok(!html.includes(EVIL), 'the raw markup appears nowhere');
  assert.doesNotMatch(html, /<img/);
  const escaped = '&lt;img src=x onerror=&quot;alert(1)&quot;&gt;';
  // target (title, header), an option, the CPU model, an error kind, a threshold.
  assert.ok(html.split(escaped).length - 1 >= 6, `escaped form found ${html.split(escaped).length - 1} times`);
  assert.ok(html.includes(`<tr class="bad"><td>${escaped}</td><td>1</td></tr>`), 'the error kind, escaped and highlighted');
});

test('counts: every figure shown, and non-zero missing/duplicates/wrong/errors highlighted', () => {
  const html = renderReportHtml(summary());
  for (const [label, value] of [['sent', '500'], ['acked', '490'], ['results', '480'], ['reconnects', '2'], ['RESOURCE_EXHAUSTED', '10']] as const) {
    assert.match(row(html, label), new RegExp(`<td>${value}</td>`), label);
  }
  assert.match(row(html, 'missing (acked, no result)'), /^<tr class="bad"><td>missing \(acked, no result\)<\/td><td>7<\/td>/);
  assert.match(row(html, 'wrong values'), /^<tr class="bad">/);
  assert.match(row(html, 'duplicates'), /^<tr><td>duplicates<\/td><td>0<\/td>/);
  assert.match(row(html, 'UNAVAILABLE'), /^<tr class="bad"><td>UNAVAILABLE<\/td><td>2<\/td>/);
  // Rejections are the server working as designed: listed, not highlighted.
  assert.match(row(html, 'RESOURCE_EXHAUSTED'), /^<tr><td>/);

  const clean = renderReportHtml(summary({ counts: { ...summary().counts, missing: 0, wrong: 0, errors: {} } }));
  assert.doesNotMatch(clean, /<tr class="bad"><td>(missing|duplicates|wrong)/);
  assert.match(clean, /<tr class="group"><th colspan="2">errors, by kind<\/th><\/tr>\n<tr><td>none<\/td><td>0<\/td><\/tr>/);
});

test('latency table: p50 .. max and count per metric; a metric with no samples says so', () => {
  const html = renderReportHtml(summary());
  assert.match(row(html, 'ack'), /<td>ack<\/td><td>2.00<\/td><td>4.00<\/td><td>8.00<\/td><td>16.0<\/td><td>32.0<\/td><td>40.0<\/td><td>490<\/td>/);
  assert.match(row(html, 'result'), /<td>5.00<\/td><td>10.0<\/td><td>20.0<\/td><td>40.0<\/td><td>80.0<\/td><td>100<\/td><td>480<\/td>/);
  assert.match(row(html, 'ackSlow'), /<td colspan="6">no samples<\/td><td>0<\/td>/);
});

test('thresholds pass/fail, footprint units, header', () => {
  const html = renderReportHtml(summary());
  assert.match(html, /<tr><td><code>ack\.p99&lt;10ms<\/code><\/td><td>8<\/td><td><span class="verdict pass">pass<\/span>/);
  assert.match(html, /<tr class="bad"><td><code>missing==0 &lt;img[^<]*<\/code><\/td><td>7<\/td><td><span class="verdict fail">FAIL<\/span>/);
  assert.match(html, /<h1>stratus loadgen <span class="verdict fail">thresholds: 1 of 2 FAIL<\/span><\/h1>/);
  assert.match(row(html, 'RSS per device'), /<td>12.5 KiB<\/td>/);
  assert.match(row(html, 'RSS peak'), /<td>62.5 MB<\/td>/);
  assert.match(row(html, 'CPU share (cores busy, on average)'), /<td>0.34<\/td>/);
  for (const [k, v] of [['api', 'stratus'], ['profile', 'mobile'], ['loop', 'closed'], ['started at', '2025-01-01T12:00:00.000Z']]) {
    assert.match(html, new RegExp(`<dt>${k}</dt><dd>${v}`), k);
  }
  assert.match(html, /<dt>devices<\/dt><dd>10 over 10 connection\(s\), 1 worker thread\(s\)<\/dd>/);
  assert.match(html, /<dt>environment<\/dt><dd>Node v20.20.2, linux x64, 4 × CPU &lt;img/);

  const none = renderReportHtml(summary({ thresholds: [{ expr: 'x>1', actual: null as unknown as number, ok: false }] }));
  assert.match(none, /<td>nothing measured<\/td>/);
  const all = renderReportHtml(summary({ thresholds: [] }));
  assert.match(all, /<span class="verdict none">no thresholds<\/span>/);
});

test('an empty run still renders every plot, each saying "no data"', () => {
  const empty = summary({
    latency: {},
    series: {
      tS: [], connected: [], sentPerS: [], ackedPerS: [], resultsPerS: [], errorsPerS: [], latencyP99Ms: [],
      ackLatency: { p50Ms: [], p90Ms: [], p99Ms: [], p999Ms: [] }, resultLatency: { p50Ms: [], p90Ms: [], p99Ms: [], p999Ms: [] },
    },
  });
  const html = renderReportHtml(empty);
  assert.equal(html.match(/>no data<\/text>/g)?.length, PLOT_IDS.length);
  assert.match(html, /No latency was measured/);
});

test('deterministic: the same summary gives the same page', () => {
  assert.equal(renderReportHtml(summary()), renderReportHtml(structuredClone(summary())));
});
