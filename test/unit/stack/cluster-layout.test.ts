/** The clusters' fixed ports (src/stack/cluster-layout.ts): they must never meet the kernel's ephemeral range or each other. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../../src/config.js';
import { clusterPaths, KAFKA_NODES, REDIS_BUS_PORT_OFFSET, REDIS_CLUSTER_PORTS } from '../../../src/stack/cluster-layout.js';
import { stackPaths } from '../../../src/stack/paths.js';

test('every cluster port is below 32768, distinct, and none is a single-node default', () => {
  const ports = [
    ...KAFKA_NODES.flatMap((n) => [n.port, n.controllerPort]),
    ...REDIS_CLUSTER_PORTS,
    ...REDIS_CLUSTER_PORTS.map((p) => p + REDIS_BUS_PORT_OFFSET),
  ];
  assert.equal(ports.length, 3 * 2 + 6 * 2);
  assert.equal(new Set(ports).size, ports.length);
  for (const p of ports) assert.ok(p >= 1024 && p < 32768, `port ${p}`);
  const config = loadConfig({ env: {}, envFile: null });
  for (const single of [config.redis.port, config.kafka.controllerPort, Number(config.kafka.brokers[0]!.split(':')[1])]) {
    assert.equal(ports.includes(single), false, `port ${single}`);
  }
});

test('the clusters keep their data, logs and pid files apart from the single-node stack', () => {
  const config = loadConfig({ env: {}, envFile: null });
  const paths = stackPaths(config);
  const c = clusterPaths(paths);
  assert.equal(c.root, `${config.dataDir}/cluster`);
  assert.equal(c.kafka(2).data, `${config.dataDir}/cluster/kafka/node-2/data`);
  assert.equal(c.kafka(2).pid, `${config.dataDir}/run/cluster-kafka-2.pid`);
  assert.equal(c.redis(17004).dir, `${config.dataDir}/cluster/redis/17004`);
  // The single broker's pid marker (its server.properties path) is not part of a node's.
  for (const n of KAFKA_NODES) assert.equal(c.kafka(n.nodeId).props.includes(paths.kafkaProps), false);
  for (const f of [...c.kafkaLogs(), ...c.redisLogs()]) assert.ok(f.startsWith(`${c.root}/logs/`), f);
});
