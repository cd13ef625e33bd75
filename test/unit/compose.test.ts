/**
 * docker-compose.yml and the Dockerfile cannot run here (no Docker engine), so they are checked
 * against the code instead: only real STRATUS_* names, the Config defaults as published ports, the
 * Kafka version of src/stack/kafka-pom.xml, listeners that both the host and the other containers
 * can reach, health checks wherever something waits on health, and the topics service's script run
 * through bash with a stand-in kafka-topics.sh, so its topic names and partition counts are the
 * ones src/topology.ts and Config give. Every role of `stratus run` and `stratus worker` runs from
 * the one image the file builds; Prometheus (deploy/compose/prometheus.yml, checked with promtool)
 * scrapes each engine container's HTTP port, and Grafana's provisioning (deploy/compose/grafana/)
 * names the datasource and dashboard the files of deploy/ expect. The worker's health check script
 * runs against a real worker and Redis.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { envName, loadConfig, OPTIONS, PROJECT_ROOT, type Config, type OptionKey } from '../../src/config.js';
import { pingRedis } from '../../src/redis/client.js';
import { topology } from '../../src/topology.js';

const execFileP = promisify(execFile);

interface Service {
  image?: string;
  build?: unknown;
  pull_policy?: string;
  init?: boolean;
  ports?: (string | number)[];
  environment?: Record<string, string | number | boolean | null>;
  healthcheck?: { test?: string[] | string; disable?: boolean; interval?: string; timeout?: string; retries?: number; start_period?: string };
  depends_on?: Record<string, { condition: string }>;
  entrypoint?: string[] | string;
  command?: string[] | string;
  volumes?: string[];
  restart?: string;
  stop_grace_period?: string;
}

const text = readFileSync(join(PROJECT_ROOT, 'docker-compose.yml'), 'utf8');
const compose = parse(text, { merge: true }) as { services: Record<string, Service>; volumes?: Record<string, unknown> };
const services = compose.services;
const def = (key: OptionKey): string => OPTIONS[key].default;
const read = (rel: string) => readFileSync(join(PROJECT_ROOT, rel), 'utf8');

/** The roles `stratus run --roles` takes (src/cli/run-command.ts). */
const RUN_ROLES = (/const ROLES = \[([^\]]*)\] as const/.exec(read('src/cli/run-command.ts'))?.[1] ?? '').split(',').map((r) => r.trim().replace(/^'|'$/g, '')).filter((r) => r !== '');
/** The Stratus image: what the one service with `build:` tags. */
const IMAGE = Object.values(compose.services).find((s) => s.build !== undefined)?.image;
/** Services running the Stratus image: every role of `stratus run`, and `stratus worker`. */
const ENGINES = Object.keys(compose.services).filter((n) => compose.services[n]!.image === IMAGE);
/** Engines running `stratus run` (each with the HTTP surface: /metrics, /livez, /readyz). */
const RUNNERS = ENGINES.filter((n) => (compose.services[n]!.command as string[])[0] === 'run');
/** The Dockerfile's ENTRYPOINT, which every engine's `command` follows. */
const ENTRYPOINT = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(read('Dockerfile'))?.[1] ?? 'null') as string[] | null;

function service(name: string): Service {
  const s = services[name];
  assert.ok(s, `docker-compose.yml has no ${name} service`);
  return s;
}

/**
 * Compose's interpolation, for the forms this file may use: `$$` (a literal `$`), `${VAR}`,
 * `${VAR:-default}`, `${VAR-default}` and `$VAR`. `vars` stands for the user's shell and .env.
 */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (match, braced?: string, op?: string, fallback?: string, bare?: string) => {
    if (match === '$$') return '$';
    const v = vars[(braced ?? bare)!];
    if (op === ':-') return v === undefined || v === '' ? fallback! : v;
    if (op === '-') return v === undefined ? fallback! : v;
    return v ?? '';
  });
}

/** A service's environment as its container sees it. */
function environment(name: string, vars: Record<string, string> = {}): Record<string, string> {
  return Object.fromEntries(Object.entries(service(name).environment ?? {}).map(([k, v]) => [k, interpolate(String(v ?? ''), vars)]));
}

/** `[ip:]host:container` */
function ports(name: string): { ip: string | null; host: number; container: number }[] {
  return (service(name).ports ?? []).map((p) => {
    const m = /^(?:(\d+\.\d+\.\d+\.\d+):)?(\d+):(\d+)$/.exec(String(p));
    assert.ok(m, `${name}: port ${JSON.stringify(p)} is not [ip:]host:container`);
    return { ip: m[1] ?? null, host: Number(m[2]), container: Number(m[3]) };
  });
}

