/**
 * deploy/ against the real thing: a real Prometheus (Debian's package) configured from
 * deploy/prometheus/prometheus.yml and loaded with the real alerts.yml scrapes a real `stratus run`
 * (every role, its own topics and keys) while the load generator drives it for 20 s (about 320
 * events/s from 40 devices, plus 20 device metrics/s through data_nexus.MetricsService). Then, over
 * Prometheus's HTTP API:
 *   - both scrape jobs' targets are up;
 *   - every rule of alerts.yml is loaded and evaluates with health "ok" on the real series;
 *   - every query of every dashboard panel ($__rate_interval as 10 s) returns at least one series,
 *     and what it returned is printed per panel (t.diagnostic) for the issue's note;
 *   - the counters Prometheus scraped agree exactly with what the load generator counted
 *     (received = sent, durable = acked, routed = delivered = results, metrics ingested = sent).
 * No speed is asserted.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { PROJECT_ROOT } from '../../../src/config.js';
import { EngineProcess } from '../../helpers/engine-process.js';
import { ALERT_RULES, PrometheusServer, type Sample } from '../../helpers/prometheus.js';

const LOAD_S = 20;
const RATE_INTERVAL = '10s';

interface Panel {
  title: string;
  targets: { refId: string; expr: string; legendFormat?: string }[];
}
const dashboard = JSON.parse(readFileSync(join(PROJECT_ROOT, 'deploy', 'grafana', 'stratus-dashboard.json'), 'utf8')) as { panels: Panel[] };
const alertNames = (parse(readFileSync(ALERT_RULES, 'utf8')) as { groups: { rules: { alert?: string }[] }[] }).groups
  .flatMap((g) => g.rules)
  .map((r) => r.alert!)
  .sort();

/** A `stratus loadgen --json` child; resolves with its exit code and its summary. */
function loadgen(args: string[]): { child: ChildProcess; done: Promise<{ code: number | null; summary: { counts: Record<string, unknown> } | null; stderr: string }> } {
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'stratus.js'), 'loadgen', '--json', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err = (err + s).slice(-8192)));
  const done = new Promise<{ code: number | null; summary: { counts: Record<string, unknown> } | null; stderr: string }>((resolve) =>
    child.on('exit', (code) => {
      let summary = null;
      try {
        summary = JSON.parse(out) as { counts: Record<string, unknown> };
      } catch {
        // No JSON (the run failed before its summary): the caller reports code and stderr.
      }
      resolve({ code, summary, stderr: err });
    }),
  );
  return { child, done };
}

/** A series' legend as Grafana would draw it: legendFormat with {{label}} filled in. */
function legend(format: string | undefined, s: Sample): string {
  if (format === undefined || format === '') return JSON.stringify(s.metric);
  return format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k: string) => s.metric[k] ?? '');
}

function figure(v: string): string {
  const n = Number(v);
  if (!Number.isFinite(n)) return v;
  return Math.abs(n) >= 1000 || Number.isInteger(n) ? n.toFixed(Number.isInteger(n) ? 0 : 1) : n.toPrecision(3);
}

