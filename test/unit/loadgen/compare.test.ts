/**
 * Comparing two runs (loadgen/compare.ts, `stratus report compare`): the delta table's exact
 * figures, the check that refuses a folder that is not a report with one line naming it, and the
 * compare.html the command writes. The page as a browser draws it is in
 * test/integration/loadgen/report-browser.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { COMPARE_PLOT_ID, compareReports, compareSection, deltaRows, deltaText, readReportSummary, runLabel, summaryProblem, verdictOf } from '../../../loadgen/compare.js';
import type { LoadgenSummary } from '../../../loadgen/summary.js';
import { parseCommand } from '../../../src/cli/command.js';
import { reportCommand } from '../../../src/cli/report-command.js';
import { isStratusError } from '../../../src/errors.js';
import { latency, summary } from './report-fixture.js';

/** B: ack faster in the body, slower in the tail; fewer results; some failures. */
function slower(): LoadgenSummary {
  const a = summary();
  return summary({
    startedAt: '2026-12-05T02:10:00.000Z',
    latency: { ack: latency(3, 8, 30, 150, 80), result: latency(10, 22, 44, 100, 260) },
    throughput: { sentPerS: 1000, ackedPerS: 990, resultsPerS: 950.5 },
    counts: { ...a.counts, missing: 12, errors: { UNAVAILABLE: 3, RESET: 1 }, rejected: { RESOURCE_EXHAUSTED: 5 } },
  });
}

test('delta table: B - A and (B - A) / A for every row, exactly', () => {
  const rows = deltaRows(summary(), slower());
  const view = rows.map((r) => [r.group, r.label, r.a, r.b, r.change, r.relative, verdictOf(r)]);
  assert.deepEqual(view, [
    ['ack latency', 'p50', 4, 3, -1, -0.25, 'better'],
    ['ack latency', 'p90', 8, 8, 0, 0, ''],
    ['ack latency', 'p99', 20, 30, 10, 0.5, 'worse'],
    ['ack latency', 'p99.9', 50, 150, 100, 2, 'worse'],
    ['ack latency', 'max', 80, 80, 0, 0, ''],
    ['result latency', 'p50', 10, 10, 0, 0, ''],
    ['result latency', 'p90', 20, 22, 2, 0.1, 'worse'],
    ['result latency', 'p99', 40, 44, 4, 0.1, 'worse'],
    ['result latency', 'p99.9', 100, 100, 0, 0, ''],
    ['result latency', 'max', 200, 260, 60, 0.3, 'worse'],
    ['throughput (measured window)', 'sent', 1000, 1000, 0, 0, ''],
    ['throughput (measured window)', 'acked', 1000, 990, -10, -0.01, ''], // under 2%: not judged
    ['throughput (measured window)', 'results', 1000, 950.5, -49.5, -0.0495, 'worse'],
    ['counts', 'missing (acked, no result)', 0, 12, 12, null, 'worse'],
    ['counts', 'duplicates', 0, 0, 0, null, ''],
    ['counts', 'wrong values', 0, 0, 0, null, ''],
    ['counts', 'errors', 0, 4, 4, null, 'worse'],
    ['counts', 'rejected', 0, 5, 5, null, 'worse'],
    ['counts', 'unacked', 0, 0, 0, null, ''],
  ]);
  // Reversed, every change flips sign and every verdict flips.
  const back = deltaRows(slower(), summary());
  rows.forEach((r, i) => {
    assert.equal(back[i]!.change, r.change === null ? null : r.change === 0 ? 0 : -r.change, r.label);
    const v = verdictOf(r);
    assert.equal(verdictOf(back[i]!), v === 'better' ? 'worse' : v === 'worse' ? 'better' : '', r.label);
    if (r.label === 'acked') assert.equal(verdictOf(back[i]!), '', 'reversed, still under 2%');
  });
  // Offered load has no better direction.
  assert.equal(verdictOf({ ...rows.find((r) => r.label === 'sent')!, change: 5, relative: 0.005 }), '');
});

test('a metric only one run measured: a dash on the other side, no change', () => {
  const ackOnly = summary({ latency: { ack: latency(4, 8, 20, 50, 80) } });
  const rows = deltaRows(ackOnly, summary()).filter((r) => r.group === 'result latency');
  assert.equal(rows.length, 5);
  for (const r of rows) assert.deepEqual([r.a, r.change, r.relative, verdictOf(r)], [null, null, null, '']);
  assert.ok(!deltaRows(ackOnly, ackOnly).some((r) => r.group === 'result latency'));
  assert.match(deltaText(ackOnly, summary()), /^ {2}p50\s+\u2014\s+10.0 ms\s+\u2014\s+\u2014$/m);
});

