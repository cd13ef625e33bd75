import assert from 'node:assert/strict';
import { test } from 'node:test';
import { escapeXml, linePlot, percentileAxisX, PERCENTILE_TICKS, type LinePlotOptions } from '../../../loadgen/svg-plot.js';

interface ParsedPath {
  name: string;
  dataPoints: number;
  /** [x, y] in px, one per M/L command. */
  coords: [number, number][];
  stroke: string;
}

function paths(svg: string): ParsedPath[] {
  const out: ParsedPath[] = [];
  for (const m of svg.matchAll(/<path class="series" data-series="([^"]*)" data-points="(\d+)" d="([^"]*)"([^>]*)>/g)) {
    const coords = [...m[3]!.matchAll(/[ML](-?[\d.]+) (-?[\d.]+)/g)].map((c) => [Number(c[1]), Number(c[2])] as [number, number]);
    out.push({ name: m[1]!, dataPoints: Number(m[2]), coords, stroke: /stroke="([^"]*)"/.exec(m[4]!)?.[1] ?? '' });
  }
  return out;
}

/** The plot area, from the frame rectangle. */
function frame(svg: string): { x: number; y: number; w: number; h: number } {
  const m = /<rect class="frame" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/.exec(svg);
  assert.ok(m !== null, 'frame drawn');
  return { x: Number(m[1]), y: Number(m[2]), w: Number(m[3]), h: Number(m[4]) };
}

function tickLabels(svg: string, axis: 'x' | 'y'): string[] {
  const group = new RegExp(`<g class="${axis}-ticks"[^>]*>([\\s\\S]*?)</g>`).exec(svg);
  assert.ok(group !== null, `${axis} ticks drawn`);
  return [...group[1]!.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]!);
}

const base: Omit<LinePlotOptions, 'series'> = { id: 'plot-t', title: 'T', xLabel: 'x', yLabel: 'y' };

test('one path per series, with exactly the points given, in distinct colours', () => {
  const ramp = (n: number, k: number) => Array.from({ length: n }, (_, i) => [i, i * k] as [number, number]);
  const svg = linePlot({ ...base, series: [{ name: 'a', points: ramp(30, 1) }, { name: 'b', points: ramp(5, 3) }, { name: 'c', points: ramp(2, 7) }] });
  const ps = paths(svg);
  assert.deepEqual(ps.map((p) => [p.name, p.dataPoints, p.coords.length]), [['a', 30, 30], ['b', 5, 5], ['c', 2, 2]]);
  assert.equal(new Set(ps.map((p) => p.stroke)).size, 3);
  // x ascends with the data; y (screen, downward) descends as the values rise.
  const a = ps[0]!.coords;
  for (let i = 1; i < a.length; i++) {
    assert.ok(a[i]![0] > a[i - 1]![0]);
    assert.ok(a[i]![1] < a[i - 1]![1]);
  }
  // Every point lies inside the plot area.
  const f = frame(svg);
  for (const [x, y] of ps.flatMap((p) => p.coords)) {
    assert.ok(x >= f.x - 0.01 && x <= f.x + f.w + 0.01 && y >= f.y - 0.01 && y <= f.y + f.h + 0.01, `${x},${y} in the frame`);
  }
  // Legend: one entry per series.
  assert.equal(svg.match(/class="legend-item"/g)?.length, 3);
});

test('linear axes: 1-2-5 ticks covering the data, y from 0', () => {
  const svg = linePlot({ ...base, series: [{ name: 's', points: Array.from({ length: 30 }, (_, i) => [i, 1000 + i * 10] as [number, number]) }] });
  assert.deepEqual(tickLabels(svg, 'x'), ['0', '5', '10', '15', '20', '25', '30']);
  assert.deepEqual(tickLabels(svg, 'y'), ['0', '500', '1000', '1500']);
  const big = linePlot({ ...base, series: [{ name: 's', points: [[0, 0], [1, 250_000]] }] });
  assert.deepEqual(tickLabels(big, 'y'), ['0', '50k', '100k', '150k', '200k', '250k']);
});

