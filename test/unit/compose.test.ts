/**
 * docker-compose.yml cannot run here (no Docker engine), so it is checked against Config instead:
 * the same ports, only real STRATUS_* names, the same Kafka version, health checks where needed.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { envName, OPTIONS, PROJECT_ROOT } from '../../src/config.js';

const text = readFileSync(join(PROJECT_ROOT, 'docker-compose.yml'), 'utf8');
interface Service {
  image?: string;
  build?: unknown;
  ports?: string[];
  environment?: Record<string, string | number>;
  healthcheck?: { test: unknown };
  depends_on?: Record<string, { condition: string }>;
  command?: string[] | string;
}
const compose = parse(text, { merge: true }) as { services: Record<string, Service> };
const services = compose.services;
const defaults = (key: keyof typeof OPTIONS) => OPTIONS[key].default;

test('the services a user expects are there', () => {
  assert.deepEqual(Object.keys(services).sort(), ['forwarder', 'gateway', 'kafka', 'processor', 'redis', 'topics']);
  for (const role of ['gateway', 'processor', 'forwarder']) {
    assert.deepEqual(services[role]!.command, ['node', 'bin/stratus.js', 'run', '--roles', role]);
    assert.equal(services[role]!.depends_on?.kafka?.condition, 'service_healthy');
    assert.equal(services[role]!.depends_on?.topics?.condition, 'service_completed_successfully');
  }
});

test('every STRATUS_* name in the file is a Config option', () => {
  const known = new Set(Object.keys(OPTIONS).map(envName));
  const used = new Set(text.match(/STRATUS_[A-Z0-9_]+/g) ?? []);
  assert.ok(used.size >= 6);
  for (const name of used) assert.ok(known.has(name), `${name} is not a Config option`);
});

test('published ports are the Config defaults', () => {
  const kafkaPort = defaults('kafka.brokers').split(':')[1];
  assert.deepEqual(services.kafka!.ports, [`${kafkaPort}:${kafkaPort}`]);
  assert.deepEqual(services.redis!.ports, [`${defaults('redis.port')}:${defaults('redis.port')}`]);
  assert.deepEqual(services.gateway!.ports, [`${defaults('grpc.port')}:${defaults('grpc.port')}`, `${defaults('http.port')}:${defaults('http.port')}`]);
  assert.equal(String(services.gateway!.environment!.STRATUS_GRPC_PORT), defaults('grpc.port'));
  assert.equal(String(services.gateway!.environment!.STRATUS_HTTP_PORT), defaults('http.port'));
  assert.match(String(services.kafka!.environment!.KAFKA_ADVERTISED_LISTENERS), new RegExp(`EXTERNAL://${defaults('kafka.brokers').replace(/\./g, '\\.')}`));
});

test('Kafka is the pinned version, single-node KRaft, with no topic auto-creation', () => {
  const pom = readFileSync(join(PROJECT_ROOT, 'src', 'stack', 'kafka-pom.xml'), 'utf8');
  const version = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(pom)![1];
  assert.equal(services.kafka!.image, `apache/kafka:${version}`);
  assert.equal(services.topics!.image, `apache/kafka:${version}`);
  const env = services.kafka!.environment!;
  assert.equal(env.KAFKA_PROCESS_ROLES, 'broker,controller');
  assert.equal(env.KAFKA_AUTO_CREATE_TOPICS_ENABLE, 'false');
  assert.match(String(services.topics!.environment!.STRATUS_KAFKA_PARTITIONS), new RegExp(`:-${defaults('kafka.partitions')}\\}$`));
  assert.match(String(services.topics!.environment!.STRATUS_KAFKA_TOPIC_PREFIX), new RegExp(`:-${defaults('kafka.topicPrefix').replace(/\./g, '\\.')}\\}$`));
});

test('every long-running service has a health check', () => {
  for (const name of ['kafka', 'redis', 'gateway', 'processor', 'forwarder']) {
    assert.ok(services[name]!.healthcheck?.test, `${name} has no healthcheck`);
  }
});