/** `NAME://host:port,...` -> name -> { host, port } */
function listenerMap(value: string): Map<string, { host: string; port: number }> {
  const out = new Map<string, { host: string; port: number }>();
  for (const item of value.split(',')) {
    const m = /^([A-Z][A-Z0-9_]*):\/\/([^:]*):(\d+)$/.exec(item.trim());
    assert.ok(m, `listener ${JSON.stringify(item)} is not NAME://host:port`);
    assert.ok(!out.has(m[1]!), `listener ${m[1]} given twice`);
    out.set(m[1]!, { host: m[2]!, port: Number(m[3]) });
  }
  return out;
}

/** The Config a role's container loads: its environment only (no .env file in the image). */
function roleConfig(role: string, vars: Record<string, string> = {}): Config {
  return loadConfig({ envFile: null, env: environment(role, vars), root: '/app' });
}

const kafkaEnv = environment('kafka');
const advertised = listenerMap(kafkaEnv.KAFKA_ADVERTISED_LISTENERS ?? '');
const bound = listenerMap(kafkaEnv.KAFKA_LISTENERS ?? '');

/** Advertised addresses another container can use: the host is a service name of this file. */
const internalAddresses = [...advertised.values()].filter((l) => l.host in services).map((l) => `${l.host}:${l.port}`);

test('the services a user expects are there, the roles wait for what they need', () => {
  assert.deepEqual(Object.keys(services).sort(), ['exporter', 'forwarder', 'gateway', 'grafana', 'kafka', 'processor', 'prometheus', 'redis', 'topics', 'worker']);
  assert.deepEqual(ENGINES.sort(), ['exporter', 'forwarder', 'gateway', 'processor', 'worker']);
  for (const name of ENGINES) {
    const s = service(name);
    assert.equal(s.depends_on?.kafka?.condition, 'service_healthy', name);
    assert.equal(s.depends_on?.redis?.condition, 'service_healthy', name);
    assert.equal(s.depends_on?.topics?.condition, 'service_completed_successfully', name);
    assert.equal(s.init, true, `${name}: an init process forwards SIGTERM to the engine and reaps what exits`);
  }
  assert.equal(service('topics').depends_on?.kafka?.condition, 'service_healthy');
});

test('one image, built once, runs every role of stratus run (each in its own container) and stratus worker', () => {
  assert.deepEqual(RUN_ROLES, ['gateway', 'processor', 'forwarder', 'exporter', 'archiver'], 'src/cli/run-command.ts ROLES');
  // The archiver needs a store (archive.store, off by default): the file runs without an archive.
  const composed = RUN_ROLES.filter((r) => r !== 'archiver');
  const builders = Object.entries(services).filter(([, s]) => s.build !== undefined);
  assert.deepEqual(builders.map(([n, s]) => [n, s.build]), [['gateway', '.']], 'exactly one service builds, from the Dockerfile at the root');
  assert.match(IMAGE ?? '', /^stratus:[a-z0-9._-]+$/, 'the built image is tagged, so the other engines can name it');
  for (const name of ENGINES.filter((n) => services[n]!.build === undefined)) {
    assert.equal(service(name).pull_policy, 'never', `${name} reuses ${IMAGE}, built by the gateway service: never pulled from a registry`);
  }
  assert.deepEqual(ENTRYPOINT, ['node', 'bin/stratus.js'], 'the Dockerfile\'s ENTRYPOINT');
  // Each role of `stratus run` runs in exactly one container, alone; the worker in one more.
  const roleOf = new Map<string, string>();
  for (const name of RUNNERS) {
    const command = service(name).command as string[];
    assert.deepEqual(command.slice(0, 2), ['run', '--roles'], name);
    assert.equal(command.length, 3, `${name}: ${command.join(' ')}`);
    const roles = command[2]!.split(',');
    assert.deepEqual(roles, [name], `${name} runs the ${name} role alone (its own logs, restarts and scaling)`);
    roleOf.set(roles[0]!, name);
  }
  assert.deepEqual([...roleOf.keys()].sort(), [...composed].sort(), 'every role of stratus run but the archiver, the exporter included (it drains the metrics stream)');
  const workers = ENGINES.filter((n) => (service(n).command as string[])[0] === 'worker');
  assert.deepEqual(workers, ['worker']);
  // --metrics: its /metrics (the queue counters) on http.port, for Prometheus.
  assert.deepEqual(service('worker').command, ['worker', '--metrics']);
});

test('every STRATUS_* name in the file is a Config option', () => {
  const known = new Set(Object.keys(OPTIONS).map(envName));
  const used = new Set(text.match(/STRATUS_[A-Z0-9_]+/g) ?? []);
  for (const name of ['STRATUS_KAFKA_BROKERS', 'STRATUS_REDIS_HOST', 'STRATUS_REDIS_PORT', 'STRATUS_GRPC_PORT', 'STRATUS_HTTP_PORT']) {
    assert.ok(used.has(name), `${name} is not set anywhere`);
  }
  for (const name of used) assert.ok(known.has(name), `${name} is not a Config option (see envName() in src/config.ts)`);
});

