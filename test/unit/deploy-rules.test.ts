/**
 * deploy/ as promtool and the engine's registry see it: the alert rules pass `promtool check rules`
 * and their unit tests (`promtool test rules`: every alert fires on series that should trigger it
 * and stays quiet on healthy ones), the scrape config passes `promtool check config`, and every
 * metric name a dashboard query or an alert uses is one the engine exports, so renaming a metric
 * in src/http/metrics.ts breaks this test instead of a dashboard in production.
 * (Debian's prometheus package ships promtool; setup.sh --for test installs it.)
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { PROJECT_ROOT } from '../../src/config.js';
import { registry } from '../../src/http/metrics.js';

const run = promisify(execFile);
const PROM_DIR = join(PROJECT_ROOT, 'deploy', 'prometheus');
const DASHBOARD = join(PROJECT_ROOT, 'deploy', 'grafana', 'stratus-dashboard.json');

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: { refId: string; expr?: string; datasource?: { type: string; uid: string } }[];
}
interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { uid: string; schemaVersion: number; panels: Panel[] };
const rules = (parse(readFileSync(join(PROM_DIR, 'alerts.yml'), 'utf8')) as { groups: { rules: AlertRule[] }[] }).groups.flatMap((g) => g.rules);

/** promtool's stdout and stderr together, and its exit code (0: clean). */
async function promtool(args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run('promtool', args, { cwd: PROM_DIR });
    return { code: 0, output: stdout + stderr };
  } catch (e) {
    const err = e as { code?: number | string; stdout?: string; stderr?: string };
    if (err.code === 'ENOENT') throw new Error('promtool not found: install Debian\'s prometheus package (bash scripts/setup.sh --for test)');
    return { code: Number(err.code), output: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

test('promtool check rules: alerts.yml is valid, every rule counted', async () => {
  const r = await promtool(['check', 'rules', 'alerts.yml']);
  assert.equal(r.code, 0, r.output);
  assert.match(r.output, new RegExp(`SUCCESS: ${rules.length} rules found`), r.output);
});

test('promtool test rules: every alert fires on its trigger and stays quiet on healthy series', async () => {
  const r = await promtool(['test', 'rules', 'alerts.test.yml']);
  assert.equal(r.code, 0, r.output);
  assert.match(r.output, /SUCCESS/);
  // Every alert is tested both ways: firing in one case (expected alerts listed) and quiet in one.
  const tests = (parse(readFileSync(join(PROM_DIR, 'alerts.test.yml'), 'utf8')) as { tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[] }).tests;
  const cases = tests.flatMap((t) => t.alert_rule_test);
  for (const rule of rules.filter((x) => x.alert !== undefined)) {
    assert.ok(cases.some((c) => c.alertname === rule.alert && c.exp_alerts.length > 0), `${rule.alert}: no test where it fires`);
    assert.ok(cases.some((c) => c.alertname === rule.alert && c.exp_alerts.length === 0), `${rule.alert}: no test where it stays quiet`);
  }
});

test('promtool check config: prometheus.yml (with its rule_files) is valid', async () => {
  const r = await promtool(['check', 'config', 'prometheus.yml']);
  assert.equal(r.code, 0, r.output);
  assert.match(r.output, /SUCCESS: 1 rule files found/);
  const config = parse(readFileSync(join(PROM_DIR, 'prometheus.yml'), 'utf8')) as { rule_files: string[]; scrape_configs: { job_name: string; metrics_path: string; static_configs: { targets: string[] }[] }[] };
  assert.deepEqual(config.rule_files, ['alerts.yml']);
  assert.deepEqual(
    config.scrape_configs.map((j) => [j.job_name, j.metrics_path, j.static_configs.flatMap((s) => s.targets)]),
    [
      ['stratus', '/metrics', ['127.0.0.1:8080']],
      ['stratus-ingested', '/metrics/ingested', ['127.0.0.1:8080']],
    ],
  );
});

test('every alert has a for:, a severity and a summary and description', () => {
  assert.ok(rules.length >= 8);
  for (const r of rules) {
    if (r.alert === undefined) continue;
    assert.match(r.for ?? '', /^\d+[smh]$/, `${r.alert}: for`);
    assert.ok(['critical', 'warning'].includes(r.labels?.severity ?? ''), `${r.alert}: severity ${r.labels?.severity}`);
    assert.ok((r.annotations?.summary ?? '').length > 10, `${r.alert}: summary`);
    assert.ok((r.annotations?.description ?? '').length > 40, `${r.alert}: description`);
  }
});

test('the dashboard: uid stratus, every panel on the prometheus datasource with queries', () => {
  assert.equal(dashboard.uid, 'stratus');
  assert.ok(dashboard.schemaVersion >= 36, `schemaVersion ${dashboard.schemaVersion}`);
  const ids = dashboard.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids unique');
  for (const p of dashboard.panels) {
    assert.deepEqual(p.datasource, { type: 'prometheus', uid: 'prometheus' }, p.title);
    assert.ok(p.targets !== undefined && p.targets.length > 0, `${p.title}: no targets`);
    assert.equal(new Set(p.targets.map((t) => t.refId)).size, p.targets.length, `${p.title}: refIds unique`);
    for (const t of p.targets) {
      assert.ok(typeof t.expr === 'string' && t.expr.trim() !== '', `${p.title} ${t.refId}: no expr`);
      assert.deepEqual(t.datasource, { type: 'prometheus', uid: 'prometheus' }, `${p.title} ${t.refId}`);
      // Grafana's $__rate_interval in every range: at least 4 scrapes, whatever the scrape interval.
      for (const range of t.expr.match(/\[[^\]]*\]/g) ?? []) assert.equal(range, '[$__rate_interval]', `${p.title}: ${t.expr}`);
    }
  }
});

/** Series Prometheus makes itself for every target, not the engine. */
const PROMETHEUS_SERIES = new Set(['up']);
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

/**
 * The metric names a PromQL expression reads: identifiers outside strings, label matchers, ranges
 * and grouping clauses that are not function calls or keywords.
 */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = bare.slice(m.index! + m[0].length).trimStart();
    if (after.startsWith('(') || KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

async function exportedNames(): Promise<Set<string>> {
  const names = new Set<string>(PROMETHEUS_SERIES);
  for (const m of await registry.getMetricsAsJSON()) {
    names.add(m.name);
    if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
  }
  return names;
}

test('metricNames reads the names of a query, and a misspelt name is caught', async () => {
  assert.deepEqual(
    metricNames('histogram_quantile(0.99, sum by (stage, le) (rate(stratus_stage_latency_seconds_bucket{stage="ack"}[$__rate_interval]))) > 0.1 and on (instance) up{job=~"x.*"}'),
    ['stratus_stage_latency_seconds_bucket', 'up'],
  );
  const known = await exportedNames();
  assert.ok(known.has('stratus_events_received_total'));
  assert.equal(known.has('stratus_events_recieved_total'), false);
  assert.ok(known.has('stratus_stage_latency_seconds_count'), 'a histogram\'s _count');
});

test('every metric a dashboard query or an alert reads is exported by the engine', async () => {
  const known = await exportedNames();
  const used: [string, string][] = [
    ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => [`panel "${p.title}"`, t.expr ?? ''] as [string, string])),
    ...rules.map((r) => [`rule ${r.alert ?? r.record}`, r.expr] as [string, string]),
  ];
  const unknown: string[] = [];
  for (const [where, expr] of used) {
    const names = metricNames(expr);
    assert.ok(names.length > 0, `${where}: reads no metric: ${expr}`);
    for (const n of names) if (!known.has(n)) unknown.push(`${where}: ${n}`);
  }
  // The metrics an alert's description tells the operator to check exist too.
  for (const r of rules) {
    for (const n of JSON.stringify(r.annotations ?? {}).match(/\bstratus_[a-z0-9_]+/g) ?? []) if (!known.has(n)) unknown.push(`rule ${r.alert} annotations: ${n}`);
  }
  assert.deepEqual(unknown, []);
});
