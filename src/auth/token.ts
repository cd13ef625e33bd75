/**
 * Device tokens: HMAC-SHA256 over the device id and an expiry, sent as `authorization: Bearer`.
 *
 *   v1.<base64url(device id)>.<expiry, unix seconds>.<base64url(HMAC-SHA256(secret, "v1.<id>.<expiry>"))>
 *
 * Stateless: a gateway that knows the secret checks a token without a lookup. The device id is in
 * the token, so a device can only act as itself.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

const VERSION = 'v1';

function mac(secret: string, body: string): Buffer {
  return createHmac('sha256', secret).update(body).digest();
}

export function issueToken(secret: string, deviceId: string, expiresAtS: number): string {
  if (secret.length === 0) throw new TypeError('token secret must not be empty');
  if (!Number.isSafeInteger(expiresAtS) || expiresAtS <= 0) throw new TypeError(`token expiry must be a positive integer of unix seconds (got ${expiresAtS})`);
  const body = `${VERSION}.${Buffer.from(deviceId, 'utf8').toString('base64url')}.${expiresAtS}`;
  return `${body}.${mac(secret, body).toString('base64url')}`;
}

export type TokenCheck = { ok: true; deviceId: string; expiresAtS: number } | { ok: false; reason: 'malformed' | 'forged' | 'expired' };

export function verifyToken(secret: string, token: string, nowS: number = Math.floor(Date.now() / 1000)): TokenCheck {
  const parts = token.split('.');
  if (parts.length !== 4 || parts[0] !== VERSION || !/^\d{1,12}$/.test(parts[2]!)) return { ok: false, reason: 'malformed' };
  const body = parts.slice(0, 3).join('.');
  const given = Buffer.from(parts[3]!, 'base64url');
  const want = mac(secret, body);
  if (given.length !== want.length || !timingSafeEqual(given, want)) return { ok: false, reason: 'forged' };
  const expiresAtS = Number(parts[2]);
  if (expiresAtS <= nowS) return { ok: false, reason: 'expired' };
  return { ok: true, deviceId: Buffer.from(parts[1]!, 'base64url').toString('utf8'), expiresAtS };
}
