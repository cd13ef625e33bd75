/**
 * writeReport with a baseline (`stratus loadgen --baseline DIR --report OUT`): the comparison at the
 * top of report.html and in compare.html; a baseline that is not a report costs the run none of its
 * own files, and is then reported as one error.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { COMPARE_PLOT_ID } from '../../../loadgen/compare.js';
import type { LoadgenRun } from '../../../loadgen/loadgen.js';
import { writeReport } from '../../../loadgen/report.js';
import { isStratusError } from '../../../src/errors.js';
import { latency, summary } from './report-fixture.js';

function run(): LoadgenRun {
  return { summary: summary({ startedAt: '2026-12-05T02:30:00.000Z', latency: { ack: latency(3, 6, 15, 40, 60), result: latency(9, 18, 35, 90, 150) } }), histograms: new Map(), seconds: [], t0Ms: Date.UTC(2026, 11, 5, 2, 30) };
}

test('with a baseline: compare.html written, and the comparison atop report.html', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'stratus-baseline-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'base'));
  writeFileSync(join(root, 'base', 'summary.json'), JSON.stringify(summary()));

  const files = writeReport(join(root, 'out'), run(), join(root, 'base'));
  assert.deepEqual(files, ['summary.json', 'intervals.hlog', 'report.html', 'compare.html']);
  const report = readFileSync(join(root, 'out', 'report.html'), 'utf8');
  assert.ok(report.indexOf('<h2>Compared with the baseline</h2>') < report.indexOf('<h2>Counts</h2>'));
  assert.match(report, new RegExp(`<svg [^>]*id="${COMPARE_PLOT_ID}"`));
  // A: the baseline (ack p99 20 ms), B: this run (15 ms).
  assert.match(report, /<tr><td>p99<\/td><td>20.0 ms<\/td><td>15.0 ms<\/td><td class="better">-5.00 ms<\/td><td class="better">-25%<\/td><\/tr>/);
  assert.match(readFileSync(join(root, 'out', 'compare.html'), 'utf8'), /<h1>stratus loadgen: two runs compared<\/h1>/);

  // Without one: no comparison, no compare.html.
  const plain = writeReport(join(root, 'plain'), run());
  assert.ok(!plain.includes('compare.html') && !existsSync(join(root, 'plain', 'compare.html')));
  assert.doesNotMatch(readFileSync(join(root, 'plain', 'report.html'), 'utf8'), /Compared with the baseline/);
});

test('a baseline that is not a report: the run\'s own report is written, then one error names the folder', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'stratus-baseline-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  assert.throws(
    () => writeReport(join(root, 'out'), run(), join(root, 'no-such-run')),
    (err: unknown) => isStratusError(err) && /no-such-run is not a load-generator report: no such file or folder/.test(err.message),
  );
  for (const f of ['summary.json', 'intervals.hlog', 'report.html']) assert.ok(existsSync(join(root, 'out', f)), f);
  assert.ok(!existsSync(join(root, 'out', 'compare.html')));
  assert.deepEqual(JSON.parse(readFileSync(join(root, 'out', 'summary.json'), 'utf8')), run().summary);
});
