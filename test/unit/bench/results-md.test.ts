import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { regenerateResultsMd } from '../../../bench/bench.js';
import { renderPlots, renderResultsMd, SCENARIO_PLAN, type BenchRun } from '../../../bench/results-md.js';
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