test('every role loads a valid Config from its environment, pointing at the other containers', () => {
  for (const role of ENGINES) {
    const c = roleConfig(role);
    assert.equal(c.kafka.brokers.length, 1, role);
    assert.ok(internalAddresses.includes(c.kafka.brokers[0]!), `${role}: kafka.brokers ${c.kafka.brokers[0]} is not an advertised listener reachable from a container (${internalAddresses.join(', ')})`);
    assert.equal(c.redis.host, 'redis', role);
    assert.equal(c.redis.port, ports('redis')[0]!.container, `${role}: redis.port is not the port Redis listens on in its container`);
    assert.equal(c.grpc.port, Number(def('grpc.port')), role);
    assert.equal(c.http.port, Number(def('http.port')), role);
    assert.equal(c.kafka.partitions, Number(def('kafka.partitions')), role);
    assert.equal(c.kafka.topicPrefix, def('kafka.topicPrefix'), role);
    assert.equal(c.redis.password, '', role);
  }
  // The user's own prefix, partition count and password reach every role and Redis alike.
  const vars = { STRATUS_KAFKA_TOPIC_PREFIX: 'acme.', STRATUS_KAFKA_PARTITIONS: '3', STRATUS_REDIS_PASSWORD: 'hunter2' };
  for (const role of ENGINES) {
    const c = roleConfig(role, vars);
    assert.equal(c.kafka.topicPrefix, 'acme.', role);
    assert.equal(c.kafka.partitions, 3, role);
    assert.equal(c.redis.password, 'hunter2', role);
  }
  const redisCommand = (service('redis').command as string[]).map((a) => interpolate(a, vars));
  assert.equal(redisCommand[redisCommand.indexOf('--requirepass') + 1], 'hunter2');
  assert.equal(environment('redis', vars).REDISCLI_AUTH, 'hunter2', 'the Redis health check must authenticate');
});

test('published ports are the Config defaults; Kafka and Redis only on the loopback', () => {
  const [host, port] = def('kafka.brokers').split(',')[0]!.split(':');
  assert.deepEqual(ports('kafka'), [{ ip: '127.0.0.1', host: Number(port), container: Number(port) }]);
  assert.equal(host, '127.0.0.1');
  assert.deepEqual(ports('redis'), [{ ip: '127.0.0.1', host: Number(def('redis.port')), container: Number(def('redis.port')) }]);
  const grpc = Number(def('grpc.port'));
  const http = Number(def('http.port'));
  assert.deepEqual(ports('gateway'), [{ ip: null, host: grpc, container: grpc }, { ip: null, host: http, container: http }]);
  for (const name of ['topics', ...ENGINES.filter((n) => n !== 'gateway')]) assert.deepEqual(ports(name), [], `${name} publishes nothing`);
  assert.deepEqual(ports('prometheus'), [{ ip: '127.0.0.1', host: 9090, container: 9090 }]);
  assert.deepEqual(ports('grafana'), [{ ip: '127.0.0.1', host: 3000, container: 3000 }]);
  // Only the gateway's ports take devices from other hosts; everything else is for this machine.
  for (const name of Object.keys(services).filter((n) => n !== 'gateway')) {
    for (const p of ports(name)) assert.equal(p.ip, '127.0.0.1', `${name} publishes ${p.host} beyond the loopback`);
  }
});

