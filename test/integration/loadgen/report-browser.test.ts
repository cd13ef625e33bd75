/**
 * report.html as a reader sees it: a realistic LoadgenSummary (latency from real HdrHistograms, 30
 * seconds of per-second series) rendered to a file and opened in headless Chromium with no network.
 * Every plot must draw at least one line the browser can measure, and the latency plot one line per
 * metric; the over-time plots shade the warm-up and the drain (a band the browser lays out with a
 * width, and a legend entry naming it), the latency-over-time plots have log-axis ticks. compare.html
 * (two runs overlaid) is opened the same way.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import * as hdr from 'hdr-histogram-js';
import { chromium } from 'playwright-core';
import { COMPARE_PLOT_ID, compareReports } from '../../../loadgen/compare.js';
import { DRAIN_LABEL, OVER_TIME_PLOT_IDS, percentileDistribution, PLOT_IDS, renderReportHtml, WARMUP_LABEL } from '../../../loadgen/report-html.js';
import type { LatencyStats, LoadgenSummary, PercentileSeries } from '../../../loadgen/summary.js';
import { CHROMIUM_PATH, renderedPlots } from '../../helpers/browser.js';

/** mulberry32: a seeded generator, so the summary (and the page) is the same on every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A microsecond histogram of `count` log-normal latencies around medianMs, with a few slow outliers. */
function latencyHistogram(rand: () => number, count: number, medianMs: number): hdr.Histogram {
  const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3, bitBucketSize: 32, useWebAssembly: false });
  for (let i = 0; i < count; i++) {
    const normal = Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    const outlier = rand() < 0.002 ? 20 : 1;
    h.recordValue(Math.max(1, Math.round(medianMs * 1000 * Math.exp(0.5 * normal) * outlier)));
  }
  return h;
}

function stats(h: hdr.Histogram): LatencyStats {
  const at = (p: number) => h.getValueAtPercentile(p) / 1000;
  return {
    count: h.totalCount,
    minMs: h.minNonZeroValue / 1000,
    meanMs: h.mean / 1000,
    p50Ms: at(50),
    p90Ms: at(90),
    p99Ms: at(99),
    p999Ms: at(99.9),
    p9999Ms: at(99.99),
    maxMs: h.maxValue / 1000,
    distribution: percentileDistribution(h),
  };
}

function realisticSummary(): LoadgenSummary {
  const rand = random(42);
  const metrics = { connect: 4, ack: 2.5, result: 9, reconnect: 6, sendLag: 0.3 };
  const latency: Record<string, LatencyStats> = {};
  for (const [m, medianMs] of Object.entries(metrics)) latency[m] = stats(latencyHistogram(rand, m === 'reconnect' ? 1500 : 5000, medianMs));

  const devices = 1000;
  const seconds = 30;
  const tS = Array.from({ length: seconds }, (_, i) => i);
  // The fleet connects over the first 3 s; a broker hiccup at 17-19 s drops some devices.
  const connected = tS.map((t) => (t < 3 ? Math.round((devices * (t + 1)) / 3) : t >= 17 && t <= 19 ? devices - 120 : devices));
  const sentPerS = connected.map((c) => Math.round(c * 10 * (0.97 + 0.06 * rand())));
  const ackedPerS = sentPerS.map((s, i) => (i >= 17 && i <= 19 ? Math.round(s * 0.8) : s));
  const resultsPerS = ackedPerS.map((a, i) => (i === 0 ? Math.round(a * 0.6) : a));
  const errorsPerS = tS.map((t) => (t >= 17 && t <= 19 ? 40 + t : t === 5 ? 1 : 0));
  const latencyP99Ms = tS.map((t) => (t >= 17 && t <= 19 ? 80 + t : 6 + 2 * rand()));
  // Per-second percentiles: nothing in second 0 (connecting), a connect storm in second 1, the hiccup at 17-19.
  const percentiles = (medianMs: number): PercentileSeries => {
    const at = (k: number) => tS.map((t) => (t === 0 ? null : Math.round(medianMs * k * (t === 1 ? 40 : t >= 17 && t <= 19 ? 10 : 1 + 0.2 * rand()) * 1000) / 1000));
    return { p50Ms: at(1), p90Ms: at(2), p99Ms: at(3), p999Ms: at(6) };
  };
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

  return {
    version: 1,
    startedAt: '2025-01-01T12:00:00.000Z',
    target: '127.0.0.1:50051',
    api: 'stratus',
    profile: 'iot',
    loop: 'open',
    options: { devices, ratePerDevice: 10, batch: 1, warmupS: 2, durationS: 28, seed: 42, threshold: ['ack.p99<50ms', 'missing==0'], tls: false, token: null },
    environment: { node: 'v20.20.2', platform: 'linux x64', cpuModel: 'Test CPU @ 3.0GHz', cpus: 8, memoryBytes: 16 * 2 ** 30 },
    runS: 30.4,
    measuredS: 25,
    window: { startS: 2, endS: 27 },
    fleet: { devices, connections: 1000, workers: 2, connectedPeak: devices, fleetConnectS: 2.7, slowReaders: 0 },
    counts: {
      sent: sum(sentPerS),
      acked: sum(ackedPerS),
      results: sum(resultsPerS),
      rejected: { RESOURCE_EXHAUSTED: 12 },
      errors: { UNAVAILABLE: 120, RESET: 14, '<img src=x onerror=alert(1)>': 1 },
      missing: 3,
      duplicates: 0,
      wrong: 0,
      unacked: 0,
      heldUnsent: 240,
      reconnects: 134,
    },
    throughput: { sentPerS: 9950, ackedPerS: 9800, resultsPerS: 9790 },
    latency,
    series: { tS, connected, sentPerS, ackedPerS, resultsPerS, errorsPerS, latencyP99Ms, ackLatency: percentiles(2.5), resultLatency: percentiles(9) },
    footprint: { rssBytesBaseline: 60e6, rssBytesPeak: 95e6, rssBytesPerDevice: 35_000, cpuUserS: 9.1, cpuSystemS: 2.3, cpuShare: 0.38 },
    thresholds: [
      { expr: 'ack.p99<50ms', actual: latency.ack!.p99Ms, ok: latency.ack!.p99Ms < 50 },
      { expr: 'missing==0', actual: 3, ok: false },
    ],
  };
}

