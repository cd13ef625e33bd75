/**
 * A small line-plot renderer that returns one SVG element as a string. Hand-written rather than
 * taken from a chart library because the load generator's report.html must open with no network
 * and run no JavaScript: the chart libraries (Chart.js, Plotly, Vega, uPlot) either need a DOM to
 * draw into or ship a script bundle that would have to be inlined and run in the page. A string
 * renderer also gives deterministic output (the same input gives the same bytes, so a report or a
 * RESULTS.md plot only changes when its data does) and can be tested without a browser. The
 * generated SVG carries its own styles as attributes, so it also stands alone as an .svg file.
 *
 * Axes: linear with 1-2-5 ticks, log10 (`yLog`), or HdrHistogram's latency-by-percentile axis
 * (`xLog: 'percentile'`), where a percentile p sits at log10(1 / (1 - p/100)) so that 90%, 99%,
 * 99.9%, ... are equally spaced and the tail gets as much room as the body.
 *
 * Bands shade x ranges behind the lines (the report's warm-up and drain, outside the measured
 * window), each with a legend entry, so a reader sees which seconds the headline figures exclude;
 * marks draw a dashed vertical line at a moment (the whole fleet connected).
 */

export interface PlotSeries {
  name: string;
  /**
   * [x, y] pairs, drawn in the order given. A pair with a non-finite coordinate is not drawn and
   * breaks the line there (NaN marks a second with no sample: the line does not bridge the gap).
   */
  points: [number, number][];
  /** Stroke colour instead of the palette's (compare.html draws each run in its own colour). */
  colour?: string;
  /** SVG stroke-dasharray instead of the palette's (e.g. '6 3'; '' for solid). */
  dash?: string;
}

/** A moment marked by a vertical dashed line across the plot, with a legend entry. */
export interface PlotMark {
  x: number;
  label: string;
}

/** An x range shaded behind the lines, with a legend entry. */
export interface PlotBand {
  /** In x data units; clipped to the axis. A band with to <= from is not drawn. */
  from: number;
  to: number;
  label: string;
  fill: string;
}

export interface LinePlotOptions {
  /** The svg element's id (the report's plots are found by it). */
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  /** x holds percentiles 0..100, drawn on the latency-by-percentile axis. */
  xLog?: 'percentile';
  /** log10 y axis; values <= 0 are drawn at the smallest positive value of the plot. */
  yLog?: boolean;
  series: PlotSeries[];
  /** Shaded x ranges (linear x axis only), drawn under the grid and the lines. */
  bands?: PlotBand[];
  /** Vertical lines at moments (linear x axis only), drawn over the lines. */
  marks?: PlotMark[];
  width?: number;
  height?: number;
}

/** Tick percentiles of the latency-by-percentile axis; the last one is also the axis's right edge. */
export const PERCENTILE_TICKS = [0, 90, 99, 99.9, 99.99, 99.999] as const;
const PERCENTILE_MAX = PERCENTILE_TICKS[PERCENTILE_TICKS.length - 1];

/**
 * Where percentile p (0..100) sits on the latency-by-percentile axis, before the log: 1/(1 - p/100)
 * (0% -> 1, 90% -> 10, 99% -> 100, ...). p is clamped to [0, 99.999], so 100% lands on the last tick
 * instead of at infinity.
 */
export function percentileAxisX(p: number): number {
  const clamped = Math.min(Math.max(p, 0), PERCENTILE_MAX);
  return 1 / (1 - clamped / 100);
}

/** Escapes text for XML/HTML content and for attribute values in either quote style. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}
const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Tableau 10: distinct on screen and in greyscale print; series 11+ reuse them dashed. */
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'] as const;
const DASHES = ['', '6 3', '2 2', '8 3 2 3'] as const;
const MARK_STROKE = 'stroke="#444" stroke-width="1.5" stroke-dasharray="4 3"';

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';
const TICK_FONT_PX = 11;
/** Rough advance of one legend character at TICK_FONT_PX: the layout must not depend on font metrics. */
const CHAR_PX = 6.4;
const LEGEND_NAME_CHARS_MIN = 10;
const LEGEND_NAME_CHARS_MAX = 24;

/** Maps a data value to 0..1 along the axis, and the ticks to draw there. */
interface Axis {
  unit(v: number): number;
  ticks: { at: number; label: string }[];
}

/** Coordinates to at most two decimals, and no "-0": stable, short path strings. */
function px(n: number): string {
  const r = Math.round(n * 100) / 100;
  return Object.is(r, -0) ? '0' : String(r);
}

