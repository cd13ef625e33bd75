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
/** The gateway's limit on a device id (x-device-id, SSE path, Event.device_id). */
const DEVICE_ID_BYTES_MAX = 256;

function mac(secret: string, body: string): Buffer {
  return createHmac('sha256', secret).update(body).digest();
}

export function issueToken(secret: string, deviceId: string, expiresAtS: number): string {
  if (secret.length === 0) throw new TypeError('token secret must not be empty');
  const idBytes = Buffer.byteLength(deviceId, 'utf8');
  if (idBytes === 0 || idBytes > DEVICE_ID_BYTES_MAX) throw new TypeError(`device id must be 1..${DEVICE_ID_BYTES_MAX} bytes (got ${idBytes})`);
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

export type BearerCheck = { ok: true; deviceId: string } | { ok: false; why: string };

/**
 * Checks an `authorization` header value (`Bearer <token>`). `why` is for the caller's
 * UNAUTHENTICATED / 401 answer: it says what is wrong and never echoes the token.
 */
export function checkBearer(secret: string, header: string | undefined | null, nowS?: number): BearerCheck {
  if (header === undefined || header === null || header === '') return { ok: false, why: 'no "authorization: Bearer <token>" header; get a token with `stratus token issue --device ID`' };
  const m = /^Bearer[ ]+(\S{1,2048})\s*$/i.exec(header);
  if (m === null) return { ok: false, why: 'the authorization header must be "Bearer <token>"' };
  const check = verifyToken(secret, m[1]!, nowS);
  if (check.ok) return { ok: true, deviceId: check.deviceId };
  switch (check.reason) {
    case 'expired':
      return { ok: false, why: 'the device token has expired; issue a new one' };
    case 'forged':
      return { ok: false, why: 'the device token is not signed by this engine\'s auth.tokenSecret' };
    case 'malformed':
      return { ok: false, why: 'the device token is malformed (expected v1.<device>.<expiry>.<mac>)' };
  }
}
