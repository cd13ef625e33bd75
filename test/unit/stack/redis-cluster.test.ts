/** parseClusterNodes / parseClusterInfo (src/stack/redis-cluster.ts): Redis's text replies, as Redis 7 writes them. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseClusterInfo, parseClusterNodes } from '../../../src/stack/redis-cluster.js';

// Captured from the local cluster after a failover: 17001 died, 17005 took its slots.
const NODES = [
  '21c950152bd3a7cfb7dd4d92fb88af90510ecc83 127.0.0.1:17003@27003 master - 0 1796478216270 3 connected 10923-16383',
  '2797e85e5498211e2ee50094e83d20df9a355188 127.0.0.1:17001@27001 master,fail - 1796478216000 1796478215000 1 disconnected',
  'adc64839da7a06a93bc48e6a98e61de7306616ee 127.0.0.1:17006@27006 slave 5f3805799a7a1bfb2bd4c741bbec1673b979d06e 0 1796478215759 2 connected',
  'df7e359d85c67a7e56b5c4ae3867e70b5316ce5a 127.0.0.1:17004@27004 myself,slave 21c950152bd3a7cfb7dd4d92fb88af90510ecc83 0 1796478216768 3 connected',
  '5f3805799a7a1bfb2bd4c741bbec1673b979d06e 127.0.0.1:17002@27002 master - 0 1796478217271 2 connected 5461-10921 10922 [10922->-21c950152bd3a7cfb7dd4d92fb88af90510ecc83]',
  '62279310512eaaeabf686730c43c25d0289d4b1a 127.0.0.1:17005@27005,node5.local master - 0 1796478215759 7 connected 0-5460',
  '',
].join('\n');

test('CLUSTER NODES: role, master, failure, link and slot count of each node', () => {
  const nodes = parseClusterNodes(NODES);
  assert.deepEqual(
    nodes.map((n) => [n.port, n.role, n.masterId?.slice(0, 6) ?? null, n.failing, n.connected, n.slots]),
    [
      [17003, 'master', null, false, true, 5461],
      [17001, 'master', null, true, false, 0],
      [17006, 'replica', '5f3805', false, true, 0],
      [17004, 'replica', '21c950', false, true, 0],
      // A slot being migrated is listed besides its range and not counted twice.
      [17002, 'master', null, false, true, 5462],
      [17005, 'master', null, false, true, 5461],
    ],
  );
  assert.equal(nodes[5]!.host, '127.0.0.1');
  assert.equal(nodes.reduce((n, x) => n + x.slots, 0), 16384);
  assert.deepEqual(parseClusterNodes(''), []);
});

test('CLUSTER INFO: key -> value, CRLF or LF', () => {
  const info = parseClusterInfo('cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_known_nodes:6\r\n');
  assert.deepEqual(info, { cluster_state: 'ok', cluster_slots_assigned: '16384', cluster_known_nodes: '6' });
  assert.equal(parseClusterInfo('cluster_state:fail\n').cluster_state, 'fail');
});
