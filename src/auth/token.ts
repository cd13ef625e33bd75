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

/** Why an authentication failed: the `reason` label of stratus_auth_failures_total. */
export const AUTH_FAILURE_REASONS = ['missing', 'malformed', 'forged', 'expired', 'duplicate'] as const;
export type AuthFailureReason = (typeof AUTH_FAILURE_REASONS)[number];

export type TokenCheck = { ok: true; deviceId: string; expiresAtS: number } | { ok: false; reason: 'malformed' | 'forged' | 'expired' };

const MAC_BYTES = 32;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
/** Unix seconds, no sign, no leading zero: exactly what issueToken writes. */
const EXPIRY = /^[1-9][0-9]{0,11}$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The bytes of a base64url part, or null unless the part is exactly their canonical encoding
 * (no padding, no other alphabet, no trailing bits set, no extra characters). Buffer.from(s,
 * 'base64url') alone skips what it cannot use, so `<mac>` and `<mac>junk` decoded alike and a
 * token with junk appended to its signature verified.
 */
function canonicalBytes(part: string): Buffer | null {
  if (!BASE64URL.test(part)) return null;
  const bytes = Buffer.from(part, 'base64url');
  return bytes.toString('base64url') === part ? bytes : null;
}

/** The device id a base64url part names, or null unless it is 1..256 bytes of valid UTF-8 in canonical form. */
function canonicalDeviceId(part: string): string | null {
  const bytes = canonicalBytes(part);
  if (bytes === null || bytes.length === 0 || bytes.length > DEVICE_ID_BYTES_MAX) return null;
  let id: string;
  try {
    id = UTF8.decode(bytes);
  } catch {
    return null; // invalid UTF-8: the token is malformed, which the caller reports
  }
  return Buffer.from(id, 'utf8').equals(bytes) ? id : null;
}

/**
 * Checks a token. Parsing is canonical: a token verifies only in the exact form issueToken
 * writes, so no two strings are the same token. Anything else is `malformed` before the MAC is
 * computed; a well-formed token whose MAC does not match is `forged`; a genuine one past its
 * expiry is `expired`.
 */
export function verifyToken(secret: string, token: string, nowS: number = Math.floor(Date.now() / 1000)): TokenCheck {
  const parts = token.split('.');
  if (parts.length !== 4 || parts[0] !== VERSION || !EXPIRY.test(parts[2]!)) return { ok: false, reason: 'malformed' };
  const deviceId = canonicalDeviceId(parts[1]!);
  const given = canonicalBytes(parts[3]!);
  if (deviceId === null || given === null || given.length !== MAC_BYTES) return { ok: false, reason: 'malformed' };
  const want = mac(secret, parts.slice(0, 3).join('.'));
  if (!timingSafeEqual(given, want)) return { ok: false, reason: 'forged' };
  const expiresAtS = Number(parts[2]);
  if (expiresAtS <= nowS) return { ok: false, reason: 'expired' };
  return { ok: true, deviceId, expiresAtS };
}

export type BearerCheck = { ok: true; deviceId: string } | { ok: false; reason: AuthFailureReason; why: string };

/**
 * Checks the `authorization` header (`Bearer <token>`): one value, or every value the request
 * carried (gRPC metadata, Node's req.headersDistinct), so that more than one is refused as
 * `duplicate` rather than one of them picked. `why` is for the caller's UNAUTHENTICATED / 401
 * answer: it says what is wrong and never echoes the token.
 */
export function checkBearer(secret: string, header: string | readonly string[] | undefined | null, nowS?: number): BearerCheck {
  if (Array.isArray(header)) {
    if (header.length > 1) return { ok: false, reason: 'duplicate', why: `${header.length} authorization headers; send exactly one "authorization: Bearer <token>"` };
    return checkBearer(secret, header[0], nowS);
  }
  const value = header as string | undefined | null;
  if (value === undefined || value === null || value === '') return { ok: false, reason: 'missing', why: 'no "authorization: Bearer <token>" header; get a token with `stratus token issue --device ID`' };
  const m = /^Bearer[ ]+(\S{1,2048})\s*$/i.exec(value);
  if (m === null) return { ok: false, reason: 'malformed', why: 'the authorization header must be "Bearer <token>"' };
  const check = verifyToken(secret, m[1]!, nowS);
  if (check.ok) return { ok: true, deviceId: check.deviceId };
  switch (check.reason) {
    case 'expired':
      return { ok: false, reason: 'expired', why: 'the device token has expired; issue a new one' };
    case 'forged':
      return { ok: false, reason: 'forged', why: 'the device token is not signed by this engine\'s auth.tokenSecret' };
    case 'malformed':
      return { ok: false, reason: 'malformed', why: 'the device token is malformed (expected v1.<device>.<expiry>.<mac>, each part exactly as `stratus token issue` writes it)' };
  }
}
