/**
 * The Helm chart (deploy/helm/stratus/) cannot be installed here (no Kubernetes cluster, no Docker
 * engine), so it is checked the way a cluster would first read it, and against the code:
 *   - `helm lint --strict`, and `helm template` with the default values and two variants (autoscaling
 *     off with the ServiceMonitor on, Redis in cluster mode with a password; the whole engine in
 *     one group);
 *   - kubeconform -strict on every rendered object, against the JSON schemas of Kubernetes 1.25 and
 *     1.37 (test/helpers/k8s-tools.ts says where they come from); the ServiceMonitor, a CRD with no
 *     schema in that set, is skipped there and checked below instead;
 *   - what the objects say, read with `yaml`: every role of `stratus run` and the worker run; each
 *     pod probes /livez (liveness) and /readyz (readiness) on its http.port; every STRATUS_* name a
 *     pod gets is an option of src/config.ts, and each pod's environment loads with the engine's own
 *     loadConfig; terminationGracePeriodSeconds outlasts the drain those settings allow; a PDB and a
 *     Service per group select its pods; the HPA scales the gateway on a gauge the engine exports;
 *   - a broken chart fails: an object with a field Kubernetes does not have is refused by
 *     kubeconform, and a bad value by the chart's own checks.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { Gauge } from 'prom-client';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { envName, loadConfig, OPTIONS, PROJECT_ROOT, type Config } from '../../../src/config.js';
import { registry } from '../../../src/http/metrics.js';
import { helmPath, kubeconformPath, kubernetesSchemas } from '../../helpers/k8s-tools.js';

const execFileP = promisify(execFile);

const CHART = join(PROJECT_ROOT, 'deploy', 'helm', 'stratus');
/** The oldest and newest Kubernetes the schema package has; Chart.yaml's kubeVersion is >=1.25. */
const KUBE_VERSIONS = ['1.25.0', '1.37.0'];
const RELEASE = 'stratus';
const NAMESPACE = 'stratus';

/** The roles `stratus run --roles` takes (src/cli/run-command.ts), read as compose.test.ts reads them. */
const RUN_ROLES = (/const ROLES = \[([^\]]*)\] as const/.exec(readFileSync(join(PROJECT_ROOT, 'src', 'cli', 'run-command.ts'), 'utf8'))?.[1] ?? '')
  .split(',')
  .map((r) => r.trim().replace(/^'|'$/g, ''))
  .filter((r) => r !== '');
/** Every option's environment variable. */
const ENV_NAMES = new Set(Object.keys(OPTIONS).map(envName));
const REDIS_MODE = envName('redis.mode');

