/**
 * Fail fast: when no device can reach the target, the run stops within seconds with one line that
 * names the address, what went wrong and what to do, instead of sending into nothing for the
 * whole duration. The rule (loadgen.ts applies it to the slices' FleetStatus):
 * - nothing reached (no headers, ack, result or reject; for nimbus, no connection READY), and
 * - every device's attempts failed so far (ECONNREFUSED fails them all within milliseconds), or
 *   --connect-timeout has passed with at least one failure (a ramp, a stalled handshake).
 */
import type { FleetStatus } from './fleet.js';

/** What to do about the most frequent failure kind. */
const HINTS: Record<string, string> = {
  REFUSED: 'is the engine running? start it with `npx stratus run`, or set --target',
  DNS: 'the host name does not resolve: check --target',
  TLS: 'the server and the load generator disagree on TLS: check --tls and --tls-ca (and the engine\'s TLS settings)',
  STALLED: 'something accepts connections there but does not answer gRPC within --connect-timeout: is it the engine\'s gRPC port? does it need --tls?',
  RESET: 'the connections were reset: is it the engine\'s gRPC port? does it need --tls?',
  UNAUTHENTICATED: 'the engine checks device tokens: give --token-secret (its auth.tokenSecret)',
  PERMISSION_DENIED: 'the engine refused the devices\' tokens: check --token-secret (its auth.tokenSecret)',
  UNIMPLEMENTED: 'the server does not serve this API: check --api',
};
const HINT_DEFAULT = 'is the engine running? start it with `npx stratus run`, or set --target';

/** Whether the run should stop now: nothing reached and every device failed, or the connect timeout passed with failures. */
export function shouldGiveUp(statuses: readonly FleetStatus[], elapsedMs: number, connectTimeoutMs: number): boolean {
  if (statuses.length === 0 || statuses.some((s) => s.reached)) return false;
  const failed = statuses.reduce((a, s) => a + s.failedDevices, 0);
  const devices = statuses.reduce((a, s) => a + s.devices, 0);
  return failed > 0 && (failed === devices || elapsedMs >= connectTimeoutMs);
}

/**
 * The words of a grpc-js error, shortened to what a person needs: "connect ECONNREFUSED
 * 127.0.0.1:1" out of "No connection established. Last error: Error: connect ECONNREFUSED
 * 127.0.0.1:1 (2026-12-05T02:31:00.000Z)".
 */
export function shortDetail(words: string): string {
  let w = words;
  const last = /Last error: (.*)$/.exec(w);
  if (last) w = last[1]!;
  w = w.replace(/^Error: /, '').replace(/\s*\(\d{4}-\d\d-\d\dT[^)]*\)/g, '').replace(/\. Resolution note:.*$/, '');
  return w.trim();
}

/** The one line (without the `stratus loadgen: ` prefix) saying why no device could connect and what to do. */
export function noConnectMessage(target: string, statuses: readonly FleetStatus[], connectTimeoutMs: number): string {
  const failures: Record<string, number> = {};
  const words: Record<string, string> = {};
  for (const s of statuses) {
    for (const [k, v] of Object.entries(s.failures)) failures[k] = (failures[k] ?? 0) + v;
    for (const [k, w] of Object.entries(s.failureWords)) words[k] ??= w;
  }
  const kinds = Object.entries(failures).sort((a, b) => b[1] - a[1]);
  const top = kinds[0]?.[0] ?? 'STALLED';
  const failed = statuses.reduce((a, s) => a + s.failedDevices, 0);
  const devices = statuses.reduce((a, s) => a + s.devices, 0);
  const why = shortDetail(words[top] ?? `no answer within --connect-timeout ${connectTimeoutMs} ms`);
  const tried = failed === devices ? `all ${devices} devices failed` : `${failed} of ${devices} devices failed, none answered within --connect-timeout ${connectTimeoutMs} ms`;
  return `no device could connect to ${target} (${top}: ${why}; ${tried}): ${HINTS[top] ?? HINT_DEFAULT}`;
}
