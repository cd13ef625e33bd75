/**
 * docker-compose.yml and the Dockerfile cannot run here (no Docker engine), so they are checked
 * against the code instead: only real STRATUS_* names, the Config defaults as published ports, the
 * Kafka version of src/stack/kafka-pom.xml, listeners that both the host and the other containers
 * can reach, health checks wherever something waits on health, and the topics service's script run
 * through bash with a stand-in kafka-topics.sh, so its topic names and partition counts are the
 * ones src/topology.ts and Config give.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { envName, loadConfig, OPTIONS, PROJECT_ROOT, type Config, type OptionKey } from '../../src/config.js';
import { topology } from '../../src/topology.js';

interface Service {
  image?: string;
  build?: unknown;
  ports?: (string | number)[];
  environment?: Record<string, string | number | boolean | null>;
  healthcheck?: { test?: string[] | string; disable?: boolean };
  depends_on?: Record<string, { condition: string }>;
  entrypoint?: string[] | string;
  command?: string[] | string;
  volumes?: string[];
  restart?: string;
}

const text = readFileSync(join(PROJECT_ROOT, 'docker-compose.yml'), 'utf8');
const compose = parse(text, { merge: true }) as { services: Record<string, Service>; volumes?: Record<string, unknown> };
const services = compose.services;
const ROLES = ['gateway', 'processor', 'forwarder'] as const;
const def = (key: OptionKey): string => OPTIONS[key].default;

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
  assert.deepEqual(Object.keys(services).sort(), ['forwarder', 'gateway', 'kafka', 'processor', 'redis', 'topics']);
  for (const role of ROLES) {
    const s = service(role);
    assert.equal(s.build, '.', `${role} is built from the Dockerfile at the root`);
    assert.deepEqual(s.command, ['node', 'bin/stratus.js', 'run', '--roles', role]);
    assert.equal(s.depends_on?.kafka?.condition, 'service_healthy', role);
    assert.equal(s.depends_on?.redis?.condition, 'service_healthy', role);
    assert.equal(s.depends_on?.topics?.condition, 'service_completed_successfully', role);
  }
  assert.equal(service('topics').depends_on?.kafka?.condition, 'service_healthy');
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
  for (const role of ROLES) {
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
  for (const role of ROLES) {
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
  for (const name of ['topics', 'processor', 'forwarder']) assert.deepEqual(ports(name), [], `${name} publishes nothing`);
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
    const check = service(name).healthcheck;
    assert.ok(check?.test && check.disable !== true && check.test[0] !== 'NONE', `${name} has no health check`);
  }
  const kafkaCheck = String(service('kafka').healthcheck!.test);
  const bootstrap = /--bootstrap-server localhost:(\d+)/.exec(kafkaCheck);
  assert.ok(bootstrap && [...bound.values()].some((l) => l.port === Number(bootstrap[1])), 'the Kafka health check must ask a bound listener');
  assert.match(String(service('redis').healthcheck!.test), /redis-cli ping/);
  for (const role of ROLES) {
    assert.ok(String(service(role).healthcheck!.test).includes(`:${roleConfig(role).http.port}/livez`), `${role}: health check is not /livez on http.port`);
  }
});

test('the Dockerfile builds what the roles run, as set-up does', () => {
  const dockerfile = readFileSync(join(PROJECT_ROOT, 'Dockerfile'), 'utf8');
  assert.match(dockerfile, /^FROM node:20-bookworm$/m);
  // The same librdkafka build headers as scripts/setup.sh installs on a machine without Docker.
  const setup = readFileSync(join(PROJECT_ROOT, 'scripts', 'setup.sh'), 'utf8');
  const devPackages = (t: string) => [...new Set(t.match(/\b[a-z0-9.+-]+-dev\b/g) ?? [])].sort();
  const apt = /apt_packages=\(([^)]*)\)/.exec(setup)?.[1] ?? '';
  assert.ok(devPackages(apt).length >= 6);
  assert.deepEqual(devPackages(/apt-get install[^\n]*(?:\\\n[^\n]*)*/.exec(dockerfile)?.[0] ?? ''), devPackages(apt));
  assert.match(dockerfile, /^RUN CKJS_LINKING=dynamic npm ci\b/m);
  // tsc -b runs after everything tsconfig.json includes has been copied in.
  const copied = [...dockerfile.matchAll(/^COPY (.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/));
  const tsconfig = JSON.parse(readFileSync(join(PROJECT_ROOT, 'tsconfig.json'), 'utf8')) as { include: string[] };
  for (const need of [...tsconfig.include, 'bin', 'proto', 'package.json', 'package-lock.json', 'tsconfig.json']) {
    assert.ok(copied.includes(need), `the Dockerfile does not copy ${need}`);
  }
  const build = dockerfile.indexOf('RUN npx tsc -b');
  assert.ok(build > 0 && [...dockerfile.matchAll(/^COPY /gm)].every((m) => m.index! < build), 'npx tsc -b must run after every COPY');

  const ignored = readFileSync(join(PROJECT_ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
  for (const entry of ['node_modules', 'dist', '.stratus', '.git', '.env']) assert.ok(ignored.includes(entry), `.dockerignore lacks ${entry}`);
});
