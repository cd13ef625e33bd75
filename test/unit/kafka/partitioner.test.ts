/**
 * The partitioner against Kafka's own: the murmur2 values below were printed by kafka-clients
 * 4.3.1's Utils.murmur2 and Utils.toPositive(...) % 12 (java, this machine's Maven cache), and the
 * first three are also in Kafka's UtilsTest.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { murmur2, partitionOf } from '../../../src/kafka/partitioner.js';

const JAVA: [string, number, number][] = [
  ['21', -973932308, 0],
  ['foobar', -790332482, 6],
  ['abc', 479470107, 3],
  ['dev-000001', -178968740, 0],
  ['d1', 1393188025, 1],
  ['é-ü', -994418976, 8],
  ['', 275646681, 9],
  ['a', -1563381124, 4],
  ['ab', 316155434, 2],
];

test('murmur2 and the partition of a device id are those of the Java client', () => {
  for (const [key, hash, partition] of JAVA) {
    assert.equal(murmur2(Buffer.from(key, 'utf8')), hash, key);
    assert.equal(partitionOf(key, 12), partition, key);
  }
});

test('a long or non-ASCII id takes the UTF-8 path and agrees with it', () => {
  const long = 'x'.repeat(300);
  assert.equal(partitionOf(long, 7), (murmur2(Buffer.from(long)) & 0x7fffffff) % 7);
  for (let p = 1; p <= 16; p++) assert.equal(partitionOf('é-ü', p), (-994418976 & 0x7fffffff) % p);
});
