/**
 * `stratus bench --quick` end to end against the local stack: every scenario the bench has runs,
 * each with both sides and its ratios, and RESULTS.md is exactly what the JSON renders to. No
 * figure is asserted (the machines are shared); only that they were measured.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SCENARIOS } from '../../../bench/bench.js';
import { plotsDirOf, renderPlots, renderResultsMd, type BenchRun } from '../../../bench/results-md.js';
import { PROJECT_ROOT } from '../../../src/config.js';

test('bench --quick: every scenario with both sides and a ratio; RESULTS.md and its plots regenerate identically from the JSON', { timeout: 420_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-quick-'));
  try {
    const md = join(dir, 'RESULTS.md');
    const { code, stderr } = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(process.execPath, [join(PROJECT_ROOT, 'bin', 'stratus.js'), 'bench', '--quick', '--results-dir', dir, '--results-md', md], { timeout: 400_000 }, (err, _out, stderr) =>
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stderr }),
      ),
    );
    assert.equal(code, 0, stderr);
    const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    assert.equal(files.length, 1);
    assert.match(files[0]!, /^\d{8}-\d{4}-[0-9a-f]{12}(-dirty)?-quick\.json$/);
    const run = JSON.parse(readFileSync(join(dir, files[0]!), 'utf8')) as BenchRun;
    assert.equal(run.quick, true);
    assert.deepEqual(run.failures, []);
    assert.deepEqual(run.scenarios.map((s) => s.id), SCENARIOS.map((s) => s.id));
    for (const s of run.scenarios) {
      assert.ok(s.sides.length >= 2, `${s.id}: ${s.sides.length} side(s)`);
      for (const side of s.sides) assert.ok(Object.values(side.figures).length > 0 && Object.values(side.figures).every((v) => typeof v === 'number'), `${s.id}/${side.name}`);
      // A rate found by a search may be 0 in --quick's short probes (a target not met); every ratio
      // is a finite number, and each scenario has one above 0.
      assert.ok(s.ratios.length >= 1 && s.ratios.every((r) => Number.isFinite(r.value) && r.value >= 0) && s.ratios.some((r) => r.value > 0), `${s.id}: ${JSON.stringify(s.ratios)}`);
    }
    // The runtimes scenario's engine cells (Node 24 and Bun with @platformatic/kafka in --quick) all ran.
    const rt = run.scenarios.find((s) => s.id === 'runtimes')!;
    assert.deepEqual((rt.raw as { failed?: Record<string, string> }).failed, {}, 'runtimes: engine cells that failed');
    assert.ok(rt.sides.some((side) => side.name.startsWith('engine: Bun')), `runtimes: the engine on Bun ran (${rt.sides.map((x) => x.name).join('; ')})`);
    for (const k of ['cpuModel', 'cores', 'kernel', 'node', 'librdkafka', 'kafka', 'redis', 'commit', 'date'] as const) assert.ok(run.environment[k] !== undefined && run.environment[k] !== 'unknown', k);
    assert.equal(readFileSync(md, 'utf8'), renderResultsMd(run, files[0]!));
    const plots = renderPlots(run);
    assert.ok(plots.length >= 1, 'latency plots drawn');
    for (const p of plots) assert.equal(readFileSync(join(dir, 'plots', plotsDirOf(files[0]!), p.file), 'utf8'), p.svg, p.file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