/** The image docker-compose.yml builds from the Dockerfile (the service with `build:`). */
const COMPOSE_IMAGE = Object.values((parse(readFileSync(join(PROJECT_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, { build?: unknown; image?: string }> }).services).find(
  (s) => s.build !== undefined,
)?.image;

// The drain's bounds in the code, as templates/_helpers.tpl adds them up (no margin here: the chart
// must give at least this much).
/** src/kafka/native/producer.ts disconnect(): flush, then disconnect, 10 s each. */
const PRODUCER_STOP_MS = 20_000;
/** src/gateway/gateway.ts stop(): forceShutdown a second after the streams are ended. */
const GATEWAY_FORCE_MS = 1000;
/** src/forwarder/forwarder.ts STOP_WAIT_MS. */
const FORWARDER_STOP_MS = 5000;

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}
interface Probe {
  httpGet?: { path: string; port: string | number; scheme?: string };
}
interface Container {
  name: string;
  image: string;
  args?: string[];
  ports?: { name?: string; containerPort: number }[];
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}
interface PodSpec {
  containers: Container[];
  enableServiceLinks?: boolean;
  terminationGracePeriodSeconds?: number;
}
interface DeploymentSpec {
  replicas?: number;
  selector: { matchLabels: Record<string, string> };
  template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
}

async function tools(): Promise<{ helm: string; kubeconform: string; schemas: string }> {
  const [helm, kubeconform, schemas] = await Promise.all([helmPath(), kubeconformPath(), kubernetesSchemas(KUBE_VERSIONS)]);
  return { helm, kubeconform, schemas };
}
let toolsOnce: ReturnType<typeof tools> | null = null;
const ready = () => (toolsOnce ??= tools());

/** Runs a command; resolves with its exit code and output (never rejects on a non-zero exit). */
async function sh(file: string, args: string[], input?: { cwd?: string }): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(file, args, { maxBuffer: 64 << 20, timeout: 120_000, cwd: input?.cwd });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

const scratch = mkdtempSync(join(tmpdir(), 'stratus-helm-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));

/** `helm template` of `chart` with these values (and `--set`s); the rendered text, or the failure. */
async function template(chart: string, values: Record<string, unknown> | null, kubeVersion: string, sets: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  const { helm } = await ready();
  // --kube-version always: a helm built by `go install` (no release ldflags) assumes Kubernetes
  // 1.20, which Chart.yaml's kubeVersion (>=1.25) refuses.
  const args = ['template', RELEASE, chart, '--namespace', NAMESPACE, '--kube-version', kubeVersion];
  if (values !== null) {
    const file = join(scratch, `values-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, stringify(values));
    args.push('--values', file);
  }
  for (const s of sets) args.push('--set', s);
  return sh(helm, args);
}

/** kubeconform -strict on a rendered manifest; its JSON report. */
async function kubeconform(manifest: string, kubeVersion: string): Promise<{ code: number; report: { resources?: { kind: string; name: string; status: string; msg: string }[]; summary: { valid: number; invalid: number; errors: number; skipped: number } }; raw: string }> {
  const { kubeconform: bin, schemas } = await ready();
  const file = join(scratch, `manifest-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, manifest);
  // -skip ServiceMonitor: a CRD (monitoring.coreos.com/v1), not in the Kubernetes schemas; its shape is
  // asserted in this file instead. No -ignore-missing-schemas: any other kind without a schema fails.
  const r = await sh(bin, ['-strict', '-summary', '-verbose', '-output', 'json', '-kubernetes-version', kubeVersion, '-schema-location', schemas, '-skip', 'ServiceMonitor', file]);
  return { code: r.code, report: JSON.parse(r.stdout) as never, raw: r.stdout + r.stderr };
}

function objects(manifest: string): K8sObject[] {
  return parseAllDocuments(manifest)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

/** The values variants rendered besides the defaults. */
const VARIANTS: { name: string; values: Record<string, unknown> | null }[] = [
  { name: 'default values', values: null },
  {
    name: 'autoscaling off, ServiceMonitor on, Redis cluster with a password',
    values: {
      kafka: { brokers: 'kafka-0.kafka:9092,kafka-1.kafka:9092,kafka-2.kafka:9092' },
      redis: { host: 'redis-cluster', port: 6380, password: 'not-a-real-password', mode: 'cluster' },
      drain: { graceMs: 30_000, preStopSleepSeconds: 10 },
      config: { STRATUS_LOG_LEVEL: 'warn', STRATUS_KAFKA_PARTITIONS: 24, STRATUS_GATEWAY_DEVICES_MAX: 50_000 },
      secretConfig: { STRATUS_AUTH_TOKEN_SECRET: 'x'.repeat(64) },
      groups: { gateway: { replicas: 3, autoscaling: { enabled: false } } },
      serviceMonitor: { enabled: true, labels: { release: 'kube-prometheus-stack' } },
    },
  },
  {
    name: 'the archiver on, to PostgreSQL',
    values: {
      config: { STRATUS_ARCHIVE_STORE: 'postgres', STRATUS_ARCHIVE_RETENTION_DAYS: 90 },
      secretConfig: { STRATUS_ARCHIVE_POSTGRES_URL: 'postgres://stratus:not-a-real-password@postgres:5432/stratus' },
      groups: { archiver: { enabled: true } },
      serviceMonitor: { enabled: true },
    },
  },
  {
    name: 'the whole engine in one group',
    values: {
      groups: {
        gateway: { enabled: false },
        processor: { enabled: false },
        forwarder: { enabled: false },
        exporter: { enabled: false },
        engine: {
          enabled: true,
          command: 'run',
          roles: ['gateway', 'processor', 'forwarder', 'exporter'],
          replicas: 3,
          resources: { requests: { cpu: '1', memory: '1Gi' }, limits: { memory: '2Gi' } },
          autoscaling: { enabled: true, minReplicas: 3, maxReplicas: 6, podsMetric: { name: 'stratus_devices_connected', averageValue: '20000' } },
          service: { type: 'LoadBalancer' },
        },
      },
      serviceMonitor: { enabled: true },
    },
  },
];

test('helm lint --strict passes with the default values and each variant', { timeout: 900_000 }, async () => {
  const { helm } = await ready();
  for (const v of VARIANTS) {
    const args = ['lint', '--strict', CHART, '--namespace', NAMESPACE, '--kube-version', KUBE_VERSIONS.at(-1)!];
    if (v.values !== null) {
      const file = join(scratch, `lint-${Math.random().toString(36).slice(2)}.yaml`);
      writeFileSync(file, stringify(v.values));
      args.push('--values', file);
    }
    const r = await sh(helm, args);
    assert.equal(r.code, 0, `helm lint (${v.name}):\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  }
});

for (const variant of VARIANTS) {
  test(`helm template (${variant.name}): kubeconform -strict, probes, config keys, drain, PDBs, HPA, Services`, { timeout: 900_000 }, async (t) => {
    let rendered = '';
    for (const kubeVersion of KUBE_VERSIONS) {
      const r = await template(CHART, variant.values, kubeVersion);
      assert.equal(r.code, 0, `helm template --kube-version ${kubeVersion}: ${r.stderr}`);
      const list = objects(r.stdout);
      const monitors = list.filter((o) => o.kind === 'ServiceMonitor').length;
      const { code, report, raw } = await kubeconform(r.stdout, kubeVersion);
      const bad = (report.resources ?? []).filter((x) => x.status !== 'statusValid' && x.status !== 'statusSkipped');
      assert.deepEqual(bad, [], `kubeconform (Kubernetes ${kubeVersion}) refused:\n${raw}`);
      assert.equal(code, 0, raw);
      // Every object was validated against a schema, but the ServiceMonitors (skipped on purpose).
      assert.deepEqual(report.summary, { valid: list.length - monitors, invalid: 0, errors: 0, skipped: monitors }, raw);
      t.diagnostic(`Kubernetes ${kubeVersion}: ${report.summary.valid} objects valid, ${monitors} ServiceMonitor(s) skipped`);
      rendered = r.stdout;
    }

    const list = objects(rendered);
    const of = (kind: string) => list.filter((o) => o.kind === kind);
    const byName = (kind: string, name: string) => of(kind).find((o) => o.metadata.name === name) ?? assert.fail(`no ${kind} ${name} in the render`);
    const configMaps = new Map(of('ConfigMap').map((o) => [o.metadata.name, o.data ?? {}]));
    const secrets = new Map(of('Secret').map((o) => [o.metadata.name, o.stringData ?? {}]));
    const deployments = of('Deployment');
    assert.ok(deployments.length > 0, 'no Deployment rendered');

    const rolesRun = new Set<string>();
    let workers = 0;
    for (const d of deployments) {
      const name = d.metadata.name;
      const spec = d.spec as unknown as DeploymentSpec;
      const pod = spec.template.spec;
      assert.equal(pod.containers.length, 1, `${name}: one container`);
      const c = pod.containers[0]!;
      if (COMPOSE_IMAGE !== undefined && variant.values === null) assert.equal(c.image, COMPOSE_IMAGE, `${name}: the image docker-compose.yml builds from the Dockerfile`);

      // What it runs.
      const args = c.args ?? [];
      let roles: string[] = [];
      if (args[0] === 'run') {
        assert.equal(args[1], '--roles', `${name}: run --roles ...`);
        roles = args[2]!.split(',');
        for (const r of roles) {
          assert.ok(RUN_ROLES.includes(r), `${name}: role ${r} is not one of stratus run's (${RUN_ROLES.join(', ')})`);
          rolesRun.add(r);
        }
      } else {
        assert.deepEqual(args.slice(0, 2), ['worker', '--metrics'], `${name}: stratus worker --metrics (serves /livez, /readyz)`);
        workers++;
      }

      // Its environment: every STRATUS_* name is an option (Kubernetes' own service-link variables
      // would not be: they are off), and the whole loads with the engine's loadConfig.
      assert.equal(pod.enableServiceLinks, false, `${name}: enableServiceLinks must be false (a Service named stratus-* gives STRATUS_*_PORT variables the engine refuses)`);
      const env: Record<string, string> = {};
      for (const from of c.envFrom ?? []) {
        if (from.configMapRef) Object.assign(env, configMaps.get(from.configMapRef.name) ?? assert.fail(`${name}: envFrom ConfigMap ${from.configMapRef.name} is not in the render`));
        if (from.secretRef) Object.assign(env, secrets.get(from.secretRef.name) ?? assert.fail(`${name}: envFrom Secret ${from.secretRef.name} is not in the render`));
      }
      for (const e of c.env ?? []) env[e.name] = e.value ?? (e.valueFrom !== undefined ? `${name}-pod` : '');
      for (const key of Object.keys(env)) {
        assert.ok(key.startsWith('STRATUS_'), `${name}: ${key} is not a STRATUS_* option`);
        assert.ok(ENV_NAMES.has(key), `${name}: ${key} is not an option of src/config.ts (docs/configuration.md)`);
      }
      const loadable = { ...env };
      let config: Config;
      try {
        config = loadConfig({ env: loadable, envFile: null });
      } catch (err) {
        assert.fail(`${name}: the pod's environment does not load: ${(err as Error).message}`);
      }
      assert.equal(config.grpc.host, '0.0.0.0', `${name}: grpc.host (and so http.port) must bind every address of the pod`);

      // Ports and probes: liveness on /livez, readiness on /readyz, on the port the engine serves HTTP on.
      const port = (n: string) => c.ports?.find((p) => p.name === n);
      assert.equal(port('http')?.containerPort, config.http.port, `${name}: containerPort http = http.port`);
      if (roles.includes('gateway')) assert.equal(port('grpc')?.containerPort, config.grpc.port, `${name}: containerPort grpc = grpc.port`);
      else assert.equal(port('grpc'), undefined, `${name}: no gRPC port without the gateway role`);
      assert.deepEqual(c.livenessProbe?.httpGet && { path: c.livenessProbe.httpGet.path, port: c.livenessProbe.httpGet.port }, { path: '/livez', port: 'http' }, `${name}: liveness probe`);
      assert.deepEqual(c.readinessProbe?.httpGet && { path: c.readinessProbe.httpGet.path, port: c.readinessProbe.httpGet.port }, { path: '/readyz', port: 'http' }, `${name}: readiness probe`);
      assert.equal(c.startupProbe?.httpGet?.path, '/livez', `${name}: startup probe`);

      // Resources, and the memory budget under the limit.
      assert.ok(c.resources?.requests?.cpu && c.resources.requests.memory, `${name}: cpu and memory requests`);
      const limit = c.resources?.limits?.memory;
      assert.ok(limit, `${name}: a memory limit`);
      const limitMib = Number(/^(\d+)(Mi|Gi)$/.exec(limit)?.[1]) * (limit.endsWith('Gi') ? 1024 : 1);
      assert.ok(config.rssMaxMb > 0 && config.rssMaxMb < limitMib, `${name}: rssMaxMb ${config.rssMaxMb} must be set below the memory limit ${limit}`);

      // The kubelet's SIGKILL must not cut the drain short.
      const preStop = c.lifecycle?.preStop?.exec?.command;
      if (preStop !== undefined) assert.equal(preStop[0], 'sleep', `${name}: preStop sleeps`);
      const preStopMs = preStop === undefined ? 0 : Number(preStop[1]) * 1000;
      const drainMs =
        preStopMs +
        (roles.includes('gateway') ? 2 * config.gateway.drainGraceMs + GATEWAY_FORCE_MS + PRODUCER_STOP_MS : 0) +
        (roles.includes('processor') ? PRODUCER_STOP_MS : 0) +
        (roles.includes('forwarder') ? FORWARDER_STOP_MS : 0);
      const grace = pod.terminationGracePeriodSeconds;
      assert.ok(grace !== undefined, `${name}: terminationGracePeriodSeconds`);
      // gateway.drainGraceMs bounds the gateway's drain only; the other roles' stops are bounded by
      // the code's constants above.
      if (roles.includes('gateway')) assert.ok(grace * 1000 > config.gateway.drainGraceMs, `${name}: terminationGracePeriodSeconds ${grace} <= gateway.drainGraceMs ${config.gateway.drainGraceMs} ms`);
      assert.ok(grace * 1000 > drainMs, `${name}: terminationGracePeriodSeconds ${grace} s does not outlast preStop + the drain's bounds (${drainMs} ms)`);
      t.diagnostic(`${name}: ${roles.length > 0 ? roles.join(',') : 'worker'}; terminationGracePeriodSeconds ${grace} s > ${drainMs / 1000} s (preStop + drain bounds, drainGraceMs ${config.gateway.drainGraceMs}); rssMaxMb ${config.rssMaxMb} of ${limit}`);

      // Selectors: the Deployment's own, a PDB and a Service per group.
      const labels = spec.template.metadata.labels;
      const selects = (sel: Record<string, string>) => Object.entries(sel).every(([k, v]) => labels[k] === v);
      assert.ok(selects(spec.selector.matchLabels), `${name}: selector matches its pod template`);
      const others = deployments.filter((o) => o !== d).map((o) => (o.spec as unknown as DeploymentSpec).template.metadata.labels);
      const pdbs = of('PodDisruptionBudget').filter((p) => selects((p.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels));
      assert.equal(pdbs.length, 1, `${name}: exactly one PodDisruptionBudget selects its pods`);
      const pdbSel = (pdbs[0]!.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels;
      assert.ok(!others.some((l) => Object.entries(pdbSel).every(([k, v]) => l[k] === v)), `${name}: its PDB selects no other group's pods`);
      const services = of('Service').filter((s) => selects((s.spec as { selector: Record<string, string> }).selector));
      assert.equal(services.length, 1, `${name}: exactly one Service selects its pods`);
      const svcPorts = (services[0]!.spec as { ports: { name: string; port: number; targetPort: string }[] }).ports;
      assert.deepEqual(
        svcPorts.map((p) => [p.name, p.targetPort]),
        [...(roles.includes('gateway') ? [['grpc', 'grpc']] : []), ['http', 'http']],
        `${name}: its Service's ports`,
      );

      // Autoscaling: an HPA for gateway groups whose values enable it, and then no fixed replicas.
      const hpas = of('HorizontalPodAutoscaler').filter((h) => (h.spec as { scaleTargetRef: { name: string } }).scaleTargetRef.name === name);
      if (hpas.length > 0) {
        assert.equal(hpas.length, 1);
        assert.ok(roles.includes('gateway'), `${name}: an HPA targets a group without the gateway role`);
        assert.equal(spec.replicas, undefined, `${name}: replicas must be left to the HPA`);
      } else {
        assert.ok(typeof spec.replicas === 'number' && spec.replicas >= 1, `${name}: replicas`);
      }
    }
    // The archiver needs a store (archive.store): its group is off by default, and on in the variant
    // that sets one.
    const archiving = (variant.values as { config?: Record<string, unknown> } | null)?.config?.STRATUS_ARCHIVE_STORE !== undefined;
    assert.deepEqual([...rolesRun].sort(), RUN_ROLES.filter((r) => r !== 'archiver' || archiving).sort(), 'every role of stratus run runs in some group');
    if (variant.values === null) assert.equal(workers, 1, 'the list-queue worker runs');

    // The HPA(s): autoscaling/v2 on the gateway Deployment, a Pods metric the engine exports as a
    // gauge (src/http/metrics.ts), and CPU.
    const expectHpa = variant.name !== 'autoscaling off, ServiceMonitor on, Redis cluster with a password';
    const hpas = of('HorizontalPodAutoscaler');
    assert.equal(hpas.length, expectHpa ? 1 : 0, 'HPAs rendered');
    for (const h of hpas) {
      assert.equal(h.apiVersion, 'autoscaling/v2');
      const spec = h.spec as { scaleTargetRef: { apiVersion: string; kind: string; name: string }; metrics: { type: string; pods?: { metric: { name: string }; target: { type: string; averageValue: string } }; resource?: { name: string } }[] };
      const target = byName('Deployment', spec.scaleTargetRef.name);
      assert.deepEqual([spec.scaleTargetRef.apiVersion, spec.scaleTargetRef.kind], ['apps/v1', 'Deployment']);
      assert.ok(((target.spec as unknown as DeploymentSpec).template.spec.containers[0]!.args ?? [])[2]!.split(',').includes('gateway'), 'the HPA targets the gateway');
      const pods = spec.metrics.find((m) => m.type === 'Pods')?.pods ?? assert.fail('no Pods metric');
      const metric = registry.getSingleMetric(pods.metric.name);
      assert.ok(metric instanceof Gauge, `HPA Pods metric ${pods.metric.name} is not a gauge of src/http/metrics.ts`);
      assert.equal(pods.target.type, 'AverageValue');
      assert.ok(Number(pods.target.averageValue) > 0);
      assert.ok(spec.metrics.some((m) => m.type === 'Resource' && m.resource?.name === 'cpu'), 'CPU as the fallback metric');
    }

    // ServiceMonitors: one per group, each selecting its group's Service, scraping its http port.
    const monitors = of('ServiceMonitor');
    assert.equal(monitors.length, variant.values === null ? 0 : deployments.length, 'ServiceMonitors: off by default, else one per group');
    const jobs = new Set<string>();
    for (const m of monitors) {
      assert.equal(m.apiVersion, 'monitoring.coreos.com/v1');
      const spec = m.spec as { selector: { matchLabels: Record<string, string> }; namespaceSelector: { matchNames: string[] }; endpoints: { port: string; path: string; relabelings: { targetLabel: string; replacement: string }[] }[] };
      assert.deepEqual(spec.namespaceSelector.matchNames, [NAMESPACE]);
      const svcs = of('Service').filter((s) => Object.entries(spec.selector.matchLabels).every(([k, v]) => s.metadata.labels?.[k] === v));
      assert.equal(svcs.length, 1, `ServiceMonitor ${m.metadata.name} selects one Service`);
      const portNames = (svcs[0]!.spec as { ports: { name: string }[] }).ports.map((p) => p.name);
      for (const e of spec.endpoints) {
        assert.ok(portNames.includes(e.port), `ServiceMonitor ${m.metadata.name}: port ${e.port} is not on ${svcs[0]!.metadata.name}`);
        assert.ok(['/metrics', '/metrics/ingested'].includes(e.path), e.path);
        const job = e.relabelings.find((r) => r.targetLabel === 'job')?.replacement ?? assert.fail('no job label');
        assert.match(job, /^stratus-/, 'alerts.yml matches job=~"stratus.*"');
        jobs.add(job);
      }
    }
    if (monitors.length > 0) assert.ok(jobs.has('stratus-ingested'), 'the exporter role\'s /metrics/ingested is scraped (it acknowledges the stream)');
  });
}

test(`STRATUS_REDIS_MODE (redis.mode=cluster) is an option of src/config.ts`, () => {
  const spec = (OPTIONS as Record<string, { values?: readonly string[] }>)['redis.mode'];
  assert.ok(spec !== undefined && ENV_NAMES.has(REDIS_MODE), `${REDIS_MODE} is not an option`);
  assert.ok(spec.values?.includes('cluster'), `redis.mode takes ${spec.values?.join(', ')}`);
});

test('a broken chart fails: an unknown field is refused by kubeconform, a bad value by the chart', { timeout: 900_000 }, async () => {
  // A copy of the chart with one misspelt field in the Deployment (readinessProbe.httpGet.paht).
  const broken = join(scratch, 'broken');
  cpSync(CHART, broken, { recursive: true });
  const file = join(broken, 'templates', 'deployment.yaml');
  const text = readFileSync(file, 'utf8');
  assert.ok(text.includes('path: /readyz'));
  writeFileSync(file, text.replace('path: /readyz', 'paht: /readyz'));
  const r = await template(broken, null, KUBE_VERSIONS.at(-1)!);
  assert.equal(r.code, 0, r.stderr);
  const { code, report, raw } = await kubeconform(r.stdout, KUBE_VERSIONS.at(-1)!);
  assert.notEqual(code, 0, 'kubeconform accepted a Deployment with readinessProbe.httpGet.paht');
  assert.equal(report.summary.invalid, countKind(r.stdout, 'Deployment'), raw);
  assert.match(raw, /additional properties 'paht' not allowed/);

  // The chart's own checks: a role stratus run does not have, and an option the chart sets itself.
  const role = await template(CHART, null, KUBE_VERSIONS.at(-1)!, ['groups.gateway.roles={gatewai}']);
  assert.notEqual(role.code, 0);
  assert.match(role.stderr, /groups\.gateway\.roles: unknown role "gatewai"/);
  const reserved = await template(CHART, null, KUBE_VERSIONS.at(-1)!, ['config.STRATUS_GATEWAY_DRAIN_GRACE_MS=5000']);
  assert.notEqual(reserved.code, 0);
  assert.match(reserved.stderr, /config\.STRATUS_GATEWAY_DRAIN_GRACE_MS is set by the chart/);
});

function countKind(manifest: string, kind: string): number {
  return objects(manifest).filter((o) => o.kind === kind).length;
}