test('Kafka: the pinned version, single-node KRaft, listeners for the host and for containers', () => {
  const pom = readFileSync(join(PROJECT_ROOT, 'src', 'stack', 'kafka-pom.xml'), 'utf8');
  const properties = /<properties>([\s\S]*?)<\/properties>/.exec(pom)?.[1] ?? '';
  const version = /<kafka\.version>\s*([^<\s]+)\s*<\/kafka\.version>/.exec(properties)?.[1];
  assert.ok(version, 'kafka-pom.xml has no <kafka.version> property');
  assert.equal(service('kafka').image, `apache/kafka:${version}`);
  assert.equal(service('topics').image, `apache/kafka:${version}`);

  const env = kafkaEnv;
  assert.equal(env.KAFKA_PROCESS_ROLES, 'broker,controller');
  assert.equal(env.KAFKA_AUTO_CREATE_TOPICS_ENABLE, 'false', 'topics are created explicitly, never by a first produce');
  for (const k of ['KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR', 'KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR', 'KAFKA_TRANSACTION_STATE_LOG_MIN_ISR']) {
    assert.equal(env[k], '1', `${k} must be 1 on a single node`);
  }

  // Every listener has a security protocol; the controller listener is bound but never advertised.
  const protocols = new Map((env.KAFKA_LISTENER_SECURITY_PROTOCOL_MAP ?? '').split(',').map((p) => p.split(':') as [string, string]));
  for (const name of bound.keys()) assert.ok(protocols.has(name), `listener ${name} has no security protocol`);
  const controller = env.KAFKA_CONTROLLER_LISTENER_NAMES!;
  assert.ok(bound.has(controller) && !advertised.has(controller));
  assert.equal(env.KAFKA_CONTROLLER_QUORUM_VOTERS, `${env.KAFKA_NODE_ID}@kafka:${bound.get(controller)!.port}`);
  for (const [name, l] of advertised) assert.equal(bound.get(name)?.port, l.port, `advertised listener ${name} is not bound on its port`);
  assert.ok(advertised.has(env.KAFKA_INTER_BROKER_LISTENER_NAME!), 'the inter-broker listener must be advertised');

  // Two client listeners: the host reaches 127.0.0.1:9092 (kafka.brokers' default, published),
  // the other containers reach kafka:<internal port>.
  const external = [...advertised.values()].find((l) => `${l.host}:${l.port}` === def('kafka.brokers'));
  assert.ok(external, `no advertised listener is ${def('kafka.brokers')}, the address host clients use`);
  assert.ok(ports('kafka').some((p) => p.container === external.port));
  assert.equal(internalAddresses.length, 1, 'exactly one listener must be advertised under the kafka service name');
  assert.notEqual(internalAddresses[0], `kafka:${external.port}`);

  // The data lives in the volume: the image only writes where log.dirs says.
  const mount = (service('kafka').volumes ?? []).map((v) => v.split(':')).find(([source]) => source === 'kafka-data');
  assert.ok(mount, 'kafka has no kafka-data volume');
  assert.equal(env.KAFKA_LOG_DIRS, mount[1], 'KAFKA_LOG_DIRS must be the volume, or the data stays in the container');
  assert.ok(compose.volumes && 'kafka-data' in compose.volumes);

  const heap = /-Xmx(\d+)m/.exec(env.KAFKA_HEAP_OPTS ?? '');
  assert.equal(heap?.[1], def('kafka.heapMb'), 'the broker heap is kafka.heapMb');
});

test('Redis: version 7, append-only, its data in a volume', () => {
  assert.match(service('redis').image ?? '', /^redis:7(\.\d+)*$/);
  const command = service('redis').command as string[];
  assert.equal(command[0], 'redis-server');
  assert.equal(command[command.indexOf('--appendonly') + 1], 'yes');
  assert.equal(command[command.indexOf('--maxmemory-policy') + 1], 'noeviction', 'buffered results must never be evicted');
  assert.ok((service('redis').volumes ?? []).includes('redis-data:/data'));
});

/**
 * Runs the topics service's command the way its container would (compose interpolation, then
 * `entrypoint` + `command`), with kafka-topics.sh replaced by a stub that logs its arguments.
 */
