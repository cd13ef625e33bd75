/**
 * report.html as a reader sees it: a realistic LoadgenSummary (latency from real HdrHistograms, 30
 * seconds of per-second series) rendered to a file and opened in headless Chromium with no network.
 * Every plot must draw at least one line the browser can measure, and the latency plot one line per
 * metric.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as hdr from 'hdr-histogram-js';
import { percentileDistribution, PLOT_IDS, renderReportHtml } from '../../../loadgen/report-html.js';
import type { LatencyStats, LoadgenSummary } from '../../../loadgen/summary.js';
import { renderedPlots } from '../../helpers/browser.js';

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
    measuredS: 28,
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
    series: { tS, connected, sentPerS, ackedPerS, resultsPerS, errorsPerS, latencyP99Ms },
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
  assert.deepEqual(byId.get('plot-p99')!.series.map((s) => s.points), [30]);
});

test('renderedPlots throws when a page reaches for the network', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'stratus-report-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'leaky.html');
  // 192.0.2.0/24 is TEST-NET-1: the request is made (and recorded) but reaches nobody.
  writeFileSync(file, '<!DOCTYPE html><html><body><img src="http://192.0.2.1/x.png"><svg id="plot-x"></svg></body></html>');
  await assert.rejects(renderedPlots(file), /made network requests: http:\/\/192\.0\.2\.1\/x\.png/);
});