function trimNumber(v: number): string {
  return String(Number(v.toPrecision(6)));
}

/** One tick label; `scale` is the axis's largest absolute tick, so a linear axis keeps one suffix. */
function formatTick(v: number, scale: number): string {
  if (v === 0) return '0';
  if (scale >= 1e9) return trimNumber(v / 1e9) + 'G';
  if (scale >= 1e6) return trimNumber(v / 1e6) + 'M';
  if (scale >= 1e4) return trimNumber(v / 1e3) + 'k';
  return trimNumber(v);
}

/** A 1-2-5 step giving about `count` intervals over span (span > 0). */
function niceStep(span: number, count: number): number {
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
}

function linearAxis(min: number, max: number, count: number): Axis {
  let lo = min;
  let hi = max;
  if (!(hi > lo)) {
    // One distinct value: centre it in a unit-wide window (or [0, 1] for zero).
    lo = lo === 0 ? 0 : lo - Math.max(Math.abs(lo) / 2, 0.5);
    hi = hi === 0 ? 1 : hi + Math.max(Math.abs(hi) / 2, 0.5);
  }
  const step = niceStep(hi - lo, count);
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const start = first * step;
  const end = last * step;
  const values: number[] = [];
  for (let i = first; i <= last; i++) values.push(Number((i * step).toPrecision(12)));
  const scale = Math.max(...values.map(Math.abs));
  return {
    unit: (v) => (v - start) / (end - start),
    ticks: values.map((v) => ({ at: (v - start) / (end - start), label: formatTick(v, scale) })),
  };
}

/** log10 axis over whole decades covering [min, max] (both > 0); 2 and 5 are labelled too when it spans <= 2 decades. */
function logAxis(min: number, max: number): Axis {
  const lo = Math.floor(Math.log10(min) + 1e-9);
  let hi = Math.ceil(Math.log10(max) - 1e-9);
  if (hi <= lo) hi = lo + 1;
  const mantissas = hi - lo <= 2 ? [1, 2, 5] : [1];
  const ticks: { at: number; label: string }[] = [];
  for (let e = lo; e <= hi; e++) {
    for (const m of mantissas) {
      if (e === hi && m > 1) break;
      const v = Number((m * 10 ** e).toPrecision(12));
      ticks.push({ at: (Math.log10(v) - lo) / (hi - lo), label: formatTick(v, Math.abs(v)) });
    }
  }
  return { unit: (v) => (Math.log10(v) - lo) / (hi - lo), ticks };
}

function percentileAxis(): Axis {
  const span = Math.log10(percentileAxisX(PERCENTILE_MAX));
  return {
    unit: (p) => Math.log10(percentileAxisX(p)) / span,
    ticks: PERCENTILE_TICKS.map((p) => ({ at: Math.log10(percentileAxisX(p)) / span, label: `${p}%` })),
  };
}

/** The legend's text for a name: long names are cut so the legend keeps its width. */
function legendText(name: string): string {
  return name.length <= LEGEND_NAME_CHARS_MAX ? name : name.slice(0, LEGEND_NAME_CHARS_MAX - 1) + '…';
}