function runTopics(vars: Record<string, string>): string[][] {
  const s = service('topics');
  assert.deepEqual(s.entrypoint, ['/bin/bash', '-c']);
  assert.ok(Array.isArray(s.command) && s.command.length === 1);
  const tool = '/opt/kafka/bin/kafka-topics.sh';
  const script = interpolate(s.command[0]!, vars);
  assert.ok(script.includes(tool), `the topics service does not run ${tool}`);
  const dir = mkdtempSync(join(tmpdir(), 'stratus-compose-'));
  try {
    const stub = join(dir, 'kafka-topics.sh');
    const log = join(dir, 'calls');
    writeFileSync(stub, `#!${process.execPath}\nrequire('node:fs').appendFileSync(${JSON.stringify(log)}, JSON.stringify(process.argv.slice(2)) + '\\n');\n`);
    chmodSync(stub, 0o755);
    writeFileSync(log, '');
    execFileSync('bash', ['-c', script.replaceAll(tool, stub)], { env: { PATH: process.env.PATH ?? '', ...environment('topics', vars) }, stdio: ['ignore', 'pipe', 'pipe'] });
    return readFileSync(log, 'utf8').trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as string[]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args[i + 1];
}

test('the topics service creates the events and results topics with kafka.partitions partitions', () => {
  for (const vars of [{}, { STRATUS_KAFKA_TOPIC_PREFIX: 'acme.', STRATUS_KAFKA_PARTITIONS: '3' }] as Record<string, string>[]) {
    const expected = topology(roleConfig('processor', vars)).topics;
    const partitions = roleConfig('processor', vars).kafka.partitions;
    const calls = runTopics(vars);
    assert.deepEqual(calls.map((a) => option(a, '--topic')).sort(), [expected.events, expected.results].sort(), JSON.stringify(vars));
    for (const args of calls) {
      assert.ok(args.includes('--create') && args.includes('--if-not-exists'), args.join(' '));
      assert.equal(option(args, '--partitions'), String(partitions), `${args.join(' ')}: partitions`);
      assert.equal(option(args, '--replication-factor'), '1');
      assert.ok(internalAddresses.includes(option(args, '--bootstrap-server') ?? ''), `${args.join(' ')}: not the internal listener`);
    }
  }
  const [first] = runTopics({});
  assert.equal(option(first!, '--partitions'), def('kafka.partitions'), 'with nothing set, the default of kafka.partitions');
  assert.equal(option(first!, '--topic')!.startsWith(def('kafka.topicPrefix')), true);
});

/** The Dockerfile's HEALTHCHECK command (exec form), which a service of the image inherits. */
function imageHealthcheck(): string[] {
  const joined = read('Dockerfile').replace(/\\\n\s*/g, ' ');
  const m = /^HEALTHCHECK (?:--\S+\s+)*CMD (\[.*\])$/m.exec(joined);
  assert.ok(m, 'the Dockerfile has no HEALTHCHECK in exec form');
  return ['CMD', ...(JSON.parse(m[1]!) as string[])];
}

/** The health check a service's container runs: its own, or for the Stratus image the Dockerfile's. */
function effectiveHealthcheck(name: string): string[] | null {
  const own = service(name).healthcheck;
  if (own !== undefined) return own.disable === true ? null : typeof own.test === 'string' ? ['CMD-SHELL', own.test] : (own.test ?? null);
  return service(name).image === IMAGE ? imageHealthcheck() : null;
}

test('every service something waits on, and every long-running one, has a health check', () => {
  const oneShot = new Set<string>();
  const mustBeHealthy = new Set<string>();
  for (const s of Object.values(services)) {
    for (const [target, { condition }] of Object.entries(s.depends_on ?? {})) {
      assert.ok(target in services, `depends_on names an unknown service ${target}`);
      if (condition === 'service_completed_successfully') oneShot.add(target);
      else if (condition === 'service_healthy') mustBeHealthy.add(target);
    }
  }
  assert.deepEqual([...oneShot], ['topics']);
  assert.deepEqual([...mustBeHealthy].sort(), ['kafka', 'redis']);
  for (const name of Object.keys(services)) {
    if (oneShot.has(name)) {
      assert.equal(service(name).restart ?? 'no', 'no', `${name} runs once`);
      continue;
    }
    const check = effectiveHealthcheck(name);
    assert.ok(check !== null && check[0] !== 'NONE', `${name} has no health check`);
  }
  const kafkaCheck = String(service('kafka').healthcheck!.test);
  const bootstrap = /--bootstrap-server localhost:(\d+)/.exec(kafkaCheck);
  assert.ok(bootstrap && [...bound.values()].some((l) => l.port === Number(bootstrap[1])), 'the Kafka health check must ask a bound listener');
  assert.match(String(service('redis').healthcheck!.test), /redis-cli ping/);
  // The engines of `stratus run` keep the image's check: /readyz on the port STRATUS_HTTP_PORT names
  // (it reads the variable, not the Config), which must be the container's http.port.
  for (const name of RUNNERS) {
    assert.equal(service(name).healthcheck, undefined, `${name} overrides the image's /readyz check`);
    const check = effectiveHealthcheck(name)!.join(' ');
    assert.match(check, /process\.env\.STRATUS_HTTP_PORT/);
    assert.match(check, /\/readyz/);
    assert.equal(environment(name).STRATUS_HTTP_PORT, String(roleConfig(name).http.port), `${name}: STRATUS_HTTP_PORT must be set to its http.port for the image's check`);
  }
  // `stratus worker`: a check of its own, stricter than /readyz (run for real in the last test).
  assert.match(effectiveHealthcheck('worker')!.join(' '), /queueHeartbeat/);
});

/** `60s`, `1m30s`, `500ms` (compose durations) in ms. */
function durationMs(value: string | undefined): number {
  assert.ok(value !== undefined && /^(?:\d+(?:h|ms|m|s|us))+$/.test(value), `duration ${value}`);
  const unit: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001 };
  return [...value.matchAll(/(\d+)(h|ms|m|s|us)/g)].reduce((sum, m) => sum + Number(m[1]) * unit[m[2]!]!, 0);
}

test('long-running services restart unless stopped; an engine gets the time its drain takes before SIGKILL', () => {
  for (const name of Object.keys(services).filter((n) => n !== 'topics')) assert.equal(service(name).restart, 'unless-stopped', name);
  // The gateway's stop (src/gateway/gateway.ts): open streams get gateway.drainGraceMs, then a second
  // to be cut; events still waiting for Kafka get drainGraceMs again; then the producer's flush and
  // disconnect, each up to its timeout (src/kafka/native/producer.ts).
  const producerTimeoutMs = Number((/async disconnect\(timeoutMs = ([\d_]+)\)/.exec(read('src/kafka/native/producer.ts'))?.[1] ?? 'NaN').replaceAll('_', ''));
  assert.ok(Number.isInteger(producerTimeoutMs), 'src/kafka/native/producer.ts: disconnect(timeoutMs = N) not found; update this test');
  for (const name of ENGINES) {
    const drainMs = 2 * roleConfig(name).gateway.drainGraceMs + 1000 + 2 * producerTimeoutMs;
    assert.ok(durationMs(service(name).stop_grace_period) >= drainMs, `${name}: stop_grace_period ${service(name).stop_grace_period} is shorter than the drain (${drainMs} ms)`);
  }
});

