import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { regenerateResultsMd } from '../../../bench/bench.js';
import { mergeRuns, renderPlots, renderResultsMd, SCENARIO_PLAN, type BenchRun } from '../../../bench/results-md.js';
import { ratio } from '../../../bench/scenario.js';

const env = { date: '2026-11-23T00:00:00.000Z', commit: 'abc123', cpuModel: 'CPU | with pipe', cores: 2, memoryGiB: 24, kernel: '6.1', node: 'v20', librdkafka: '2.15.1', kafka: '4.3.1', redis: '7.0.15' };
const run = (quick: boolean, perS: number): BenchRun => ({
  version: 1,
  quick,
  environment: env,
  scenarios: [
    {
      id: 'list-path',
      title: 'List path',
      params: { events: 20000 },
      sides: [
        { name: 'Stratus', figures: { eventsPerS: perS } },
        { name: 'per-event', figures: { eventsPerS: 1000 } },
      ],
      ratios: [ratio('events/s: Stratus / per-event', perS / 1000, { op: '>=', value: 20 })],
      reading: 'Reading.',
    },
  ],
  failures: [{ id: 'durable-ack', error: 'the engine did not start' }],
});

test('RESULTS.md: environment, targets met or not, every planned scenario accounted for, pipes escaped', () => {
  const md = renderResultsMd(run(false, 25_000), 'x.json');
  assert.equal(md, renderResultsMd(run(false, 25_000), 'x.json'), 'the same JSON renders the same text');
  assert.match(md, /\| 2026-11-23T00:00:00\.000Z \| abc123 \| CPU \\\| with pipe \| 2 \|/);
  assert.match(md, /\| 3\. List path vs a per-event awaited push and redis-benchmark -P 64 \| events\/s: Stratus \/ per-event \| 25 \| >= 20 \| met \|/);
  assert.match(md, /\| 1\. Durable ack vs the grpc-js ceiling \| \| \| \| failed to run \|/);
  for (const p of SCENARIO_PLAN.filter((p) => !['list-path', 'durable-ack'].includes(p.id))) assert.ok(md.includes(`| ${p.title} | | | | not measured yet |`), p.id);
  assert.match(md, /- \*\*durable-ack\*\*: the engine did not start/);
  assert.doesNotMatch(md, /--quick/);
  assert.match(renderResultsMd(run(false, 5_000), 'x.json'), /\| 5 \| >= 20 \| not met \|/);
  assert.match(renderResultsMd(run(true, 5_000), 'x.json'), /This is a `--quick` run/);
});

