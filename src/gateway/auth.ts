/**
 * Device authentication on the gRPC port, when auth.tokenSecret is set.
 *
 * One server interceptor sees every call before its handler: it checks `authorization: Bearer
 * <token>` (src/auth/token.ts) and ends the call with UNAUTHENTICATED when the token is missing,
 * malformed, forged or expired. Health checks and reflection stay open, so probes and grpcurl's
 * `list` work without a token.
 *
 * A call that passes carries the token's device id to its handler in the metadata entry
 * AUTH_DEVICE_KEY. The interceptor removes any such entry the client sent before it sets its own,
 * so a handler can trust it: it is there only when this interceptor put it there.
 */
import { Metadata, ServerInterceptingCall, type ServerInterceptor } from '@grpc/grpc-js';
import { checkBearer } from '../auth/token.js';
import { ErrorCode } from '../errors.js';
import { grpcError } from './grpc-status.js';

export const AUTH_DEVICE_KEY = 'stratus-authenticated-device-bin';
const OPEN_PREFIXES = ['/grpc.health.v1.', '/grpc.reflection.'];

export function authInterceptor(secret: string): ServerInterceptor {
  return (method, call) => {
    const open = OPEN_PREFIXES.some((p) => method.path.startsWith(p));
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (md: Metadata, mdNext: (md: Metadata) => void) => {
            md.remove(AUTH_DEVICE_KEY);
            if (open) return mdNext(md);
            const header = md.get('authorization');
            const check = checkBearer(secret, header.length === 1 && typeof header[0] === 'string' ? header[0] : header.length === 0 ? null : 'invalid');
            if (!check.ok) {
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
 * The device the call's token names; null when auth is off. Only meaningful on a server built with
 * authInterceptor (Gateway does so exactly when auth.tokenSecret is set).
 */
export function authenticatedDevice(md: Metadata): string | null {
  const v = md.get(AUTH_DEVICE_KEY);
  return v.length === 0 ? null : Buffer.isBuffer(v[0]) ? v[0].toString('utf8') : String(v[0]);
}
