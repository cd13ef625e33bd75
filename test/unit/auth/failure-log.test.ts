import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { AuthFailureLog, peerOf } from '../../../src/auth/failure-log.js';

test('at most one line per window: the first failure at once, the rest tallied into one line at the window\'s end', (t) => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
  t.after(() => mock.timers.reset());
  const lines: [number, string][] = [];
  const log = new AuthFailureLog('gateway', { windowMs: 10_000, write: (line) => lines.push([Date.now(), line]) });

  log.record('forged', '127.0.0.1:1');
  assert.deepEqual(lines, [[0, 'gateway: 1 failed authentication in the last 10 s (forged 1); last from 127.0.0.1:1\n']]);

  // 312 more within the window: nothing until it ends.
  for (let i = 0; i < 300; i++) log.record('forged', '127.0.0.1:2');
  mock.timers.tick(4_000);
  for (let i = 0; i < 12; i++) log.record('expired', '127.0.0.1:53412');
  mock.timers.tick(5_999);
  assert.equal(lines.length, 1);
  mock.timers.tick(1);
  assert.deepEqual(lines[1], [10_000, 'gateway: 312 failed authentications in the last 10 s (forged 300, expired 12); last from 127.0.0.1:53412\n']);

  // A failure right after that line waits for the next window too.
  mock.timers.tick(2_000);
  log.record('duplicate', '[::1]:9');
  log.record('missing', '[::1]:9');
  log.record('duplicate', '[::1]:9');
  mock.timers.tick(7_999);
  assert.equal(lines.length, 2);
  mock.timers.tick(1);
  assert.deepEqual(lines[2], [20_000, 'gateway: 3 failed authentications in the last 10 s (duplicate 2, missing 1); last from [::1]:9\n']);

  // Quiet for a window and more: nothing is written, and the next failure is written at once.
  mock.timers.tick(60_000);
  assert.equal(lines.length, 3);
  log.record('malformed', '10.0.0.1:5');
  assert.deepEqual(lines[3], [80_000, 'gateway: 1 failed authentication in the last 10 s (malformed 1); last from 10.0.0.1:5\n']);

  // Whatever the rate, the lines are at least a window apart and every failure is in one of them.
  for (let ms = 0; ms < 100_000; ms += 7) {
    log.record(ms % 2 === 0 ? 'forged' : 'expired', '10.0.0.2:6');
    mock.timers.tick(7);
  }
  mock.timers.tick(10_000);
  const times = lines.map(([at]) => at);
  for (let i = 1; i < times.length; i++) assert.ok(times[i]! - times[i - 1]! >= 10_000, `lines at ${times[i - 1]} and ${times[i]}`);
  const counted = lines.reduce((n, [, line]) => n + Number(/: (\d+) failed/.exec(line)![1]), 0);
  assert.equal(counted, 1 + 312 + 3 + 1 + Math.ceil(100_000 / 7));
  for (const [, line] of lines) assert.doesNotMatch(line, /v1\./, 'no token');
});

test('the window is the role\'s own: two logs do not share it', (t) => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
  t.after(() => mock.timers.reset());
  const lines: string[] = [];
  const grpc = new AuthFailureLog('gateway', { windowMs: 50, write: (l) => lines.push(l) });
  const sse = new AuthFailureLog('sse', { windowMs: 50, write: (l) => lines.push(l) });
  grpc.record('missing', 'a:1');
  sse.record('expired', 'b:2');
  grpc.record('missing', 'a:1');
  mock.timers.tick(50);
  assert.deepEqual(lines, [
    'gateway: 1 failed authentication in the last 0.05 s (missing 1); last from a:1\n',
    'sse: 1 failed authentication in the last 0.05 s (expired 1); last from b:2\n',
    'gateway: 1 failed authentication in the last 0.05 s (missing 1); last from a:1\n',
  ]);
});

test('peerOf: host:port, IPv6 in brackets', () => {
  assert.equal(peerOf('127.0.0.1', 53412), '127.0.0.1:53412');
  assert.equal(peerOf('::ffff:127.0.0.1', 80), '[::ffff:127.0.0.1]:80');
  assert.equal(peerOf(undefined, undefined), 'unknown');
});