test('regenerated from the folder: the newest full run, else the newest quick one', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-results-'));
  try {
    const md = join(dir, 'RESULTS.md');
    writeFileSync(join(dir, '20261101-0000-aaa-quick.json'), JSON.stringify(run(true, 1_000)));
    regenerateResultsMd(dir, md);
    assert.match(readFileSync(md, 'utf8'), /20261101-0000-aaa-quick\.json/);
    writeFileSync(join(dir, '20261102-0000-bbb.json'), JSON.stringify(run(false, 2_000)));
    writeFileSync(join(dir, '20261103-0000-ccc-quick.json'), JSON.stringify(run(true, 3_000)));
    regenerateResultsMd(dir, md);
    assert.equal(readFileSync(md, 'utf8'), renderResultsMd(run(false, 2_000), '20261102-0000-bbb.json'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('latency plots: one SVG per plot under plots/<run>/, linked from RESULTS.md, the same bytes from the same JSON; other runs\' plots removed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-plots-'));
  try {
    const r = run(false, 25_000);
    r.scenarios[0]!.plots = [{ id: 'ack', title: 'Ack [latency]', series: [{ name: 'Stratus', distribution: [[0, 1], [50, 2], [99, 9], [100, 12]] }, { name: 'per-event', distribution: [[0, 3], [100, 40]] }] }];
    const md = join(dir, 'RESULTS.md');
    writeFileSync(join(dir, '20261101-0000-aaa.json'), JSON.stringify(run(false, 1_000)));
    mkdirSync(join(dir, 'plots', '20261101-0000-aaa'), { recursive: true });
    writeFileSync(join(dir, 'plots', '20261101-0000-aaa', 'stale.svg'), '<svg/>');
    writeFileSync(join(dir, '20261102-0000-bbb.json'), JSON.stringify(r));
    regenerateResultsMd(dir, md);
    const text = readFileSync(md, 'utf8');
    assert.match(text, /!\[Ack latency\]\(bench\/results\/plots\/20261102-0000-bbb\/list-path-ack\.svg\)/);
    const [plot] = renderPlots(r);
    assert.equal(plot!.file, 'list-path-ack.svg');
    assert.equal(readFileSync(join(dir, 'plots', '20261102-0000-bbb', 'list-path-ack.svg'), 'utf8'), plot!.svg);
    assert.equal(renderPlots(r)[0]!.svg, plot!.svg);
    assert.match(plot!.svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.equal((plot!.svg.match(/<path class="series" [^>]*data-points="[1-9]/g) ?? []).length, 2, 'both series drawn');
    assert.equal(existsSync(join(dir, 'plots', '20261101-0000-aaa')), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('RESULTS.md merge rule: the newest full run, with each scenario of a newer non-quick --scenario run over it, that section naming its own run', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-merge-'));
  try {
    const md = join(dir, 'RESULTS.md');
    const at = (date: string, commit: string) => ({ ...env, date, commit });
    const partial = (date: string, commit: string, quick: boolean, scenarios: BenchRun['scenarios']): BenchRun => ({ version: 1, quick, environment: at(date, commit), scenarios, failures: [], scenarioFilter: scenarios.map((s) => s.id) });
    const listPath = (perS: number) => run(false, perS).scenarios[0]!;
    const archive = (rowsPerS: number): BenchRun['scenarios'][number] => ({
      id: 'archive',
      title: 'Archive',
      params: { events: 10 },
      sides: [{ name: 'sqlite: archiver', figures: { rowsPerS } }, { name: 'sqlite: ceiling', figures: { rowsPerS: 1000 } }],
      ratios: [ratio('rows/s: archiver / ceiling', rowsPerS / 1000)],
      reading: `Archived ${rowsPerS}.`,
      plots: [{ id: 'result', title: 'Result', series: [{ name: 'off', distribution: [[0, 1], [100, 2]] }] }],
    });
    const write = (file: string, r: BenchRun) => writeFileSync(join(dir, file), JSON.stringify(r));
    write('20261101-0000-aaa.json', partial('2026-11-01T00:00:00.000Z', 'aaa', false, [listPath(1_111)])); // older than the full run: ignored
    write('20261102-0000-bbb.json', { ...run(false, 2_000), environment: at('2026-11-02T00:00:00.000Z', 'bbb') }); // the full run
    write('20261103-0000-ccc-quick.json', partial('2026-11-03T00:00:00.000Z', 'ccc', true, [listPath(3_333)])); // quick: ignored
    write('20261104-0000-ddd.json', partial('2026-11-04T00:00:00.000Z', 'ddd', false, [listPath(4_444), archive(500)]));
    write('20261105-0000-eee.json', partial('2026-11-05T00:00:00.000Z', 'eee', false, [archive(700)]));
    regenerateResultsMd(dir, md);
    const text = readFileSync(md, 'utf8');
    assert.match(text, /from \[bench\/results\/20261102-0000-bbb\.json\]/, 'the full run is the one at the top');
    assert.match(text, /\| 2026-11-02T00:00:00\.000Z \| bbb \|/);
    assert.match(text, /Measured again or added since by `--scenario` runs \(\[bench\/results\/20261104-0000-ddd\.json\]\(bench\/results\/20261104-0000-ddd\.json\), \[bench\/results\/20261105-0000-eee\.json\]\(bench\/results\/20261105-0000-eee\.json\)\): \*\*list-path\*\*, \*\*archive\*\*/);
    // list-path from ddd (replacing the full run's), archive from eee (the newest that measured it).
    const section = (title: string) => text.slice(text.indexOf(`## ${title}`), text.indexOf('\n## ', text.indexOf(`## ${title}`) + 1) >>> 0);
    const lp = section('3. List path');
    assert.match(lp, /From a later `--scenario` run, \[bench\/results\/20261104-0000-ddd\.json\]/);
    assert.match(lp, /\| 2026-11-04T00:00:00\.000Z \| ddd \|/);
    assert.match(lp, /\| eventsPerS \| 4,444 \| 1,000 \|/);
    const ar = section('Archive');
    assert.match(ar, /\[bench\/results\/20261105-0000-eee\.json\]/);
    assert.match(ar, /\| 2026-11-05T00:00:00\.000Z \| eee \|/);
    assert.match(ar, /Archived 700\./);
    assert.match(ar, /\(bench\/results\/plots\/20261105-0000-eee\/archive-result\.svg\)/);
    assert.ok(existsSync(join(dir, 'plots', '20261105-0000-eee', 'archive-result.svg')), 'the partial run\'s plots drawn under its own folder');
    assert.doesNotMatch(text, /1,111|3,333|Archived 500/);
    // The full run's failure of a scenario no partial run measured is still reported.
    assert.match(text, /- \*\*durable-ack\*\*: the engine did not start/);
    const merged = mergeRuns([{ file: 'b.json', run: run(false, 2_000) }, { file: 'c.json', run: partial('x', 'c', false, [{ ...listPath(5), id: 'durable-ack' }]) }])!;
    assert.deepEqual(merged.run.failures, [], 'a failure measured since is not reported');
    // Without newer partial runs: exactly the full run's own rendering.
    const only = mergeRuns([{ file: '20261102-0000-bbb.json', run: run(false, 2_000) }, { file: '20261101-0000-aaa.json', run: partial('x', 'aaa', false, [listPath(1)]) }])!;
    assert.equal(only.from.size, 0);
    assert.equal(renderResultsMd(only.run, only.file, only.from), renderResultsMd(run(false, 2_000), '20261102-0000-bbb.json'));
    // A partial run is never the top run while a full run exists, however new.
    assert.equal(mergeRuns([{ file: '1.json', run: run(false, 1) }, { file: '2.json', run: partial('x', 'y', false, [listPath(2)]) }])!.file, '1.json');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
