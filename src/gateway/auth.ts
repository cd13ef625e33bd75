/**
 * Device authentication on the gRPC port, when auth.tokenSecret is set.
 *
 * One server interceptor sees every call before its handler: it checks `authorization: Bearer
 * <token>` (src/auth/token.ts) and ends the call with UNAUTHENTICATED when the token is missing,
 * malformed, forged or expired, or the call has more than one authorization header (seen only
 * with guardAuthorizationHeaders). Each failure is counted in stratus_auth_failures_total and
 * logged at most once per 10 s (src/auth/failure-log.ts). Health checks and reflection stay open,
 * so probes and grpcurl's `list` work without a token.
 *
 * A call that passes carries the token's device id to its handler in the metadata entry
 * AUTH_DEVICE_KEY. The interceptor removes any such entry the client sent before it sets its own,
 * so a handler can trust it: it is there only when this interceptor put it there.
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { Metadata, ServerInterceptingCall, type Server, type ServerInterceptor } from '@grpc/grpc-js';
import { AuthFailureLog } from '../auth/failure-log.js';
import { checkBearer, type BearerCheck } from '../auth/token.js';
import { ErrorCode } from '../errors.js';
import { metrics } from '../http/metrics.js';
import { grpcError } from './grpc-status.js';
import { grpcHttp2Servers } from './http2-servers.js';

export const AUTH_DEVICE_KEY = 'stratus-authenticated-device-bin';
const OPEN_PREFIXES = ['/grpc.health.v1.', '/grpc.reflection.'];
/** Failed authentications on the gRPC port, one log for every Gateway of the process. */
const failures = new AuthFailureLog('gateway');
/** What guardAuthorizationHeaders puts in place of a value grpc-js would drop: refused as malformed. */
const UNREADABLE = 'unreadable';
/** grpc-js's rule for a text metadata value (metadata.ts isLegalNonBinaryValue): printable ASCII. */
const PRINTABLE_ASCII = /^[ -~]*$/;
/** The http2 servers guardAuthorizationHeaders has hooked. */
const guarded = new WeakSet<object>();

/**
 * The check of a call's metadata. `authorization-bin` is refused rather than ignored: grpc-js
 * would base64-decode it into a second, binary credential that nothing here reads, and a client
 * sending it believes it authenticated.
 */
export function checkCallMetadata(secret: string, md: Metadata): BearerCheck {
  if (md.get('authorization-bin').length > 0) return { ok: false, reason: 'malformed', why: 'send the token as text in "authorization: Bearer <token>", not in authorization-bin' };
  return checkBearer(secret, md.get('authorization').map((v) => (typeof v === 'string' ? v : UNREADABLE)));
}

export function authInterceptor(secret: string): ServerInterceptor {
  return (method, call) => {
    const open = OPEN_PREFIXES.some((p) => method.path.startsWith(p));
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (md: Metadata, mdNext: (md: Metadata) => void) => {
            md.remove(AUTH_DEVICE_KEY);
            if (open) return mdNext(md);
            const check = checkCallMetadata(secret, md);
            if (!check.ok) {
              metrics.authFailures.inc({ surface: 'grpc', reason: check.reason });
              failures.record(check.reason, call.getPeer());
              // The handler never runs: nothing of the call is read or produced.
              call.sendStatus(grpcError(ErrorCode.UNAUTHENTICATED, check.why));
              return;
            }
            md.set(AUTH_DEVICE_KEY, Buffer.from(check.deviceId, 'utf8'));
            mdNext(md);
          },
        }),
    });
  };
}

/**
 * Lets the interceptor see every `authorization` header of a call, on each port `server` is bound
 * to (call it after bindAsync; calling it again does nothing).
 *
 * Node's http2 treats `authorization` as a single-value header: of two copies on one request it
 * keeps the first and drops the rest without a word (toHeaderObject), so grpc-js and the
 * interceptor see one header and a call carrying a valid token and a second one went through on
 * the first. And grpc-js drops a value that is not printable ASCII from the metadata, logging the
 * whole value, token included, once per call. Before grpc-js reads a stream's headers, this puts
 * every copy back (from the raw header list) as an array, which Metadata.fromHttp2Headers turns
 * into one metadata entry each, and replaces a value grpc-js would drop by a placeholder that
 * fails as malformed.
 */
export function guardAuthorizationHeaders(server: Server): void {
  for (const http2Server of grpcHttp2Servers(server, 'the authorization header guard')) {
    if (guarded.has(http2Server)) continue;
    guarded.add(http2Server);
    // Prepended: grpc-js's own 'stream' listener builds the call's metadata synchronously.
    http2Server.prependListener('stream', (_stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
      let values: string[] | null = null;
      for (let i = 0; i + 1 < rawHeaders.length; i += 2) if (rawHeaders[i] === 'authorization') (values ??= []).push(rawHeaders[i + 1]!);
      if (values === null) return;
      const readable = values.map((v) => (PRINTABLE_ASCII.test(v) ? v : UNREADABLE));
      (headers as Record<string, string | string[]>).authorization = readable.length === 1 ? readable[0]! : readable;
    });
  }
}

/**
 * The device the call's token names; null when auth is off. Only meaningful on a server built with
 * authInterceptor (Gateway does so exactly when auth.tokenSecret is set).
 */
export function authenticatedDevice(md: Metadata): string | null {
  const v = md.get(AUTH_DEVICE_KEY);
  return v.length === 0 ? null : Buffer.isBuffer(v[0]) ? v[0].toString('utf8') : String(v[0]);
}
