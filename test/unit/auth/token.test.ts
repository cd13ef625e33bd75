import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkBearer, issueToken, verifyToken } from '../../../src/auth/token.js';

test('a token verifies for its device until it expires', () => {
  const t = issueToken('secret', 'dev/1 ü', 2_000_000_000);
  assert.deepEqual(verifyToken('secret', t, 1_999_999_999), { ok: true, deviceId: 'dev/1 ü', expiresAtS: 2_000_000_000 });
  assert.deepEqual(verifyToken('secret', t, 2_000_000_000), { ok: false, reason: 'expired' });
});

test('forged, altered and malformed tokens are refused', () => {
  const t = issueToken('secret', 'd1', 2_000_000_000);
  assert.deepEqual(verifyToken('other', t, 1), { ok: false, reason: 'forged' });
  const [v, , exp, mac] = t.split('.');
  // Another device's id under the same signature.
  assert.deepEqual(verifyToken('secret', [v, Buffer.from('d2').toString('base64url'), exp, mac].join('.'), 1), { ok: false, reason: 'forged' });
  // A later expiry under the same signature.
  assert.deepEqual(verifyToken('secret', [v, t.split('.')[1], '2000000001', mac].join('.'), 1), { ok: false, reason: 'forged' });
  for (const bad of ['', 'v1', 'v1.a.b.c', 'v2.ZDE.2000000000.' + mac, `${t}.x`]) assert.equal(verifyToken('secret', bad, 1).ok, false, bad);
  assert.throws(() => issueToken('', 'd', 1), /secret/);
  assert.throws(() => issueToken('s', 'd', 1.5), /expiry/);
});

test('checkBearer: the reason says what is wrong and never echoes the token', () => {
  const t = issueToken('secret', 'd1', 2_000_000_000);
  assert.deepEqual(checkBearer('secret', `Bearer ${t}`, 1), { ok: true, deviceId: 'd1' });
  assert.deepEqual(checkBearer('secret', `bearer  ${t}`, 1), { ok: true, deviceId: 'd1' });
  const cases: [string | undefined, RegExp][] = [
    [undefined, /no "authorization: Bearer <token>" header/],
    ['', /no "authorization/],
    [`Basic ${t}`, /must be "Bearer <token>"/],
    [`Bearer ${t} extra`, /must be "Bearer <token>"/],
    [`Bearer ${issueToken('other', 'd1', 2_000_000_000)}`, /not signed/],
    [`Bearer ${t}`.replace(/.$/, 'A'), /not signed|malformed/],
    ['Bearer v1.x', /malformed/],
  ];
  for (const [header, why] of cases) {
    const r = checkBearer('secret', header, 1);
    assert.equal(r.ok, false, String(header));
    assert.match((r as { why: string }).why, why, String(header));
    assert.ok(!(r as { why: string }).why.includes(t.slice(3)), 'token echoed');
  }
  assert.match((checkBearer('secret', `Bearer ${t}`, 2_000_000_000) as { why: string }).why, /expired/);
  assert.throws(() => issueToken('s', '', 5), /1\.\.256 bytes/);
  assert.throws(() => issueToken('s', 'x'.repeat(257), 5), /1\.\.256 bytes/);
});