test('a real Prometheus scraping a loaded engine: targets up, rules ok, every dashboard query returns data', { timeout: 170_000 }, async (t) => {
  const children: ChildProcess[] = [];
  let engine: EngineProcess | undefined;
  let prom: PrometheusServer | undefined;
  t.after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await prom?.stop();
    await engine?.stop();
  });

  engine = await EngineProcess.start();
  // Bounded whatever happens to this test: 150 s, then timeout(1) stops Prometheus.
  prom = await PrometheusServer.start({ target: `127.0.0.1:${engine.httpPort}`, intervalS: 1, boundS: 150 });
  const p = prom;

  const targets = await p.until('both scrape targets up', 30_000, async () => {
    const ts = await p.targets();
    return ts.length === 2 && ts.every((x) => x.health === 'up') ? ts : undefined;
  });
  assert.deepEqual(
    targets.map((x) => [x.labels.job, x.scrapeUrl]).sort(),
    [
      ['stratus', `http://127.0.0.1:${engine.httpPort}/metrics`],
      ['stratus-ingested', `http://127.0.0.1:${engine.httpPort}/metrics/ingested`],
    ],
  );

  // The load: 40 devices x 8 events/s on 4 connections, and 4 devices sending 5 metrics/s each.
  const common = ['--target', engine.address, '--duration', `${LOAD_S}s`, '--warmup', '1s', '--drain', '30s', '--connect-timeout', '15s'];
  const events = loadgen([...common, '--devices', '40', '--connections', '4', '--rate', '8', '--seed', '17']);
  const deviceMetrics = loadgen([...common, '--api', 'metrics', '--devices', '4', '--connections', '1', '--rate', '5', '--seed', '18']);
  children.push(events.child, deviceMetrics.child);

  // Query once the last 10 s (the rate window) lie wholly inside the load: results were being
  // delivered 11 s ago already.
  await p.until('10 s of load scraped', 90_000, async () => ((await p.query('sum(stratus_results_delivered_total offset 11s) > 0')).length > 0 ? true : undefined));
  const loadRunning = events.child.exitCode === null;

  const empty: string[] = [];
  for (const panel of dashboard.panels) {
    const lines: string[] = [];
    for (const target of panel.targets) {
      const expr = target.expr.replaceAll('$__rate_interval', RATE_INTERVAL);
      const result = await p.query(expr);
      if (result.length === 0) empty.push(`"${panel.title}" ${target.refId}: ${expr}`);
      const values = result
        .map((s) => `${legend(target.legendFormat, s)}=${figure(s.value)}`)
        .sort()
        .join(', ');
      lines.push(`${target.refId} ${values === '' ? '(no data)' : values}`);
    }
    t.diagnostic(`panel "${panel.title}": ${lines.join(' | ')}`);
  }
  t.diagnostic(`(queried with $__rate_interval=${RATE_INTERVAL}, ${loadRunning ? 'load still running' : 'after the load ended'})`);

  // Every rule of alerts.yml loaded from that file and evaluated on the real series without error.
  const groups = await p.until('every rule evaluated', 20_000, async () => {
    const gs = await p.rules();
    const rules = gs.flatMap((g) => g.rules);
    return rules.length === alertNames.length && rules.every((r) => !r.lastEvaluation.startsWith('0001')) ? gs : undefined;
  });
  assert.deepEqual(groups.map((g) => g.file), [ALERT_RULES]);
  const rules = groups.flatMap((g) => g.rules);
  assert.deepEqual(rules.map((r) => r.name).sort(), alertNames);
  for (const r of rules) assert.equal(r.health, 'ok', `${r.name}: ${r.lastError}`);
  t.diagnostic(`alerts on the loaded engine: ${rules.map((r) => `${r.name}=${r.state}`).join(', ')}`);

  // The load generator saw every event acked with one correct result (exit 0) ...
  const ev = await events.done;
  const dm = await deviceMetrics.done;
  assert.equal(ev.code, 0, `loadgen (events) exited ${ev.code}: ${ev.stderr}`);
  assert.equal(dm.code, 0, `loadgen (metrics) exited ${dm.code}: ${dm.stderr}`);
  const c = ev.summary!.counts as { sent: number; acked: number; results: number };
  const m = dm.summary!.counts as { sent: number; acked: number };
  t.diagnostic(`loadgen: events sent ${c.sent}, acked ${c.acked}, results ${c.results}; device metrics sent ${m.sent}, acked ${m.acked}`);

  // ... and Prometheus scraped the same numbers from the engine, once a scrape after the end shows them.
  const totals = {
    received: 'sum(stratus_events_received_total)',
    durable: 'sum(stratus_events_durable_total)',
    routed: 'sum(stratus_forwarder_results_routed_total)',
    delivered: 'sum(stratus_results_delivered_total)',
    ingested: 'sum(stratus_streams_entries_ingested_total)',
    processed: 'sum(stratus_processor_events_total)',
  };
  const want = { received: c.sent, durable: c.acked, routed: c.results, delivered: c.results, ingested: m.sent };
  const read = async () => {
    const out: Record<string, number> = {};
    for (const [k, q] of Object.entries(totals)) out[k] = Number((await p.query(q))[0]?.value ?? NaN);
    return out;
  };
  let seen: Record<string, number> = {};
  await p
    .until('the final counters scraped', 15_000, async () => {
      seen = await read();
      // processed too: the processor counts a batch when it settles it, which can come a poll
      // after its results were routed (the last batch of a run settles on the next empty poll).
      return Object.entries(want).every(([k, v]) => seen[k] === v) && seen.processed! >= c.acked ? true : undefined;
    })
    .catch(() => {});
  t.diagnostic(`prometheus totals: ${JSON.stringify(seen)}`);
  assert.deepEqual(
    Object.fromEntries(Object.keys(want).map((k) => [k, seen[k]])),
    want,
  );
  // An event read again after a rebalance is processed again: at least once.
  assert.ok(seen.processed! >= c.acked, `processed ${seen.processed} < acked ${c.acked}`);

  assert.deepEqual(empty, [], 'dashboard queries that returned no series');
});