export function linePlot(opts: LinePlotOptions): string {
  const width = opts.width ?? 720;
  const height = opts.height ?? 300;
  const series = opts.series.map((s) => {
    // Runs of consecutive finite points: each is drawn as its own line.
    const segments: [number, number][][] = [[]];
    for (const p of s.points) {
      if (Number.isFinite(p[0]) && Number.isFinite(p[1])) segments[segments.length - 1]!.push(p);
      else if (segments[segments.length - 1]!.length > 0) segments.push([]);
    }
    return { ...s, segments: segments.filter((g) => g.length > 0), points: segments.flat() };
  });
  const all = series.flatMap((s) => s.points);
  const bands = opts.xLog === 'percentile' ? [] : (opts.bands ?? []).filter((b) => Number.isFinite(b.from) && Number.isFinite(b.to) && b.to > b.from);

  // y values as drawn: on a log axis everything <= 0 goes to the smallest positive value.
  let yFloor = 1;
  if (opts.yLog === true) {
    const positive = all.map(([, y]) => y).filter((y) => y > 0);
    if (positive.length > 0) yFloor = Math.min(...positive);
  }
  const yOf = (y: number) => (opts.yLog === true && y <= 0 ? yFloor : y);

  // At least LEGEND_NAME_CHARS_MIN wide, so plots of one page with short names share one frame width.
  const marks = opts.xLog === 'percentile' ? [] : (opts.marks ?? []).filter((k) => Number.isFinite(k.x));
  const legendNames = [...series.map((s) => s.name), ...bands.map((b) => b.label), ...marks.map((k) => k.label)];
  const legendChars = Math.max(LEGEND_NAME_CHARS_MIN, ...legendNames.map((name) => legendText(name).length));
  const legendW = legendNames.length === 0 ? 0 : Math.ceil(30 + legendChars * CHAR_PX);
  const m = { top: 34, right: 14 + legendW, bottom: 46, left: 64 };
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  if (!(pw > 40 && ph > 40)) throw new RangeError(`linePlot ${opts.id}: ${width}x${height} leaves no room to plot (${pw}x${ph} px)`);

  const out: string[] = [];
  const titleId = `${opts.id}-title`;
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" id="${escapeXml(opts.id)}" class="plot" role="img" aria-labelledby="${escapeXml(titleId)}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="${TICK_FONT_PX}">`,
    `<title id="${escapeXml(titleId)}">${escapeXml(opts.title)}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${px(m.left)}" y="20" font-size="14" font-weight="600" fill="#222">${escapeXml(opts.title)}</text>`,
  );

  const hasData = all.length > 0;
  if (hasData) {
    // The bands widen the x axis: the drain's last second ends one second after its point.
    const xs = [...all.map(([x]) => x), ...bands.flatMap((b) => [b.from, b.to]), ...marks.map((k) => k.x)];
    const ys = all.map(([, y]) => yOf(y));
    const xAxis = opts.xLog === 'percentile' ? percentileAxis() : linearAxis(Math.min(...xs), Math.max(...xs), 8);
    const yAxis = opts.yLog === true ? logAxis(Math.min(...ys), Math.max(...ys)) : linearAxis(Math.min(0, ...ys), Math.max(...ys), 5);
    const X = (x: number) => m.left + xAxis.unit(x) * pw;
    const Y = (y: number) => m.top + ph - yAxis.unit(yOf(y)) * ph;

    const clip = (u: number) => Math.min(Math.max(u, 0), 1);
    for (const b of bands) {
      const x0 = m.left + clip(xAxis.unit(b.from)) * pw;
      const x1 = m.left + clip(xAxis.unit(b.to)) * pw;
      if (x1 - x0 < 0.01) continue;
      out.push(`<rect class="band" data-band="${escapeXml(b.label)}" data-from="${b.from}" data-to="${b.to}" x="${px(x0)}" y="${px(m.top)}" width="${px(x1 - x0)}" height="${px(ph)}" fill="${escapeXml(b.fill)}"/>`);
    }

    out.push('<g class="grid" stroke="#e6e6e6" stroke-width="1">');
    for (const t of xAxis.ticks) out.push(`<line x1="${px(m.left + t.at * pw)}" y1="${px(m.top)}" x2="${px(m.left + t.at * pw)}" y2="${px(m.top + ph)}"/>`);
    for (const t of yAxis.ticks) out.push(`<line x1="${px(m.left)}" y1="${px(m.top + ph - t.at * ph)}" x2="${px(m.left + pw)}" y2="${px(m.top + ph - t.at * ph)}"/>`);
    out.push('</g>');

    out.push('<g class="x-ticks" fill="#333" text-anchor="middle">');
    for (const t of xAxis.ticks) {
      const x = px(m.left + t.at * pw);
      out.push(`<line x1="${x}" y1="${px(m.top + ph)}" x2="${x}" y2="${px(m.top + ph + 4)}" stroke="#666"/><text x="${x}" y="${px(m.top + ph + 16)}">${escapeXml(t.label)}</text>`);
    }
    out.push('</g>');
    out.push('<g class="y-ticks" fill="#333" text-anchor="end">');
    for (const t of yAxis.ticks) {
      const y = m.top + ph - t.at * ph;
      out.push(`<line x1="${px(m.left - 4)}" y1="${px(y)}" x2="${px(m.left)}" y2="${px(y)}" stroke="#666"/><text x="${px(m.left - 7)}" y="${px(y + 4)}">${escapeXml(t.label)}</text>`);
    }
    out.push('</g>');

    series.forEach((s, i) => {
      const d = s.segments.flatMap((g) => g.map(([x, y], k) => `${k === 0 ? 'M' : 'L'}${px(X(x))} ${px(Y(y))}`)).join(' ');
      out.push(`<path class="series" data-series="${escapeXml(s.name)}" data-points="${s.points.length}" d="${d}" ${strokeOf(i, s)} stroke-width="${lineWidthOf(i)}" stroke-linejoin="round" stroke-linecap="round" fill="none"/>`);
      // A lone point (alone in the series, or between two gaps) draws no line: mark it so it is still seen.
      for (const g of s.segments) {
        if (g.length !== 1) continue;
        const [x, y] = g[0]!;
        out.push(`<circle class="marker" cx="${px(X(x))}" cy="${px(Y(y))}" r="3" fill="${escapeXml(s.colour ?? colourOf(i))}"/>`);
      }
    });
    for (const k of marks) {
      const x = px(X(k.x));
      out.push(`<line class="mark" data-mark="${escapeXml(k.label)}" data-x="${k.x}" x1="${x}" y1="${px(m.top)}" x2="${x}" y2="${px(m.top + ph)}" ${MARK_STROKE}/>`);
    }
  } else {
    for (const s of series) out.push(`<path class="series" data-series="${escapeXml(s.name)}" data-points="0" d="" fill="none"/>`);
    out.push(`<text class="no-data" x="${px(m.left + pw / 2)}" y="${px(m.top + ph / 2)}" text-anchor="middle" font-size="14" fill="#888">no data</text>`);
  }

  out.push(`<rect class="frame" x="${px(m.left)}" y="${px(m.top)}" width="${px(pw)}" height="${px(ph)}" fill="none" stroke="#888"/>`);
  out.push(`<text class="x-label" x="${px(m.left + pw / 2)}" y="${px(height - 8)}" text-anchor="middle" fill="#222">${escapeXml(opts.xLabel)}</text>`);
  out.push(`<text class="y-label" transform="translate(14 ${px(m.top + ph / 2)}) rotate(-90)" text-anchor="middle" fill="#222">${escapeXml(opts.yLabel)}</text>`);

  if (legendNames.length > 0) {
    const lx = m.left + pw + 14;
    out.push('<g class="legend" fill="#222">');
    series.forEach((s, i) => {
      const y = m.top + 8 + i * 17;
      out.push(
        `<g class="legend-item"><title>${escapeXml(s.name)}</title><line x1="${px(lx)}" y1="${px(y)}" x2="${px(lx + 20)}" y2="${px(y)}" ${strokeOf(i, s)} stroke-width="2.5"/>` +
          `<text x="${px(lx + 26)}" y="${px(y + 4)}">${escapeXml(legendText(s.name))}</text></g>`,
      );
    });
    // Bands get a legend entry even when the axis leaves them no width: the legend says what shading means.
    bands.forEach((b, j) => {
      const y = m.top + 8 + (series.length + j) * 17;
      out.push(
        `<g class="legend-item legend-band"><title>${escapeXml(b.label)}</title><rect x="${px(lx)}" y="${px(y - 6)}" width="20" height="12" fill="${escapeXml(b.fill)}" stroke="#999" stroke-width="0.5"/>` +
          `<text x="${px(lx + 26)}" y="${px(y + 4)}">${escapeXml(legendText(b.label))}</text></g>`,
      );
    });
    marks.forEach((k, j) => {
      const y = m.top + 8 + (series.length + bands.length + j) * 17;
      out.push(
        `<g class="legend-item legend-mark"><title>${escapeXml(k.label)}</title><line x1="${px(lx)}" y1="${px(y)}" x2="${px(lx + 20)}" y2="${px(y)}" ${MARK_STROKE}/>` +
          `<text x="${px(lx + 26)}" y="${px(y + 4)}">${escapeXml(legendText(k.label))}</text></g>`,
      );
    });
    out.push('</g>');
  }
  out.push('</svg>');
  return out.join('\n');
}

function colourOf(i: number): string {
  return PALETTE[i % PALETTE.length]!;
}

/**
 * Earlier series are drawn wider, under the later ones: lines that coincide (acked and results at
 * the same rate) stay visible as a stripe instead of the last one hiding the others.
 */
function lineWidthOf(i: number): string {
  return String([3, 2.2][i] ?? 1.5);
}

function strokeOf(i: number, s: { colour?: string; dash?: string } = {}): string {
  const colour = s.colour ?? colourOf(i);
  const dash = s.dash ?? DASHES[Math.floor(i / PALETTE.length) % DASHES.length]!;
  return `stroke="${escapeXml(colour)}"` + (dash === '' ? '' : ` stroke-dasharray="${escapeXml(dash)}"`);
}
