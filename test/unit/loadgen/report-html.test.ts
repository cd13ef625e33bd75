import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PLOT_IDS, renderReportHtml } from '../../../loadgen/report-html.js';
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
    measuredS: 5,
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
  // Seconds with no latency sample (0) are left out rather than drawn as a dive to zero.
  assert.deepEqual(plotSeries(html, 'plot-p99'), [['p99', 3]]);
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
  assert.match(html, /<dt>duration<\/dt><dd>5.2 s run, 5 s measured<\/dd>/);
  assert.match(html, /<dt>environment<\/dt><dd>Node v20.20.2, linux x64, 4 × CPU &lt;img/);

  const none = renderReportHtml(summary({ thresholds: [{ expr: 'x>1', actual: null as unknown as number, ok: false }] }));
  assert.match(none, /<td>nothing measured<\/td>/);
  const all = renderReportHtml(summary({ thresholds: [] }));
  assert.match(all, /<span class="verdict none">no thresholds<\/span>/);
});

test('an empty run still renders every plot, each saying "no data"', () => {
  const empty = summary({
    latency: {},
    series: { tS: [], connected: [], sentPerS: [], ackedPerS: [], resultsPerS: [], errorsPerS: [], latencyP99Ms: [] },
  });
  const html = renderReportHtml(empty);
  assert.equal(html.match(/>no data<\/text>/g)?.length, PLOT_IDS.length);
  assert.match(html, /No latency was measured/);
});

test('deterministic: the same summary gives the same page', () => {
  assert.equal(renderReportHtml(summary()), renderReportHtml(structuredClone(summary())));
});