test('percentile axis: x = 1/(1 - p/100), 100% clamped to the last tick', () => {
  assert.equal(percentileAxisX(0), 1);
  const near = (a: number, b: number) => assert.ok(Math.abs(a - b) / b < 1e-9, `${a} ~ ${b}`);
  near(percentileAxisX(90), 10);
  near(percentileAxisX(99), 100);
  near(percentileAxisX(99.9), 1000);
  near(percentileAxisX(99.99), 1e4);
  near(percentileAxisX(99.999), 1e5);
  assert.equal(percentileAxisX(100), percentileAxisX(99.999));
  assert.equal(percentileAxisX(-1), 1);
  assert.deepEqual([...PERCENTILE_TICKS], [0, 90, 99, 99.9, 99.99, 99.999]);

  const svg = linePlot({ ...base, xLog: 'percentile', yLog: true, series: [{ name: 'ack', points: [[0, 1], [90, 2], [99, 5], [99.9, 10], [100, 40]] }] });
  assert.deepEqual(tickLabels(svg, 'x'), ['0%', '90%', '99%', '99.9%', '99.99%', '99.999%']);
  const f = frame(svg);
  const xs = paths(svg)[0]!.coords.map(([x]) => (x - f.x) / f.w);
  // log10(1/(1-p)) / 5: each "nine" is a fifth of the width; 100% sits on the right edge.
  [0, 1 / 5, 2 / 5, 3 / 5, 1].forEach((want, i) => assert.ok(Math.abs(xs[i]! - want) < 0.001, `point ${i}: ${xs[i]} ~ ${want}`));
});

test('log y axis: decades, values <= 0 drawn at the smallest positive value', () => {
  const svg = linePlot({ ...base, yLog: true, series: [{ name: 's', points: [[0, 0], [1, 10], [2, 100], [3, -5], [4, 10_000]] }] });
  assert.deepEqual(tickLabels(svg, 'y'), ['10', '100', '1000', '10k']);
  const ys = paths(svg)[0]!.coords.map(([, y]) => y);
  assert.equal(ys[0], ys[1]);
  assert.equal(ys[3], ys[1]);
  const f = frame(svg);
  assert.equal(ys[1], f.y + f.h); // 10 on the bottom edge
  assert.equal(ys[4], f.y); // 10k on the top edge
  assert.ok(Math.abs(ys[2]! - (f.y + (f.h * 2) / 3)) < 0.01); // 100 a third of the way up
  // Within two decades, 2 and 5 are labelled too.
  const narrow = linePlot({ ...base, yLog: true, series: [{ name: 's', points: [[0, 0.3], [1, 8]] }] });
  assert.deepEqual(tickLabels(narrow, 'y'), ['0.1', '0.2', '0.5', '1', '2', '5', '10']);
});

test('empty plot: the frame, the labels and "no data", no line', () => {
  for (const series of [[], [{ name: 'a', points: [] }]]) {
    const svg = linePlot({ ...base, series });
    frame(svg);
    assert.match(svg, />no data<\/text>/);
    assert.match(svg, /class="x-label"[^>]*>x</);
    assert.match(svg, /class="y-label"[^>]*>y</);
    assert.ok(paths(svg).every((p) => p.dataPoints === 0 && p.coords.length === 0));
  }
  assert.equal(paths(linePlot({ ...base, series: [{ name: 'a', points: [] }] })).length, 1);
  // Non-finite points are left out, and a series of only those is empty too.
  const svg = linePlot({ ...base, series: [{ name: 'a', points: [[NaN, 1], [1, Infinity]] }] });
  assert.match(svg, />no data</);
});

test('a single point: a one-point path and a visible marker, in the middle of the x axis', () => {
  const svg = linePlot({ ...base, series: [{ name: 'one', points: [[5, 42]] }] });
  const [p] = paths(svg);
  assert.equal(p!.dataPoints, 1);
  assert.equal(p!.coords.length, 1);
  const f = frame(svg);
  assert.ok(Math.abs(p!.coords[0]![0] - (f.x + f.w / 2)) < 0.01);
  assert.match(svg, /<circle class="marker" cx="[\d.]+" cy="[\d.]+" r="3"/);
  assert.doesNotMatch(svg, /no data/);
});

