/**
 * GET /v1/devices/{id}/history[?since=T&limit=N]: the device's archived events with their results
 * (archive/history.ts has the rules and the JSON), served wherever `run` has an archive store.
 *
 * Auth as for SSE (sse.ts): with auth.tokenSecret set, exactly one `authorization: Bearer <token>`
 * (401 otherwise, counted in stratus_auth_failures_total{surface="sse"}), and the token's device
 * must be the one asked for (403). A device reads only its own history.
 *
 * 400 for a bad since/limit/id, 503 (retry-after) while the store does not answer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AuthFailureLog, peerOf } from '../auth/failure-log.js';
import { checkBearer } from '../auth/token.js';
import type { Config } from '../config.js';
import { ErrorCode, isStratusError } from '../errors.js';
import { historyJson, parseLimit, parseSince } from '../archive/history.js';
import type { ArchiveStore } from '../archive/store.js';
import { errorText, RateLimitedLog, roleLog } from '../log.js';
import { metrics } from './metrics.js';
import type { HttpRoute } from './server.js';

const PREFIX = '/v1/devices/';
const SUFFIX = '/history';
const DEVICE_ID_BYTES_MAX = 256;
const failures = new AuthFailureLog('sse');
const log = new RateLimitedLog(roleLog('archive'));

export function historyRoute(config: Config, store: ArchiveStore): HttpRoute {
  return {
    prefix: PREFIX,
    suffix: SUFFIX,
    describe: `GET ${PREFIX}{id}${SUFFIX}?since=T&limit=N (archive)`,
    handle: (req, res, url) => void handle(config, store, req, res, url),
  };
}

/**
 * The same path where archive.store is off: 404 saying why, rather than SSE's "not found" for a
 * path under its prefix.
 */
export function historyOffRoute(): HttpRoute {
  return {
    prefix: PREFIX,
    suffix: SUFFIX,
    describe: `GET ${PREFIX}{id}${SUFFIX} (archive: off)`,
    handle: (_req, res) => answer(res, 404, 'no archive here: archive.store is off; set it to sqlite or postgres (--archive-store, STRATUS_ARCHIVE_STORE) to keep and serve device history'),
  };
}

function answer(res: ServerResponse, code: number, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', ...headers }).end(`${message}\n`);
}

async function handle(config: Config, store: ArchiveStore, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    answer(res, 405, `${req.method} not allowed: GET ${PREFIX}{id}${SUFFIX}`, { allow: 'GET, HEAD' });
    return;
  }
  const raw = url.pathname.slice(PREFIX.length, -SUFFIX.length);
  if (raw === '' || raw.includes('/')) {
    answer(res, 404, `not found: GET ${PREFIX}{id}${SUFFIX} (percent-encode a "/" in the id as %2F)`);
    return;
  }
  let deviceId: string;
  try {
    deviceId = decodeURIComponent(raw);
  } catch {
    // The client's mistake, answered with a 400 that says so: nothing of the engine's is lost.
    answer(res, 400, 'device id: not valid percent-encoding');
    return;
  }
  if (Buffer.byteLength(deviceId) > DEVICE_ID_BYTES_MAX) {
    answer(res, 400, `device id must be 1..${DEVICE_ID_BYTES_MAX} bytes`);
    return;
  }
  const secret = config.auth.tokenSecret;
  if (secret !== '') {
    const check = checkBearer(secret, req.headersDistinct.authorization);
    if (!check.ok) {
      metrics.authFailures.inc({ surface: 'sse', reason: check.reason });
      failures.record(check.reason, peerOf(req.socket.remoteAddress, req.socket.remotePort));
      answer(res, 401, check.why, { 'www-authenticate': 'Bearer realm="stratus", error="invalid_token"' });
      return;
    }
    if (check.deviceId !== deviceId) {
      answer(res, 403, 'the token is for another device; a device can read only its own history');
      return;
    }
  }
  let sinceUs: number | undefined;
  let limit: number;
  try {
    const since = url.searchParams.get('since');
    sinceUs = since === null ? undefined : parseSince(since);
    limit = parseLimit(url.searchParams.get('limit') ?? undefined, config.archive.historyLimitMax);
  } catch (err) {
    answer(res, 400, isStratusError(err) ? err.message : String(err));
    return;
  }
  try {
    const entries = await store.history({ deviceId, limit, ...(sinceUs === undefined ? {} : { sinceUs }) });
    const body = JSON.stringify(historyJson(deviceId, store.kind, entries, limit));
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  } catch (err) {
    if (isStratusError(err) && err.code === ErrorCode.ARCHIVE_UNAVAILABLE) {
      answer(res, 503, `the archive store does not answer: ${err.message}`, { 'retry-after': '5' });
      return;
    }
    log.error('history', { err: errorText(err) }, 'a history read failed');
    answer(res, 500, 'internal error reading the archive');
  }
}
