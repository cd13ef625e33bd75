/**
 * `--report DIR`: everything a run measured, in files other tools read.
 *
 *   summary.json      the LoadgenSummary (what --json prints)
 *   <metric>.hgrm     HdrHistogram percentile distribution, values in ms (plot it with
 *                     HdrHistogram's plotFiles.html, or compare runs)
 *   intervals.hlog    HdrHistogram interval log: one tagged histogram per metric per second
 *                     (HistogramLogProcessor, HdrHistogramVisualizer), values in us, max in ms
 *   report.html       self-contained page: tables and plots, opens with no network
 *   compare.html      with a baseline (--baseline DIR, an earlier report): both runs' latency
 *                     curves overlaid and a table of deltas (also at the top of report.html)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as hdr from 'hdr-histogram-js';
import { COMPARE_FILE, compareSection, readReportSummary, renderCompareHtml } from './compare.js';
import { secondHistogram, type LoadgenRun } from './loadgen.js';
import { renderReportHtml } from './report-html.js';
import type { LoadgenSummary } from './summary.js';

/**
 * Writes the report into dir; returns the names written. `baselineDir`: an earlier report to compare
 * with. A baseline that is not a report does not cost the run its report: every other file is
 * written first, then the baseline's error is thrown.
 */
export function writeReport(dir: string, run: LoadgenRun, baselineDir: string | null = null): string[] {
  let baseline: LoadgenSummary | null = null;
  let baselineError: unknown = null;
  if (baselineDir !== null) {
    try {
      baseline = readReportSummary(baselineDir);
    } catch (err) {
      baselineError = err;
    }
  }
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  const put = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    written.push(name);
  };
  put('summary.json', JSON.stringify(run.summary, null, 2) + '\n');
  for (const [metric, h] of run.histograms) {
    if (h.totalCount > 0) put(`${metric}.hgrm`, h.outputPercentileDistribution(5, 1000));
  }
  const lines: string[] = [];
  const log = new hdr.HistogramLogWriter((s) => lines.push(s));
  log.outputLogFormatVersion();
  log.outputComment(`[StartTime: ${(run.t0Ms / 1000).toFixed(3)} (seconds since epoch), ${new Date(run.t0Ms).toISOString()}]`);
  log.outputComment(`[stratus loadgen ${run.summary.api} -> ${run.summary.target}; values in microseconds; tags: ${[...run.histograms.keys()].join(', ')}]`);
  log.outputLegend();
  run.seconds.forEach((s, sec) => {
    for (const metric of s.encoded.keys()) {
      const h = secondHistogram(s, metric)!;
      if (h.totalCount === 0) continue;
      h.tag = metric;
      log.outputIntervalHistogram(h, sec, sec + 1, 1000);
    }
  });
  put('intervals.hlog', lines.join(''));
  put('report.html', renderReportHtml(run.summary, baseline === null ? null : compareSection(baseline, run.summary)));
  if (baseline !== null) put(COMPARE_FILE, renderCompareHtml(baseline, run.summary));
  if (baselineError !== null) throw baselineError;
  return written;
}