test('every text is escaped: title, labels, series names, id', () => {
  const evil = `<script>alert("x")</script>&'`;
  const svg = linePlot({ id: `p"${evil}`, title: evil, xLabel: evil, yLabel: evil, series: [{ name: evil, points: [[0, 1], [1, 2]] }] });
  assert.doesNotMatch(svg, /<script/);
  assert.doesNotMatch(svg, /"x"/);
  assert.ok(svg.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;'));
  assert.equal(paths(svg)[0]!.name, escapeXml(evil));
  assert.equal(escapeXml(`a&b<c>d"e'f`), 'a&amp;b&lt;c&gt;d&quot;e&#39;f');
});

test('deterministic: the same input gives the same string', () => {
  const opts: LinePlotOptions = { ...base, xLog: 'percentile', yLog: true, series: [{ name: 'a', points: [[0, 0.31], [50, 1.2], [99.99, 7.77], [100, 12]] }, { name: 'b', points: [[0, 2], [100, 3]] }] };
  assert.equal(linePlot(opts), linePlot(structuredClone(opts)));
});

test('more series than colours: the repeats are dashed, so every line stays distinct', () => {
  const series = Array.from({ length: 12 }, (_, i) => ({ name: `s${i}`, points: [[0, i], [1, i + 1]] as [number, number][] }));
  const svg = linePlot({ ...base, height: 400, series });
  const styles = [...svg.matchAll(/<path class="series"[^>]*?(stroke="[^"]*"(?: stroke-dasharray="[^"]*")?)/g)].map((m) => m[1]);
  assert.equal(styles.length, 12);
  assert.equal(new Set(styles).size, 12);
});

test('a size too small to plot in is a programmer error', () => {
  assert.throws(() => linePlot({ ...base, width: 100, height: 80, series: [] }), RangeError);
});

test('a non-finite y breaks the line: one sub-path per run of points, lone points marked', () => {
  const svg = linePlot({ ...base, series: [{ name: 's', points: [[0, 1], [1, 2], [2, NaN], [3, 3], [4, NaN], [5, 4], [6, 5]] }] });
  const m = /<path class="series" data-series="s" data-points="(\d+)" d="([^"]*)"/.exec(svg)!;
  assert.equal(m[1], '5');
  assert.deepEqual(m[2]!.match(/[ML]/g), ['M', 'L', 'M', 'M', 'L']);
  // The lone point at x=3 gets a marker; the two-point runs do not.
  assert.equal(svg.match(/<circle class="marker"/g)?.length, 1);
  // Leading and trailing gaps open no empty sub-path.
  const edge = linePlot({ ...base, series: [{ name: 's', points: [[0, NaN], [1, 2], [2, 3], [3, NaN]] }] });
  assert.deepEqual(/ d="([^"]*)"/.exec(edge)![1]!.match(/[ML]/g), ['M', 'L']);
});