test('the text table: a line per run, then the groups and rows with signed changes', () => {
  const text = deltaText(summary(), slower());
  const lines = text.split('\n');
  assert.equal(lines[0], 'A: 2026-12-05T02:00:00.000Z \u2192 127.0.0.1:21351: 2,000 devices, 1,000 ev/s, stratus API, iot, open loop, 30 s measured');
  assert.match(lines[1]!, /^B: 2026-12-05T02:10:00.000Z /);
  assert.match(text, /^ {2}p99\.9\s+50\.0 ms\s+150 ms\s+\+100 ms\s+\+200% worse$/m);
  assert.match(text, /^ {2}p50\s+4\.00 ms\s+3\.00 ms\s+-1\.00 ms\s+-25% better$/m);
  assert.match(text, /^ {2}results\s+1,000 \/s\s+950\.5 \/s\s+-49\.5 \/s\s+-5\.0% worse$/m);
  assert.match(text, /^ {2}missing \(acked, no result\)\s+0\s+12\s+\+12\s+from 0 worse$/m);
  assert.match(text, /^ {2}duplicates\s+0\s+0\s+0\s+\u2014$/m);
});

test('run label: when, target and load; batch only when not 1', () => {
  assert.equal(runLabel(summary({ options: { ...summary().options, batch: 10 } })), '2026-12-05T02:00:00.000Z \u2192 127.0.0.1:21351: 2,000 devices, 1,000 ev/s, stratus API, iot, open loop, batch 10, 30 s measured');
});

test('compare.html: both runs on one plot (A blue, B orange; ack solid, result dashed) and the delta table', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'stratus-compare-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  for (const [name, s] of [['a', summary()], ['b', slower()]] as const) {
    mkdirSync(join(root, name));
    writeFileSync(join(root, name, 'summary.json'), JSON.stringify(s));
  }
  const { file } = compareReports(join(root, 'a'), join(root, 'b'), join(root, 'out'));
  assert.equal(file, join(root, 'out', 'compare.html'));
  const html = readFileSync(file, 'utf8');
  assert.match(html, new RegExp(`<svg [^>]*id="${COMPARE_PLOT_ID}"`));
  const paths = [...html.matchAll(/<path class="series" data-series="([^"]*)" data-points="(\d+)" d="[^"]*" (stroke="[^"]*"(?: stroke-dasharray="[^"]*")?)/g)].map((m) => [m[1], Number(m[2]), m[3]]);
  assert.deepEqual(paths, [
    ['A ack', 6, 'stroke="#1f77b4"'],
    ['A result', 6, 'stroke="#1f77b4" stroke-dasharray="6 3"'],
    ['B ack', 6, 'stroke="#ff7f0e"'],
    ['B result', 6, 'stroke="#ff7f0e" stroke-dasharray="6 3"'],
  ]);
  assert.ok(html.includes(`<td class="text">${runLabel(summary())}</td>`), 'run A labelled');
  assert.match(html, /<tr><td>p99.9<\/td><td>50.0 ms<\/td><td>150 ms<\/td><td class="worse">\+100 ms<\/td><td class="worse">\+200%<\/td><\/tr>/);
  assert.match(html, /<tr><td>p50<\/td><td>4.00 ms<\/td><td>3.00 ms<\/td><td class="better">-1.00 ms<\/td><td class="better">-25%<\/td><\/tr>/);
  assert.match(html, /<tr class="group"><th colspan="5">counts<\/th><\/tr>/);
  // Self-contained like report.html.
  assert.doesNotMatch(html, /<script|<link|<[^>]*\b(?:src|href)\s*=/i);
  assert.match(html, /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">/);
});

test('every string from a summary is escaped in the comparison', () => {
  const evil = '<img src=x onerror="alert(1)">';
  const html = compareSection(summary({ target: evil }), summary({ startedAt: evil }));
  assert.ok(!html.includes(evil));
  assert.doesNotMatch(html, /<img/);
});

