import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
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

/** A token over `body` with a correct MAC: refusing it as malformed is then about its form, not its signature. */
const signed = (secret: string, body: string) => `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

test('junk appended to the signature is malformed (Buffer.from(..., "base64url") alone ignored it)', () => {
  const t = issueToken('secret', 'd1', 2_000_000_000);
  const mac = t.split('.')[3]!;
  // The lenient decoder read these signatures as the genuine one: such tokens were accepted.
  const sameBytes = ['=', '==', '!', '%', '~~~~', '==junk!', ' ', '\n'];
  for (const junk of sameBytes) assert.ok(Buffer.from(`${mac}${junk}`, 'base64url').equals(Buffer.from(mac, 'base64url')), JSON.stringify(junk));
  for (const junk of [...sameBytes, 'A', 'AA', 'AAA', 'AAAA', 'x', '.', '+', '/']) {
    assert.deepEqual(verifyToken('secret', `${t}${junk}`, 1), { ok: false, reason: 'malformed' }, JSON.stringify(junk));
  }
  assert.deepEqual(checkBearer('secret', `Bearer ${t}==junk!`, 1), { ok: false, reason: 'malformed', why: 'the device token is malformed (expected v1.<device>.<expiry>.<mac>, each part exactly as `stratus token issue` writes it)' });
});

test('a signature differing only in its unused trailing bits is malformed', () => {
  const t = issueToken('secret', 'd1', 2_000_000_000);
  const mac = t.split('.')[3]!;
  assert.equal(mac.length, 43); // 32 bytes: the last character carries 4 bits and 2 unused ones
  const last = B64URL.indexOf(mac.at(-1)!);
  for (const sibling of [last ^ 1, last ^ 2, last ^ 3]) {
    const other = mac.slice(0, -1) + B64URL[sibling];
    assert.ok(Buffer.from(other, 'base64url').equals(Buffer.from(mac, 'base64url')), 'decodes to the same bytes');
    assert.deepEqual(verifyToken('secret', t.slice(0, -1) + B64URL[sibling], 1), { ok: false, reason: 'malformed' });
  }
});

test('every one-character change, insertion or deletion of a valid token is refused', () => {
  const t = issueToken('secret', 'dev/ü-1', 2_000_000_000);
  const alphabet = `${B64URL}.=+/ \u00e9`;
  let tried = 0;
  for (let i = 0; i <= t.length; i++) {
    const variants = [t.slice(0, i) + t.slice(i + 1)];
    for (const c of alphabet) variants.push(t.slice(0, i) + c + t.slice(i), t.slice(0, i) + c + t.slice(i + 1));
    for (const v of variants) {
      if (v === t) continue;
      tried++;
      assert.equal(verifyToken('secret', v, 1).ok, false, v);
    }
  }
  assert.ok(tried > 9_000, `${tried} variants`);
});

test('each part must be exactly what issueToken writes, even under a correct MAC', () => {
  const id = Buffer.from('d1').toString('base64url'); // ZDE
  assert.deepEqual(verifyToken('secret', signed('secret', `v1.${id}.2000000000`), 1), { ok: true, deviceId: 'd1', expiresAtS: 2_000_000_000 });
  const bad: [string, string][] = [
    ['padded device id', `v1.${id}=.2000000000`],
    ['device id with a standard-base64 character', `v1.${Buffer.from([0xfb, 0xff]).toString('base64')}.2000000000`],
    ['device id with unused bits set', 'v1.ZDF.2000000000'],
    ['device id with a character that is no base64', 'v1.ZD%.2000000000'],
    ['empty device id', 'v1..2000000000'],
    ['device id of invalid UTF-8', `v1.${Buffer.from([0x64, 0xff]).toString('base64url')}.2000000000`],
    ['device id of an overlong UTF-8 "/"', `v1.${Buffer.from([0xc0, 0xaf]).toString('base64url')}.2000000000`],
    ['device id of a UTF-8 surrogate', `v1.${Buffer.from([0xed, 0xa0, 0x80]).toString('base64url')}.2000000000`],
    ['device id of 257 bytes', `v1.${Buffer.alloc(257, 0x61).toString('base64url')}.2000000000`],
    ['expiry with a leading zero', `v1.${id}.02000000000`],
    ['expiry 0', `v1.${id}.0`],
    ['expiry with a sign', `v1.${id}.+2000000000`],
    ['expiry of 13 digits', `v1.${id}.2000000000000`],
    ['expiry with a space', `v1.${id}. 2000000000`],
    ['another version', `V1.${id}.2000000000`],
  ];
  for (const [what, body] of bad) assert.deepEqual(verifyToken('secret', signed('secret', body), 1), { ok: false, reason: 'malformed' }, what);
  // A MAC of another length, canonical or not.
  const body = `v1.${id}.2000000000`;
  const mac = createHmac('sha256', 'secret').update(body).digest();
  for (const m of [mac.subarray(0, 31), Buffer.concat([mac, Buffer.from([0])]), Buffer.alloc(0)]) {
    assert.deepEqual(verifyToken('secret', `${body}.${m.toString('base64url')}`, 1), { ok: false, reason: 'malformed' }, `${m.length}-byte MAC`);
  }
  assert.deepEqual(verifyToken('secret', `${body}.${mac.toString('base64url')}=`, 1), { ok: false, reason: 'malformed' }, 'padded MAC');
  assert.deepEqual(verifyToken('secret', `${body}.${mac.toString('base64')}`, 1).ok, mac.toString('base64') === mac.toString('base64url'), 'standard-base64 MAC');
  // A well-formed token with a wrong MAC is forged, not malformed.
  assert.deepEqual(verifyToken('secret', `${body}.${Buffer.alloc(32).toString('base64url')}`, 1), { ok: false, reason: 'forged' });
});

test('device ids round-trip whatever their characters: a BOM, a replaced lone surrogate, 256 bytes', () => {
  for (const [given, want] of [
    ['\ufeffd', '\ufeffd'],
    ['a\ud800b', 'a\ufffdb'],
    ['é'.repeat(128), 'é'.repeat(128)],
    ['nimbus/n-1', 'nimbus/n-1'],
  ] as const) {
    assert.deepEqual(verifyToken('s', issueToken('s', given, 2_000_000_000), 1), { ok: true, deviceId: want, expiresAtS: 2_000_000_000 }, JSON.stringify(given));
  }
});

test('checkBearer: one header exactly; two are a duplicate whatever they hold; the reason is the metric\'s label', () => {
  const t = issueToken('secret', 'd1', 2_000_000_000);
  assert.deepEqual(checkBearer('secret', [`Bearer ${t}`], 1), { ok: true, deviceId: 'd1' });
  const reasons: [string | string[] | undefined, string][] = [
    [[`Bearer ${t}`, `Bearer ${t}`], 'duplicate'],
    [[`Bearer ${t}`, 'Bearer junk'], 'duplicate'],
    [['', ''], 'duplicate'],
    [[], 'missing'],
    [undefined, 'missing'],
    ['', 'missing'],
    ['Bearer', 'malformed'],
    ['Bearer ', 'malformed'],
    [`Bearer ${t}\u00e9`, 'malformed'],
    [`Bearer ${'a'.repeat(10_000)}`, 'malformed'],
    [`Bearer ${t}A`, 'malformed'],
    [`Bearer ${issueToken('other', 'd1', 2_000_000_000)}`, 'forged'],
    [`Bearer ${issueToken('secret', 'd1', 1)}`, 'expired'],
  ];
  for (const [header, reason] of reasons) {
    const r = checkBearer('secret', header, 1);
    assert.equal(r.ok ? 'ok' : r.reason, reason, JSON.stringify(header)?.slice(0, 80));
  }
  const dup = checkBearer('secret', [`Bearer ${t}`, `Bearer ${t}`], 1);
  assert.ok(!dup.ok && dup.why === '2 authorization headers; send exactly one "authorization: Bearer <token>"');
});