test('bands: shaded x ranges under the lines, clipped to the axis, each with a legend swatch', () => {
  const series = [{ name: 's', points: Array.from({ length: 10 }, (_, i) => [i, i + 1] as [number, number]) }];
  const bands = [
    { from: 0, to: 2, label: 'warm-up', fill: '#f6d58e' },
    { from: 8, to: 10, label: 'drain', fill: '#d5d8de' },
    { from: 5, to: 5, label: 'empty', fill: '#000' },
  ];
  const svg = linePlot({ ...base, series, bands });
  const f = frame(svg);
  const rects = [...svg.matchAll(/<rect class="band" data-band="([^"]*)" data-from="[^"]*" data-to="[^"]*" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" fill="([^"]*)"/g)].map((m) => ({
    label: m[1],
    x: Number(m[2]),
    y: Number(m[3]),
    w: Number(m[4]),
    h: Number(m[5]),
    fill: m[6],
  }));
  // The drain widens the axis to 10: x ticks 0..10, each band a fifth of the width, full height.
  assert.deepEqual(tickLabels(svg, 'x'), ['0', '2', '4', '6', '8', '10']);
  assert.deepEqual(rects.map((r) => [r.label, r.fill]), [['warm-up', '#f6d58e'], ['drain', '#d5d8de']]);
  for (const r of rects) {
    assert.ok(Math.abs(r.w - f.w / 5) < 0.02 && r.y === f.y && r.h === f.h, JSON.stringify(r));
  }
  assert.equal(rects[0]!.x, f.x);
  assert.ok(Math.abs(rects[1]!.x - (f.x + (f.w * 4) / 5)) < 0.02);
  // Drawn before (under) the series.
  assert.ok(svg.indexOf('class="band"') < svg.indexOf('class="series"'));
  assert.deepEqual([...svg.matchAll(/<g class="legend-item legend-band"><title>([^<]*)<\/title><rect /g)].map((m) => m[1]), ['warm-up', 'drain']);
  // A band beyond the data on a wider range is clipped to the frame.
  const clipped = linePlot({ ...base, series, bands: [{ from: -50, to: 1, label: 'b', fill: '#eee' }] });
  const cx = Number(/<rect class="band"[^>]* x="([\d.]+)"/.exec(clipped)![1]);
  assert.ok(cx >= frame(clipped).x - 0.01);
  // The percentile axis has no time: bands are ignored there.
  assert.doesNotMatch(linePlot({ ...base, xLog: 'percentile', series, bands }), /class="band"/);
  // No data: no band either, the plot says "no data".
  assert.doesNotMatch(linePlot({ ...base, series: [], bands }), /class="band"/);
});

test('a series may set its own colour and dash (compare.html: one colour per run)', () => {
  const svg = linePlot({ ...base, series: [{ name: 'A ack', points: [[0, 1], [1, 2]], colour: '#123456', dash: '' }, { name: 'A result', points: [[0, 2], [1, 3]], colour: '#123456', dash: '6 3' }] });
  const styles = [...svg.matchAll(/<path class="series"[^>]*?(stroke="[^"]*"(?: stroke-dasharray="[^"]*")?)/g)].map((m) => m[1]);
  assert.deepEqual(styles, ['stroke="#123456"', 'stroke="#123456" stroke-dasharray="6 3"']);
  assert.match(svg, /<g class="legend-item"><title>A result<\/title><line [^>]*stroke="#123456" stroke-dasharray="6 3"/);
});

test('marks: a dashed vertical line at x across the plot area, with a legend entry', () => {
  const series = [{ name: 's', points: Array.from({ length: 11 }, (_, i) => [i, i + 1] as [number, number]) }];
  const svg = linePlot({ ...base, series, marks: [{ x: 2.5, label: 'fleet connected' }, { x: NaN, label: 'never' }] });
  const f = frame(svg);
  const m = /<line class="mark" data-mark="fleet connected" data-x="2.5" x1="([\d.]+)" y1="([\d.]+)" x2="([\d.]+)" y2="([\d.]+)" stroke="#444" stroke-width="1.5" stroke-dasharray="4 3"\/>/.exec(svg);
  assert.ok(m !== null, 'mark drawn');
  assert.ok(Math.abs(Number(m[1]) - (f.x + f.w / 4)) < 0.02 && m[1] === m[3]);
  assert.deepEqual([Number(m[2]), Number(m[4])], [f.y, f.y + f.h]);
  assert.equal(svg.match(/class="mark"/g)?.length, 1, 'a non-finite mark is left out');
  assert.match(svg, /<g class="legend-item legend-mark"><title>fleet connected<\/title><line [^>]*stroke-dasharray="4 3"\/><text [^>]*>fleet connected<\/text><\/g>/);
  // A mark beyond the data widens the axis to show it.
  assert.deepEqual(tickLabels(linePlot({ ...base, series, marks: [{ x: 14, label: 'late' }] }), 'x'), ['0', '2', '4', '6', '8', '10', '12', '14']);
  assert.doesNotMatch(linePlot({ ...base, xLog: 'percentile', series, marks: [{ x: 1, label: 'm' }] }), /class="mark"/);
});
