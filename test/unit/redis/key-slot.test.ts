/**
 * keySlot against slots Redis 7.0.15 itself answered (CLUSTER KEYSLOT on a local cluster), hash
 * tags included: the first `{` and the first `}` after it, an empty tag hashing the whole key, and
 * multi-byte UTF-8.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { keySlot } from '../../../src/redis/key-slot.js';
import { topology } from '../../../src/topology.js';
import { testConfig } from '../../helpers/config.js';

const FROM_REDIS: [string, number][] = [
  ['123456789', 12739],
  ['somekey', 11058],
  ['foo', 12182],
  ['stratus:dev:{device-42}', 6716],
  ['{}', 15257],
  ['{}x', 10595],
  ['a{b}c', 3300],
  ['a{}b{c}', 7353],
  ['é{ü}', 9552],
  ['{{x}}', 11068],
  ['x}{y}', 12222],
];

test('keySlot answers what CLUSTER KEYSLOT answered', () => {
  for (const [key, slot] of FROM_REDIS) assert.equal(keySlot(key), slot, key);
});

test('on a cluster every key of one device is in one slot, whatever its id holds; on one server the names are untagged', () => {
  const cluster = topology(testConfig({ 'redis-mode': 'cluster' })).redis;
  // Device ids are 1..256 bytes (an empty one is refused at the door: validate.ts, gateway.ts). The
  // tag is never empty, even for an id that starts with `}` (an empty tag would hash each key whole).
  for (const id of ['d1', 'a}b', '{x}', '}', 'ü-7', 'dev:{y}', 'x'.repeat(256)]) {
    const keys = [cluster.deviceState(id), cluster.deviceBuffer(id), cluster.admission(id), cluster.presence(id)];
    assert.equal(new Set(keys.map(keySlot)).size, 1, `${JSON.stringify(id)}: ${keys.join(' ')}`);
  }
  assert.equal(keySlot(cluster.metricsWrite('t1')), keySlot(cluster.metricsStream));
  assert.equal(keySlot(cluster.metricsDead), keySlot(cluster.metricsStream));
  const single = topology(testConfig()).redis;
  assert.equal(single.deviceState('d1'), `${single.prefix}dev:d1`);
});