test('report.html in Chromium: every plot draws a line, one latency line per metric, no network', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'stratus-report-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const summary = realisticSummary();
  const file = join(dir, 'report.html');
  writeFileSync(file, renderReportHtml(summary));

  const plots = await renderedPlots(file);
  assert.deepEqual(plots.map((p) => p.id), [...PLOT_IDS]);
  for (const plot of plots) {
    assert.ok(plot.series.length >= 1, `${plot.id}: no series`);
    const drawn = plot.series.filter((s) => s.points > 1 && s.pathLength > 0);
    assert.ok(drawn.length >= 1, `${plot.id}: nothing drawn: ${JSON.stringify(plot.series)}`);
  }

  const byId = new Map(plots.map((p) => [p.id, p]));
  const latency = byId.get('plot-latency')!;
  assert.deepEqual(latency.series.map((s) => s.name).sort(), Object.keys(summary.latency).sort());
  for (const s of latency.series) {
    assert.equal(s.points, summary.latency[s.name]!.distribution.length, `${s.name}: one point per distribution row`);
    assert.ok(s.pathLength > 0, `${s.name}: drawn`);
  }
  const throughput = byId.get('plot-throughput')!;
  assert.deepEqual(throughput.series.map((s) => [s.name, s.points]), [['sent', 30], ['acked', 30], ['results', 30]]);
  assert.ok(throughput.series.every((s) => s.pathLength > 0));
  assert.deepEqual(byId.get('plot-connected')!.series.map((s) => s.points), [30]);
  assert.deepEqual(byId.get('plot-errors')!.series.map((s) => s.points), [30]);
  for (const id of ['plot-ack-over-time', 'plot-result-over-time']) {
    // Second 0 has no sample: 29 points per percentile, each line drawn.
    assert.deepEqual(byId.get(id)!.series.map((s) => [s.name, s.points]), [['p50', 29], ['p90', 29], ['p99', 29], ['p99.9', 29]], id);
    assert.ok(byId.get(id)!.series.every((s) => s.pathLength > 0), id);
  }

  const details = new Map((await renderedDetails(file)).map((d) => [d.id, d]));
  for (const id of OVER_TIME_PLOT_IDS) {
    const d = details.get(id)!;
    // Warm-up [0, 2) and drain [27, 30) of a 30 s axis, as laid out: 2/30 and 3/30 of the frame.
    assert.deepEqual(d.bands.map((b) => b.label), [WARMUP_LABEL, DRAIN_LABEL], id);
    const near = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 0.5, `${id} ${what}: ${a} ~ ${b}`);
    near(d.bands[0]!.x, d.frame.x, 'warm-up starts at the left edge');
    near(d.bands[0]!.width, (d.frame.width * 2) / 30, 'warm-up width');
    near(d.bands[1]!.x + d.bands[1]!.width, d.frame.x + d.frame.width, 'drain ends at the right edge');
    near(d.bands[1]!.width, (d.frame.width * 3) / 30, 'drain width');
    assert.deepEqual(d.legendBands, [WARMUP_LABEL, DRAIN_LABEL], id);
    // The fleet connected at 2.7 s: a vertical line 2.7/30 of the way.
    assert.equal(d.marks.length, 1, id);
    near(d.marks[0]!.x, d.frame.x + (d.frame.width * 2.7) / 30, 'fleet-connected mark');
  }
  assert.deepEqual(details.get('plot-latency')!.bands, []);
  // Log axes: decades, a tick a decade, spaced evenly.
  for (const id of ['plot-ack-over-time', 'plot-result-over-time']) {
    const ticks = details.get(id)!.yTicks;
    assert.ok(ticks.length >= 3, `${id}: ${JSON.stringify(ticks)}`);
    const value = (label: string) => (label.endsWith('k') ? Number(label.slice(0, -1)) * 1000 : Number(label));
    ticks.forEach((t, i) => assert.equal(value(t.label), value(ticks[0]!.label) * 10 ** i, `${id} tick ${i}: ${t.label}`));
    const gaps = ticks.slice(1).map((t, i) => ticks[i]!.y - t.y);
    assert.ok(gaps.every((g) => Math.abs(g - gaps[0]!) < 0.5 && g > 0), `${id}: decades evenly spaced: ${gaps}`);
  }
});