/** A service's bind mounts: container path -> { source, readOnly }. */
function mounts(name: string): Map<string, { source: string; readOnly: boolean }> {
  const out = new Map<string, { source: string; readOnly: boolean }>();
  for (const v of service(name).volumes ?? []) {
    const [source, target, mode] = v.split(':');
    if (!source!.startsWith('./')) continue; // a named volume
    out.set(target!, { source: source!.slice(2), readOnly: mode === 'ro' });
  }
  return out;
}

/** Files another part of issue 17 writes into deploy/; they may be absent on a branch that predates them. */
const ALERT_RULES = 'deploy/prometheus/alerts.yml';
const DASHBOARD = 'deploy/grafana/stratus-dashboard.json';

interface ScrapeConfig {
  job_name: string;
  metrics_path?: string;
  scheme?: string;
  static_configs?: { targets: string[]; labels?: Record<string, string> }[];
}
const promConfigFile = 'deploy/compose/prometheus.yml';
const promConfig = parse(read(promConfigFile)) as { global?: { scrape_interval?: string }; rule_files?: string[]; scrape_configs: ScrapeConfig[] };

test('Prometheus: pinned, fed deploy/compose/prometheus.yml and the alert rules of deploy/prometheus/alerts.yml', (t) => {
  assert.match(service('prometheus').image ?? '', /^prom\/prometheus:v\d+\.\d+\.\d+$/, 'the official image, pinned to a release');
  const m = mounts('prometheus');
  const command = service('prometheus').command as string[];
  const configAt = command.find((a) => a.startsWith('--config.file='))?.slice('--config.file='.length);
  assert.ok(configAt, `prometheus: no --config.file in ${JSON.stringify(command)}`);
  assert.deepEqual(m.get(configAt), { source: promConfigFile, readOnly: true });
  assert.ok(command.includes('--storage.tsdb.path=/prometheus') && (service('prometheus').volumes ?? []).includes('prometheus-data:/prometheus'), 'its data in a volume');
  // rule_files are relative to the config file's folder, as Prometheus resolves them: in the
  // container they must be the mounted rules, and in the repository the same file.
  const rules = promConfig.rule_files ?? [];
  assert.deepEqual(rules.map((f) => m.get(posix.resolve(posix.dirname(configAt), f))), [{ source: ALERT_RULES, readOnly: true }], `rule_files ${rules.join(', ')} must be ${ALERT_RULES}, mounted`);
  assert.deepEqual(rules.map((f) => posix.join(posix.dirname(promConfigFile), f)), [ALERT_RULES], 'the same relative path in the repository');
  if (!existsSync(join(PROJECT_ROOT, ALERT_RULES))) t.diagnostic(`${ALERT_RULES} is not on this branch yet: the mount is checked, its content is not`);
});

test('Prometheus scrapes every engine container\'s /metrics, one job per role, and the exporter\'s /metrics/ingested', async () => {
  const { INGESTED_PATH } = await import('../../src/streams/exporter.js');
  const jobs = promConfig.scrape_configs;
  assert.equal(new Set(jobs.map((j) => j.job_name)).size, jobs.length, 'job names are unique');
  /** `service:port` + path -> the jobs scraping it. */
  const scraped = new Map<string, string[]>();
  for (const job of jobs) {
    assert.ok((job.static_configs ?? []).length > 0, `${job.job_name}: static targets only (compose service names)`);
    for (const sc of job.static_configs!) {
      for (const target of sc.targets) {
        const [host] = target.split(':');
        assert.ok(host === 'localhost' || host! in services, `${job.job_name}: target ${target} is not a service of docker-compose.yml`);
        const key = `${job.scheme ?? 'http'}://${target}${job.metrics_path ?? '/metrics'}`;
        scraped.set(key, [...(scraped.get(key) ?? []), job.job_name]);
      }
    }
  }
  for (const name of RUNNERS) {
    const c = roleConfig(name);
    assert.equal(c.tls.cert, '', `${name} serves HTTPS once tls.cert is set: the jobs would need scheme https`);
    const jobsOf = scraped.get(`http://${name}:${c.http.port}/metrics`) ?? [];
    assert.equal(jobsOf.length, 1, `${name}'s /metrics on http.port ${c.http.port} is scraped by ${jobsOf.length} jobs`);
    const job = jobs.find((j) => j.job_name === jobsOf[0])!;
    assert.deepEqual(job.static_configs!.flatMap((sc) => sc.targets), [`${name}:${c.http.port}`], `${job.job_name} is the ${name} role's job alone`);
    assert.equal(job.static_configs![0]!.labels?.role, name, `${job.job_name}: a role label for the dashboard`);
    // deploy/prometheus/alerts.yml's StratusEngineDown watches up{job=~"stratus.*"}.
    assert.match(job.job_name, /^stratus/, `${job.job_name}: the alert rules know the engine's jobs by their stratus prefix`);
  }
  const exporterPort = roleConfig('exporter').http.port;
  assert.equal((scraped.get(`http://exporter:${exporterPort}${INGESTED_PATH}`) ?? []).length, 1, `the exporter's ${INGESTED_PATH} is scraped once (a scrape is what acknowledges the stream's entries)`);
  // The worker's /metrics (`stratus worker --metrics`), by a job of its own.
  const workerPort = roleConfig('worker').http.port;
  const workerJobs = scraped.get(`http://worker:${workerPort}/metrics`) ?? [];
  assert.deepEqual(workerJobs, ['stratus-worker'], 'the worker\'s /metrics is scraped by the stratus-worker job alone');
  // Nothing else: no target points at a port nothing serves.
  const expected = new Set([...RUNNERS.map((n) => `http://${n}:${roleConfig(n).http.port}/metrics`), `http://worker:${workerPort}/metrics`, `http://exporter:${exporterPort}${INGESTED_PATH}`, 'http://localhost:9090/metrics']);
  assert.deepEqual([...scraped.keys()].sort(), [...expected].sort());
});

