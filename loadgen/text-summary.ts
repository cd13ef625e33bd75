/**
 * The end-of-run text summary (stdout): wrk2/autocannon-style percentile tables, throughput, the
 * checker's accounting, errors by kind, the generator's own footprint and the thresholds.
 */
import { METRIC_DOCS, type Metric } from './recorder.js';
import type { LoadgenSummary } from './summary.js';

const n = (x: number) => x.toLocaleString('en-US');
const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => '  ' + r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
}

function byKind(rec: Record<string, number>): string {
  const entries = Object.entries(rec).sort((a, b) => b[1] - a[1]);
  return entries.length === 0 ? 'none' : entries.map(([k, v]) => `${k} ${n(v)}`).join(', ');
}

export function textSummary(s: LoadgenSummary): string {
  const out: string[] = [];
  const o = s.options;
  out.push(
    `stratus loadgen: ${n(s.fleet.devices)} devices (${s.profile}, ${s.loop} loop, ${o.ratePerDevice} ev/s each, batch ${o.batch}) -> ${s.target} (${s.api} API)`,
    `  ${s.window.endS === 0 ? 'nothing measured (stopped before the measured window)' : `measured ${s.measuredS} s, from ${s.window.startS.toFixed(1)} s to ${s.window.endS.toFixed(1)} s after the start (fleet connected, then ${o.warmupS} s warm-up)`}; ${s.fleet.connections} connections, ${s.fleet.workers} worker thread(s), seed ${o.seed}`,
    `  fleet connected: ${s.fleet.fleetConnectS === null ? `no (peak ${n(s.fleet.connectedPeak)})` : `${s.fleet.fleetConnectS} s`}${s.fleet.connectedAtWindowStart != null && s.fleet.connectedAtWindowStart < s.fleet.devices ? `; ${n(s.fleet.connectedAtWindowStart)} of ${n(s.fleet.devices)} when measuring started` : ''}; reconnects ${n(s.counts.reconnects)}${s.fleet.slowReaders > 0 ? `; slow readers ${n(s.fleet.slowReaders)}` : ''}`,
  );
  // Loud, first and last: a figure below may not mean what it seems.
  const warnings = (s.warnings ?? []).map((w) => `  WARNING: ${w}`);
  out.push(...warnings, '');
  const metrics = Object.keys(s.latency) as Metric[];
  if (metrics.length > 0) {
    out.push('Latency (ms)');
    out.push(
      ...table([
        ['metric', 'p50', 'p90', 'p99', 'p99.9', 'p99.99', 'max', 'count'],
        ...metrics.map((m) => {
          const l = s.latency[m]!;
          return [m, ms(l.p50Ms), ms(l.p90Ms), ms(l.p99Ms), ms(l.p999Ms), ms(l.p9999Ms), ms(l.maxMs), n(l.count)];
        }),
      ]),
    );
    for (const m of metrics) out.push(`    ${m}: ${METRIC_DOCS[m]}`);
    out.push('');
  }
  const c = s.counts;
  out.push(
    `Throughput (measured window): sent ${n(s.throughput.sentPerS)}/s, acked ${n(s.throughput.ackedPerS)}/s, results ${n(s.throughput.resultsPerS)}/s`,
    `Events: sent ${n(c.sent)}, acked ${n(c.acked)}, results ${n(c.results)}, unacked ${n(c.unacked)}, held unsent ${n(c.heldUnsent)}; rejected: ${byKind(c.rejected)}`,
    `Checker: missing ${n(c.missing)}, duplicates ${n(c.duplicates)}, wrong values ${n(c.wrong)}: ${c.missing + c.duplicates + c.wrong === 0 ? 'pass' : 'FAIL (exit 3)'}`,
    `Errors: ${byKind(c.errors)}`,
    `Load generator: RSS peak ${(s.footprint.rssBytesPeak / 2 ** 20).toFixed(0)} MiB (${(s.footprint.rssBytesPerDevice / 1024).toFixed(1)} KiB per device), CPU ${s.footprint.cpuShare} cores (${s.footprint.cpuUserS} s user, ${s.footprint.cpuSystemS} s system)`,
  );
  if (s.thresholds.length > 0) {
    out.push('', 'Thresholds');
    for (const t of s.thresholds) out.push(`  ${t.ok ? 'pass' : 'FAIL'}  ${t.expr}  (measured ${Number.isNaN(t.actual) || t.actual === null ? 'nothing' : t.actual})`);
  }
  if (warnings.length > 0) out.push('', ...warnings);
  return out.join('\n') + '\n';
}