interface PlotDetails {
  id: string;
  frame: { x: number; width: number };
  bands: { label: string; x: number; width: number }[];
  legendBands: string[];
  marks: { x: number }[];
  yTicks: { label: string; y: number }[];
}

// Browser-side shapes for the evaluate callback (the project compiles without lib.dom).
interface DomBox {
  x: number;
  y: number;
  width: number;
}
interface DomEl {
  id: string;
  textContent: string | null;
  getAttribute(name: string): string | null;
  getBBox(): DomBox;
  querySelector(selector: string): DomEl | null;
  querySelectorAll(selector: string): ArrayLike<DomEl>;
}
declare const document: { querySelectorAll(selector: string): ArrayLike<DomEl> };

/** What Chromium laid out in each plot: bands (with their rendered box), legend swatches, y ticks. */
async function renderedDetails(file: string): Promise<PlotDetails[]> {
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: ['--no-sandbox'], headless: true });
  try {
    const page = await browser.newPage();
    await page.route(/^(?!file:)/, (route) => route.abort('blockedbyclient'));
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
    return await page.evaluate(() =>
      Array.from(document.querySelectorAll('svg[id^="plot-"]')).map((svg) => {
        const frame = svg.querySelector('rect.frame')!.getBBox();
        return {
          id: svg.id,
          frame: { x: frame.x, width: frame.width },
          bands: Array.from(svg.querySelectorAll('rect.band')).map((r) => ({ label: r.getAttribute('data-band') ?? '', x: r.getBBox().x, width: r.getBBox().width })),
          legendBands: Array.from(svg.querySelectorAll('.legend-band text')).map((t) => t.textContent ?? ''),
          marks: Array.from(svg.querySelectorAll('line.mark')).map((l) => ({ x: l.getBBox().x })),
          yTicks: Array.from(svg.querySelectorAll('.y-ticks text')).map((t) => ({ label: t.textContent ?? '', y: t.getBBox().y })),
        };
      }),
    );
  } finally {
    await browser.close();
  }
}

test('compare.html in Chromium: both runs\' ack and result curves drawn on one plot, the delta table, no network', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'stratus-compare-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const a = realisticSummary();
  const b = { ...realisticSummary(), startedAt: '2025-01-01T13:00:00.000Z' };
  b.latency = { ...b.latency, ack: { ...b.latency.ack!, distribution: b.latency.ack!.distribution.map(([p, v]) => [p, v * 1.5] as [number, number]) } };
  for (const [name, s] of [['a', a], ['b', b]] as const) {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'summary.json'), JSON.stringify(s));
  }
  const { file } = compareReports(join(dir, 'a'), join(dir, 'b'), dir);
  const plots = await renderedPlots(file);
  assert.deepEqual(plots.map((p) => p.id), [COMPARE_PLOT_ID]);
  const rows = a.latency.ack!.distribution.length;
  assert.deepEqual(plots[0]!.series.map((s) => [s.name, s.points]), [['A ack', rows], ['A result', a.latency.result!.distribution.length], ['B ack', rows], ['B result', b.latency.result!.distribution.length]]);
  assert.ok(plots[0]!.series.every((s) => s.pathLength > 0), JSON.stringify(plots[0]!.series));
  const [detail] = await renderedDetails(file);
  assert.ok(detail!.yTicks.length >= 2, 'a log y axis with ticks');
});

test('renderedPlots throws when a page reaches for the network', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'stratus-report-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'leaky.html');
  // 192.0.2.0/24 is TEST-NET-1: the request is made (and recorded) but reaches nobody.
  writeFileSync(file, '<!DOCTYPE html><html><body><img src="http://192.0.2.1/x.png"><svg id="plot-x"></svg></body></html>');
  await assert.rejects(renderedPlots(file), /made network requests: http:\/\/192\.0\.2\.1\/x\.png/);
});
