import assert from 'node:assert/strict';
import { test } from 'node:test';
import { noConnectMessage, shortDetail, shouldGiveUp } from '../../../loadgen/fail-fast.js';
import type { FleetStatus } from '../../../loadgen/fleet.js';

function st(over: Partial<FleetStatus>): FleetStatus {
  return { type: 'status', devices: 10, reached: false, failedDevices: 0, failures: {}, failureWords: {}, connected: 0, connectedOnce: 0, allConnectedAtMs: null, ...over };
}

test('gives up when every device failed and nothing answered, at once', () => {
  assert.equal(shouldGiveUp([st({ failedDevices: 10 }), st({ failedDevices: 10 })], 50, 10_000), true);
  // One slice still trying: not yet (before the connect timeout).
  assert.equal(shouldGiveUp([st({ failedDevices: 10 }), st({ failedDevices: 3 })], 50, 10_000), false);
  // ... but after it.
  assert.equal(shouldGiveUp([st({ failedDevices: 10 }), st({ failedDevices: 3 })], 10_000, 10_000), true);
});

test('never gives up once anything answered, nor before any attempt failed', () => {
  assert.equal(shouldGiveUp([st({ failedDevices: 10 }), st({ reached: true })], 60_000, 10_000), false);
  assert.equal(shouldGiveUp([st({})], 60_000, 10_000), false);
  assert.equal(shouldGiveUp([], 60_000, 10_000), false);
});

test('grpc-js words shortened to what a person needs', () => {
  assert.equal(shortDetail('No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1 (2026-12-05T02:31:00.000Z)'), 'connect ECONNREFUSED 127.0.0.1:1');
  assert.equal(shortDetail('Name resolution failed for target dns:nohost.invalid:50051'), 'Name resolution failed for target dns:nohost.invalid:50051');
});

test('the hint line names the address, the failure and what to do, by kind', () => {
  const refused = st({ failedDevices: 10, failures: { REFUSED: 12 }, failureWords: { REFUSED: 'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1 (2026-12-05T02:31:00.000Z)' } });
  assert.equal(
    noConnectMessage('127.0.0.1:1', [refused], 10_000),
    'no device could connect to 127.0.0.1:1 (REFUSED: connect ECONNREFUSED 127.0.0.1:1; all 10 devices failed): is the engine running? start it with `npx stratus run`, or set --target',
  );
  const dns = st({ failedDevices: 4, failures: { DNS: 4 }, failureWords: { DNS: 'Name resolution failed for target dns:nohost.invalid:1' } });
  assert.match(noConnectMessage('nohost.invalid:1', [dns], 10_000), /\(DNS: Name resolution failed for target dns:nohost\.invalid:1; 4 of 10 devices failed, none answered within --connect-timeout 10000 ms\): the host name does not resolve: check --target$/);
  const tls = st({ failedDevices: 10, failures: { TLS: 10, RESET: 2 }, failureWords: { RESET: 'socket hang up', TLS: 'Client network socket disconnected before secure TLS connection was established' } });
  assert.match(noConnectMessage('h:1', [tls], 10_000), /^no device could connect to h:1 \(TLS: Client network socket disconnected before secure TLS connection was established; all 10 devices failed\): the server and the load generator disagree on TLS: check --tls and --tls-ca/);
  const stalled = st({ failedDevices: 10, failures: { STALLED: 10 }, failureWords: { STALLED: 'no answer within --connect-timeout 1000 ms' } });
  assert.match(noConnectMessage('h:1', [stalled], 1_000), /\(STALLED: no answer within --connect-timeout 1000 ms; all 10 devices failed\): something accepts connections there but does not answer gRPC/);
});
