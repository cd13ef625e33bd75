import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDurationS, resolveOptions } from '../../../loadgen/options.js';

const T = '127.0.0.1:50051';

test('defaults: 10,000 devices at 1 ev/s on the local gateway, 100 per connection', () => {
  const o = resolveOptions({}, T);
  assert.equal(o.target, T);
  assert.equal(o.devices, 10_000);
  assert.equal(o.connections, 100);
  assert.equal(o.ratePerDevice, 1);
  assert.equal(o.api, 'stratus');
  assert.equal(o.profile, 'iot');
  assert.equal(o.durationS, 30);
  assert.equal(o.warmupS, 5);
  assert.equal(o.closedLoop, false);
  assert.match(o.devicePrefix, /^lg-/);
});

test('--total-rate spreads over the fleet; --tls-ca implies --tls; thresholds are parsed', () => {
  const o = resolveOptions({ devices: '400', 'total-rate': '1000', 'tls-ca': '/x.pem', threshold: ['ack.p99<20ms', 'errors.rate<0.1%'] }, T);
  assert.equal(o.ratePerDevice, 2.5);
  assert.equal(o.tls, true);
  assert.deepEqual(o.thresholds.map((t) => [t.kind, t.subject, t.stat, t.op, t.limit]), [
    ['latency', 'ack', 'p99', '<', 20],
    ['rate', 'errors', 'rate', '<', 0.1],
  ]);
});

test('durations', () => {
  assert.throws(() => parseDurationS('--d', '90', false), /a number needs a unit, e.g. 90s or 90ms/); // Go's format (src/cli/duration.ts)
  assert.equal(parseDurationS('--d', '1h30m', false), 5400);
  assert.equal(parseDurationS('--d', '2m', false), 120);
  assert.equal(parseDurationS('--d', '250ms', false), 0.25);
  assert.equal(parseDurationS('--d', '0s', true), 0);
  assert.throws(() => parseDurationS('--d', '0', false), /--d must be a duration like 30s, 2m or 500ms above 0 \(got "0"\)/);
  assert.throws(() => parseDurationS('--d', '-1s', true), /--d must be/);
  assert.throws(() => parseDurationS('--d', '5 weeks', true), /--d must be/);
});

test('every bad flag names itself and what is allowed', () => {
  const cases: [Record<string, string | boolean>, RegExp][] = [
    [{ devices: '0' }, /^--devices must be an integer from 1 to 1000000 \(got "0"\)$/],
    [{ devices: '1.5' }, /^--devices must be an integer/],
    [{ devices: '10', connections: '11' }, /^--connections must be an integer from 1 to 10 \(got "11"\)$/],
    [{ rate: '-1' }, /^--rate must be a number above 0 \(got "-1"\)$/],
    [{ rate: '0' }, /^--rate must be a number above 0/],
    [{ 'total-rate': 'NaN' }, /^--total-rate must be a number above 0/],
    [{ batch: '0' }, /^--batch must be an integer from 1 to 10000/],
    [{ 'payload-bytes': '-3' }, /^--payload-bytes must be an integer from 0/],
    [{ api: 'rest' }, /^--api must be one of stratus, nimbus, event-stream, metrics \(got "rest"\)$/],
    [{ target: 'http://x:1' }, /^--target must be host:port/],
    [{ target: 'h:70000' }, /^--target must be host:port/],
    [{ seed: 'abc' }, /^--seed must be an integer from 0 to 4294967295/],
    [{ 'device-prefix': 'a b' }, /^--device-prefix must be/],
    [{ type: '' }, /^--type must name a processor/],
    [{ ramp: '-1' }, /^--ramp must be an integer from 0/],
  ];
  for (const [flags, re] of cases) assert.throws(() => resolveOptions(flags, T), { message: re }, JSON.stringify(flags));
  assert.ok(resolveOptions({ target: '[::1]:50051' }, T));
});

test('--warmup-max: by default the ramp, one connect timeout and the warm-up; never below --warmup', () => {
  assert.equal(resolveOptions({}, T).warmupMaxS, 10 + 5);
  assert.equal(resolveOptions({ devices: '2001', ramp: '100', 'connect-timeout': '3s', warmup: '2s' }, T).warmupMaxS, 20 + 3 + 2);
  assert.equal(resolveOptions({ 'warmup-max': '1m' }, T).warmupMaxS, 60);
  assert.throws(() => resolveOptions({ warmup: '5s', 'warmup-max': '2s' }, T), /--warmup-max must be at least --warmup \(5 s\)/);
});