test('promtool check config accepts deploy/compose/prometheus.yml (with the alert rules when they are on this branch)', async (t) => {
  try {
    execFileSync('sh', ['-c', 'command -v promtool'], { stdio: 'ignore' });
  } catch {
    t.skip('promtool is not on PATH (bash scripts/setup.sh --for test installs Debian\'s prometheus)');
    return;
  }
  let file = join(PROJECT_ROOT, promConfigFile);
  if (!existsSync(join(PROJECT_ROOT, ALERT_RULES))) {
    t.diagnostic(`${ALERT_RULES} is not on this branch yet: checked without rule_files`);
    const dir = mkdtempSync(join(tmpdir(), 'stratus-prometheus-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const config = parse(read(promConfigFile)) as Record<string, unknown>;
    delete config.rule_files;
    file = join(dir, 'prometheus.yml');
    writeFileSync(file, stringify(config));
  }
  const { stdout, stderr } = await execFileP('promtool', ['check', 'config', file]).catch((err: { stdout: string; stderr: string }) => assert.fail(`promtool check config failed:\n${err.stdout}${err.stderr}`));
  assert.match(stdout + stderr, /SUCCESS: \S+ is valid prometheus config file syntax/);
  if (existsSync(join(PROJECT_ROOT, ALERT_RULES))) assert.match(stdout + stderr, /SUCCESS: [1-9]\d* rules found/);
});

/** `[path]` of every file in a provisioning folder this checkout mounts. */
function provisioningFiles(folder: string): string[] {
  const dir = join(PROJECT_ROOT, folder);
  return execFileSync('ls', [dir], { encoding: 'utf8' }).split('\n').filter((f) => /\.ya?ml$/.test(f)).map((f) => join(folder, f));
}

test('Grafana: pinned, its datasource (uid "prometheus") and the Stratus dashboard provisioned from the repository', (t) => {
  assert.match(service('grafana').image ?? '', /^grafana\/grafana(?:-oss)?:\d+\.\d+\.\d+$/, 'the official OSS image, pinned to a release');
  const m = mounts('grafana');
  assert.deepEqual(m.get('/etc/grafana/provisioning/datasources'), { source: 'deploy/compose/grafana/datasources', readOnly: true });
  assert.deepEqual(m.get('/etc/grafana/provisioning/dashboards'), { source: 'deploy/compose/grafana/dashboards', readOnly: true });

  const datasources = provisioningFiles('deploy/compose/grafana/datasources').flatMap((f) => (parse(read(f)) as { apiVersion: number; datasources: Record<string, unknown>[] }).datasources);
  assert.equal(datasources.length, 1);
  const ds = datasources[0] as { uid: string; type: string; url: string; isDefault: boolean; jsonData?: { timeInterval?: string } };
  assert.equal(ds.uid, 'prometheus', `the uid ${DASHBOARD} names`);
  assert.equal(ds.type, 'prometheus');
  assert.equal(ds.url, `http://prometheus:${ports('prometheus')[0]!.container}`, 'the prometheus service, on the compose network');
  assert.equal(ds.isDefault, true);
  assert.equal(ds.jsonData?.timeInterval, promConfig.global?.scrape_interval, 'Grafana\'s rate interval follows the scrape interval');

  const providers = provisioningFiles('deploy/compose/grafana/dashboards').flatMap((f) => (parse(read(f)) as { apiVersion: number; providers: { type: string; options: { path: string } }[] }).providers);
  assert.equal(providers.length, 1);
  assert.equal(providers[0]!.type, 'file');
  const dashboardAt = [...m].find(([, v]) => v.source === DASHBOARD)?.[0];
  assert.ok(dashboardAt, `${DASHBOARD} is not mounted`);
  assert.equal(m.get(dashboardAt)!.readOnly, true);
  assert.equal(posix.dirname(dashboardAt), providers[0]!.options.path, 'the provider loads the folder the dashboard is mounted in');
  assert.equal(environment('grafana').GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH, dashboardAt, 'Grafana opens on the Stratus dashboard');
  assert.ok((service('grafana').volumes ?? []).includes('grafana-data:/var/lib/grafana'), 'its data in a volume');
  if (!existsSync(join(PROJECT_ROOT, DASHBOARD))) t.diagnostic(`${DASHBOARD} is not on this branch yet: the mount is checked, its content by the next test once it is`);
});

test('the dashboard the compose file mounts has uid "stratus" and queries the provisioned datasource only', (t) => {
  if (!existsSync(join(PROJECT_ROOT, DASHBOARD))) {
    t.skip(`${DASHBOARD} is not on this branch yet`);
    return;
  }
  const dashboard = JSON.parse(read(DASHBOARD)) as { uid: string };
  assert.equal(dashboard.uid, 'stratus');
  const refs: unknown[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'datasource') refs.push(x);
        walk(x);
      }
    }
  };
  walk(dashboard);
  assert.ok(refs.length > 0, 'the dashboard names no datasource');
  for (const r of refs) {
    // Grafana's built-in annotation source is not a Prometheus datasource.
    if ((r as { uid?: string } | null)?.uid === '-- Grafana --' || (r as { type?: string } | null)?.type === 'grafana') continue;
    assert.equal((r as { uid?: string } | null)?.uid, 'prometheus', `datasource reference ${JSON.stringify(r)}`);
  }
});