test('a folder that is not a report: one error naming it and what is wrong', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'stratus-compare-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const put = (name: string, text: string) => {
    mkdirSync(join(root, name));
    writeFileSync(join(root, name, 'summary.json'), text);
    return join(root, name);
  };
  const bad = (data: unknown) => put(`d${Math.random().toString(36).slice(2)}`, JSON.stringify(data));
  const cases: [string, RegExp][] = [
    [join(root, 'nothing-here'), /nothing-here is not a load-generator report: no such file or folder/],
    [(mkdirSync(join(root, 'empty')), join(root, 'empty')), /empty is not a load-generator report: .*empty\/summary\.json cannot be read/],
    [put('notjson', '{"version": 1,'), /notjson is not a load-generator report: .*summary\.json is not JSON/],
    [bad({ ...summary(), version: 2 }), /summary\.json: version 2, this stratus reads version 1/],
    [bad([1, 2]), /summary\.json: not a JSON object/],
    [bad({ ...summary(), throughput: { sentPerS: 1, ackedPerS: '2', resultsPerS: 3 } }), /throughput\.ackedPerS is not a number/],
    [bad({ ...summary(), counts: { ...summary().counts, errors: { X: 'many' } } }), /counts\.errors is not a record of counts/],
    [bad({ ...summary(), latency: { ack: { ...latency(1, 2, 3, 4, 5), p99Ms: null } } }), /latency\.ack\.p99Ms is not a number/],
    [bad({ ...summary(), latency: { ack: { ...latency(1, 2, 3, 4, 5), distribution: [[50]] } } }), /latency\.ack\.distribution is not a list of \[percentile, ms\] pairs/],
  ];
  for (const [path, want] of cases) {
    assert.throws(
      () => readReportSummary(path),
      (err: unknown) => {
        assert.ok(isStratusError(err), String(err));
        assert.match(err.message, want);
        assert.match(err.message, /\(write one with `stratus loadgen --report DIR`\)$/);
        assert.doesNotMatch(err.message, /\n/);
        return true;
      },
      path,
    );
  }
  // A good one, as a folder or as the file itself.
  const good = put('good', JSON.stringify(summary()));
  assert.deepEqual(readReportSummary(good), summary());
  assert.deepEqual(readReportSummary(join(good, 'summary.json')), summary());
  assert.equal(summaryProblem(summary()), null);
  // An older summary without window or the per-second percentiles still compares: neither is read.
  const { window: _w, ...old } = summary();
  assert.equal(summaryProblem(old), null);
});

/** Runs `stratus report ARGV...` as main.ts would, returning its exit code and what it printed. */
async function report(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const parsed = parseCommand(reportCommand, argv);
  assert.ok(parsed.kind === 'run');
  let stdout = '';
  let stderr = '';
  const out = process.stdout.write;
  const err = process.stderr.write;
  process.stdout.write = ((s: string) => ((stdout += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((stderr += s), true)) as typeof process.stderr.write;
  try {
    return { code: await reportCommand.run(parsed.ctx), stdout, stderr };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

test('stratus report compare A B [--out DIR]: compare.html into B (or DIR), the table on stdout', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'stratus-compare-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  for (const [name, s] of [['a', summary()], ['b', slower()]] as const) {
    mkdirSync(join(root, name));
    writeFileSync(join(root, name, 'summary.json'), JSON.stringify(s));
  }
  const r = await report(['compare', join(root, 'a'), join(root, 'b')]);
  assert.equal(r.code, 0);
  assert.equal(r.stdout, deltaText(summary(), slower()));
  assert.equal(r.stderr, `stratus report: wrote ${join(root, 'b', 'compare.html')}\n`);
  assert.ok(existsSync(join(root, 'b', 'compare.html')));
  const o = await report(['compare', join(root, 'a'), join(root, 'b'), '--out', join(root, 'o')]);
  assert.equal(o.code, 0);
  assert.ok(existsSync(join(root, 'o', 'compare.html')));

  // Every shape but `compare A B` is a usage error: the words check of parseCommand or the command's own.
  for (const argv of [[], ['compare', join(root, 'a')], ['diff', 'x', 'y'], ['compare', 'a', 'b', 'c']]) {
    await assert.rejects(report(argv), (e: unknown) => isStratusError(e) && e.code === 'STRATUS_USAGE', argv.join(' '));
  }
  await assert.rejects(report(['compare', join(root, 'a')]), /usage: stratus report compare A B \[--out DIR\]/);
  await assert.rejects(report(['compare', join(root, 'a'), join(root, 'missing')]), /missing is not a load-generator report/);
  assert.throws(() => parseCommand(reportCommand, ['compare', 'a', 'b', '--bogus']), /bogus/);
});

test('the page says which changes are left untinted', () => {
  assert.match(compareSection(summary(), slower()), /changes under 2% are not tinted/);
  assert.match(compareSection(summary(), slower()), /<tr><td>acked<\/td><td>1,000 \/s<\/td><td>990 \/s<\/td><td>-10 \/s<\/td><td>-1.0%<\/td><\/tr>/);
});
