/**
 * The exporter's state: ingested metrics folded into series keyed by (name, sorted labels), and
 * their Prometheus text exposition (format 0.0.4).
 *
 *   counter    the sum of the values (each an increment)
 *   gauge      the value with the highest timestamp (equal timestamps: the one folded last)
 *   histogram  counts per bucket of HISTOGRAM_BOUNDS (cumulative in the text), _sum and _count
 *   summary    _sum and _count (no quantiles: they can't be merged from single observations)
 *
 * Bounded by seriesMax: a metric for a new series beyond it is refused (the exporter dead-letters
 * its entry). A name keeps the type it was first seen with; a metric of another type for it, or
 * one whose name collides with a histogram's or summary's `_bucket`/`_sum`/`_count` lines, is
 * refused too, so the text never holds a name twice.
 */
import type { Metric, MetricType } from './metric-entry.js';

/** Upper bounds of the histogram buckets (Prometheus client libraries' defaults), plus +Inf. */
export const HISTOGRAM_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

const HELP: Record<MetricType, string> = {
  counter: 'Ingested through data_nexus.MetricsService: the sum of the values received.',
  gauge: 'Ingested through data_nexus.MetricsService: the value with the latest timestamp.',
  histogram: 'Ingested through data_nexus.MetricsService: the observations received.',
  summary: 'Ingested through data_nexus.MetricsService: the sum and count of the observations received.',
};

interface Series {
  readonly labels: readonly (readonly [string, string])[];
  /** counter: the sum; gauge: the value; histogram, summary: the sum of the observations. */
  value: number;
  /** gauge: the timestamp of `value`. */
  timestamp: bigint;
  /** histogram, summary: observations. */
  count: number;
  /** histogram: observations per bucket, not cumulative; the last one is +Inf. */
  readonly buckets: number[] | null;
}

interface Family {
  readonly type: MetricType;
  readonly series: Map<string, Series>;
}

const SUFFIXES = ['_bucket', '_sum', '_count'] as const;

export class SeriesTable {
  private readonly families = new Map<string, Family>();
  /** Invariant: the sum of the families' series counts. */
  private seriesCount = 0;

  constructor(private readonly seriesMax: number) {}

  get size(): number {
    return this.seriesCount;
  }

  /** Folds the metric in; or, when it is refused, says why (nothing changed). */
  apply(m: Metric): string | null {
    let family = this.families.get(m.name);
    if (family === undefined) {
      const clash = this.clash(m.name, m.type);
      if (clash !== null) return clash;
    } else if (family.type !== m.type) {
      return `type conflict: ${m.name} is a ${family.type} here, the entry says ${m.type}`;
    }
    const key = JSON.stringify(m.labels);
    let series = family?.series.get(key);
    if (series === undefined) {
      if (this.seriesCount >= this.seriesMax) return `series limit: ${this.seriesMax} series (streams.seriesMax) are held; ${m.name}${JSON.stringify(Object.fromEntries(m.labels))} would be a new one`;
      if (family === undefined) {
        family = { type: m.type, series: new Map() };
        this.families.set(m.name, family);
      }
      series = { labels: m.labels, value: 0, timestamp: 0n, count: 0, buckets: m.type === 'histogram' ? new Array<number>(HISTOGRAM_BOUNDS.length + 1).fill(0) : null };
      family.series.set(key, series);
      this.seriesCount++;
      if (m.type === 'gauge') {
        series.value = m.value;
        series.timestamp = BigInt(m.timestamp);
        return null;
      }
    }
    switch (m.type) {
      case 'counter':
        series.value += m.value;
        break;
      case 'gauge': {
        const ts = BigInt(m.timestamp);
        if (ts >= series.timestamp) {
          series.value = m.value;
          series.timestamp = ts;
        }
        break;
      }
      case 'histogram': {
        let i = 0;
        while (i < HISTOGRAM_BOUNDS.length && m.value > HISTOGRAM_BOUNDS[i]!) i++;
        series.buckets![i]!++;
        series.value += m.value;
        series.count++;
        break;
      }
      case 'summary':
        series.value += m.value;
        series.count++;
        break;
    }
    return null;
  }

  /** Why a new family `name` of `type` would put a line name in the text twice, or null. */
  private clash(name: string, type: MetricType): string | null {
    for (const s of SUFFIXES) {
      if (name.endsWith(s)) {
        const base = this.families.get(name.slice(0, -s.length));
        if (base !== undefined && (base.type === 'histogram' || base.type === 'summary')) return `name clash: ${name} is a line of the ${base.type} ${name.slice(0, -s.length)}`;
      }
      if ((type === 'histogram' || type === 'summary') && this.families.has(name + s)) return `name clash: the ${type} ${name} would write ${name + s}, which is a ${this.families.get(name + s)!.type} here`;
    }
    return null;
  }

  /** Prometheus text format 0.0.4: families by name, series by their label text, HELP and TYPE for each. */
  render(): string {
    const out: string[] = [];
    for (const name of [...this.families.keys()].sort(byCodeUnit)) {
      const family = this.families.get(name)!;
      out.push(`# HELP ${name} ${HELP[family.type]}`, `# TYPE ${name} ${family.type}`);
      const sorted = [...family.series.values()].map((s) => [labelText(s.labels), s] as const).sort(([a], [b]) => byCodeUnit(a, b));
      for (const [, s] of sorted) {
        switch (family.type) {
          case 'counter':
          case 'gauge':
            out.push(`${name}${labelText(s.labels)} ${formatValue(s.value)}`);
            break;
          case 'histogram': {
            let cumulative = 0;
            for (let i = 0; i <= HISTOGRAM_BOUNDS.length; i++) {
              cumulative += s.buckets![i]!;
              const le = i < HISTOGRAM_BOUNDS.length ? formatValue(HISTOGRAM_BOUNDS[i]!) : '+Inf';
              out.push(`${name}_bucket${labelText([...s.labels, ['le', le]])} ${cumulative}`);
            }
            out.push(`${name}_sum${labelText(s.labels)} ${formatValue(s.value)}`, `${name}_count${labelText(s.labels)} ${s.count}`);
            break;
          }
          case 'summary':
            out.push(`${name}_sum${labelText(s.labels)} ${formatValue(s.value)}`, `${name}_count${labelText(s.labels)} ${s.count}`);
            break;
        }
      }
    }
    return out.length === 0 ? '' : out.join('\n') + '\n';
  }
}

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A label value in the text format: backslash, double quote and line feed escaped. */
export function escapeLabelValue(v: string): string {
  return v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

function labelText(labels: readonly (readonly [string, string])[]): string {
  return labels.length === 0 ? '' : `{${labels.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`;
}

/** A sample value as the text format writes it (Go's ParseFloat reads JavaScript's form). */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}