test('every file the compose file mounts from the repository is there (the two deploy/ files once the main line has them)', (t) => {
  for (const name of Object.keys(services)) {
    for (const [target, { source }] of mounts(name)) {
      if (existsSync(join(PROJECT_ROOT, source))) continue;
      if (source === ALERT_RULES || source === DASHBOARD) {
        t.diagnostic(`${name}: ${source} (for ${target}) is not on this branch yet`);
        continue;
      }
      assert.fail(`${name}: ${source} is mounted at ${target} but is not in the repository (Docker would create an empty folder there)`);
    }
  }
});

test('the worker\'s health check: healthy while this host\'s worker holds its lease, unhealthy before it starts and once it stopped', async (t) => {
  const base = loadConfig();
  try {
    await pingRedis(base, 2000);
  } catch {
    t.skip(`no Redis at ${base.redis.host}:${base.redis.port} (npm test starts one; npm run test:unit does not)`);
    return;
  }
  const check = effectiveHealthcheck('worker')!;
  assert.equal(check[0], 'CMD');
  const [cmd, ...args] = check.slice(1).map((a) => interpolate(a, {}));
  assert.equal(cmd, 'node');
  // This machine stands for the container: the same hostname for the worker and the check, Redis
  // where the tests' Redis is, and a key prefix of this test's own.
  const id = randomUUID();
  const env = { ...process.env, STRATUS_REDIS_KEY_PREFIX: `test:${id}:`, STRATUS_KAFKA_TOPIC_PREFIX: `test.${id}.` };
  const healthy = async (): Promise<{ ok: boolean; stderr: string }> => {
    try {
      await execFileP(process.execPath, args, { cwd: PROJECT_ROOT, env, timeout: 20_000 });
      return { ok: true, stderr: '' };
    } catch (err) {
      return { ok: false, stderr: String((err as { stderr?: string }).stderr) };
    }
  };
  const before = await healthy();
  assert.equal(before.ok, false);
  assert.match(before.stderr, /no live stratus worker of this host/);

  const worker = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'stratus.js'), ...(service('worker').command as string[])], { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  worker.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((resolve) => worker.once('exit', (code) => resolve(code)));
  t.after(() => {
    if (worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL');
  });
  // Healthy once the worker has registered and leased its heartbeat: asked until then (the
  // container's check runs every interval too), for as long as the check's start period allows.
  const deadline = Date.now() + durationMs(service('worker').healthcheck?.start_period);
  let now = await healthy();
  while (!now.ok && worker.exitCode === null && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    now = await healthy();
  }
  assert.deepEqual(now, { ok: true, stderr: '' }, `the check never passed while the worker ran; its stderr:\n${log}`);

  worker.kill('SIGTERM');
  assert.equal(await exited, 0, log);
  const after = await healthy();
  assert.equal(after.ok, false, 'a worker that stopped deregistered: its container is not healthy');
  assert.match(after.stderr, /no live stratus worker of this host/);
});
