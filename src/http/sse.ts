/**
 * GET /v1/devices/{id}/events, and its alias GET /sse?clientId={id}: a device's results as
 * Server-Sent Events.
 *
 * Reads: the device's Redis buffer and live delivery frames, exactly like a gRPC Connect session
 * (the same DeviceSession: presence claim and renewal, takeover handoff, buffer drain, gap detection,
 * cursor). The hub is an
 * instance of its own in the presence registry (`<instance>-sse`) with its own Redis channel, so
 * it works in any process that serves HTTP, and a device reading over SSE takes over its gRPC
 * stream (and the other way round) like two gRPC streams would.
 * Writes: one message event per result (no `event:` line, so `EventSource.onmessage` gets it: what
 * most pages use, the old Spring demo's client page among them), `id:` = the event's seq. A client that reconnects
 * with `Last-Event-ID: <seq>` (EventSource does so by itself) gets every later result, none twice.
 * Results for a device with no stream wait in its buffer (redis.deviceBufferMax).
 *
 * `/sse?clientId=ID` is the old Spring demo's path: the same stream as `/v1/devices/ID/events`
 * (the client id is the device id; no percent-encoding of `/` needed in a query), the same auth,
 * limits and cursor.
 *
 * Auth on (auth.tokenSecret): exactly one `authorization: Bearer <token>` is required (401 without
 * a valid one, counted in stratus_auth_failures_total and logged at most once per 10 s), and the
 * token's device must be the one asked for, in the path or in clientId (403 otherwise).
 *
 * Bounded per connection: results wait for a client that does not read up to gateway.outboundMax,
 * and a buffer drain waits gateway.stallTimeoutMs for it; then the stream ends with an
 * `event: end` carrying RESOURCE_EXHAUSTED, and the results stay buffered for its next request.
 *
 *   retry: 1000                        (sent first: EventSource reconnects after 1 s)
 *   : heartbeat                        (every http.sseHeartbeatMs; a comment, no event)
 *   id: 42                             (a result: a default "message" event)
 *   data: {"seq":42,"type":"sq","value":49,"payload":"","sentAtUs":...,"processedAtUs":...}
 *   event: end                         (only when this side ends the stream; a named event)
 *   data: {"code":"ABORTED","details":"..."}
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AuthFailureLog, peerOf } from '../auth/failure-log.js';
import { checkBearer } from '../auth/token.js';
import type { Config } from '../config.js';
import { ErrorCode } from '../errors.js';
import { DeliveryLink } from '../gateway/delivery.js';
import { refuseEvictingPolicy } from '../redis/eviction-policy.js';
import { FlushScheduler } from '../gateway/flush-scheduler.js';
import { grpcError, statusName } from '../gateway/grpc-status.js';
import type { Downlink } from '../gateway/protocol.js';
import { DeviceSession, type SessionHost } from '../gateway/session.js';
import type { FrameEntry } from '../wire/delivery-frame.js';
import { drainTally, errorText, RateLimitedLog, roleLog } from '../log.js';
import { metrics } from './metrics.js';
import { sseStreamsLimit, type HttpRoute } from './server.js';

const PREFIX = '/v1/devices/';
const SUFFIX = '/events';
/** The old Spring demo's path: GET /sse?clientId=<device id>. */
const ALIAS = '/sse';
const DEVICE_ID_BYTES_MAX = 256;
/** Failed authentications on SSE, one log for every hub of the process. */
const failures = new AuthFailureLog('sse');
const log = roleLog('sse');
/** Lines a client can cause (its stream closing while Redis is away), at a bounded rate. */
const clientLog = new RateLimitedLog(log);

export class SseHub implements SessionHost {
  readonly sessions = new Map<string, DeviceSession>();
  private readonly flushes = new FlushScheduler();
  private readonly responses = new Map<DeviceSession, ServerResponse>();
  private readonly heartbeat: NodeJS.Timeout;

  private constructor(
    readonly config: Config,
    readonly link: DeliveryLink,
  ) {
    this.heartbeat = setInterval(() => this.beat(), config.http.sseHeartbeatMs);
    this.heartbeat.unref();
  }

  static async start(config: Config, instanceId: string): Promise<SseHub> {
    let hub: SseHub | null = null;
    const link = await DeliveryLink.connect(config, `${instanceId}-sse`, {
      onEntries: (entries: FrameEntry[]) => {
        for (const e of entries) hub!.sessions.get(e.deviceId)?.onLive(e.n, e.result);
      },
      onTakeover: (deviceId) => hub!.sessions.get(deviceId)?.end(grpcError(ErrorCode.STREAM_SUPERSEDED, `device ${deviceId} connected elsewhere; this stream is superseded`)),
    });
    const warning = await refuseEvictingPolicy(link.commands, config);
    if (warning !== null) log.warn({ instance: `${instanceId}-sse` }, warning);
    hub = new SseHub(config, link);
    // Presence is held and renewed like a gRPC session's, so the forwarder keeps routing here.
    link.startRenewing(() => hub!.sessions.values());
    return hub;
  }

  /** The route for HttpSurface. */
  route(): HttpRoute {
    return { prefix: PREFIX, aliases: [ALIAS], describe: `GET ${PREFIX}{id}${SUFFIX} or ${ALIAS}?clientId={id} (SSE)`, handle: (req, res, url) => this.handle(req, res, url) };
  }

  // --- SessionHost ---------------------------------------------------------------------------

  markDirty(session: DeviceSession): void {
    this.flushes.mark(session);
  }

  closed(session: DeviceSession): void {
    this.flushes.forget(session);
    this.responses.delete(session);
    const current = this.sessions.get(session.deviceId) === session;
    if (current) {
      this.sessions.delete(session.deviceId);
      metrics.sseStreams.set(this.sessions.size);
    }
    // Recorded whether or not a newer session took over, before that one reads it.
    // Presence and cursor are leased: a release Redis did not answer expires with its lease, so
    // nothing is lost.
    void this.link.release(session.deviceId, session.sentSeq, current).catch((err: unknown) => clientLog.warn('release', { err: errorText(err) }, 'releasing a closed stream in Redis failed (its lease expires instead)'));
  }

  // --- HTTP ----------------------------------------------------------------------------------

  private handle(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const deviceId = url.pathname === ALIAS ? deviceFromQuery(res, url) : deviceFromPath(res, url.pathname);
    if (deviceId === null) return;
    if (deviceId === '' || Buffer.byteLength(deviceId) > DEVICE_ID_BYTES_MAX) {
      badRequest(res, 400, `device id must be 1..${DEVICE_ID_BYTES_MAX} bytes`);
      return;
    }
    const secret = this.config.auth.tokenSecret;
    if (secret !== '') {
      // Auth on: the token's device must be the one asked for (path or clientId); a device reads only its own results.
      // headersDistinct: req.headers keeps only the first of several authorization headers.
      const check = checkBearer(secret, req.headersDistinct.authorization);
      if (!check.ok) {
        metrics.authFailures.inc({ surface: 'sse', reason: check.reason });
        failures.record(check.reason, peerOf(req.socket.remoteAddress, req.socket.remotePort));
        res.writeHead(401, { 'content-type': 'text/plain; charset=utf-8', 'www-authenticate': 'Bearer realm="stratus", error="invalid_token"' }).end(`${check.why}\n`);
        return;
      }
      if (check.deviceId !== deviceId) {
        badRequest(res, 403, 'the token is for another device; a device can read only its own results');
        return;
      }
    }
    const header = req.headers['last-event-id'];
    const cursorText = typeof header === 'string' ? header : url.searchParams.get('lastEventId');
    let cursor: number | null = null;
    if (cursorText !== null) {
      cursor = /^\d{1,16}$/.test(cursorText.trim()) ? Number(cursorText.trim()) : NaN;
      if (!Number.isSafeInteger(cursor)) {
        badRequest(res, 400, `Last-Event-ID must be a whole number from 0 to 2^53-1, the seq of the last result received (got ${JSON.stringify(cursorText.slice(0, 32))})`);
        return;
      }
    }
    if (req.method === 'HEAD') {
      res.writeHead(200, SSE_HEADERS).end();
      return;
    }
    const previous = this.sessions.get(deviceId);
    // Streams hold their connection for good: bounded below http.connectionsMax, so /livez, /readyz
    // and /metrics always find a connection (server.ts). A takeover replaces a stream, so it passes.
    const streamsMax = sseStreamsLimit(this.config);
    if (previous === undefined && this.responses.size >= streamsMax) {
      metrics.httpConnectionsShed.inc({ reason: 'sse_full' });
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '5' }).end(`this process holds ${streamsMax} SSE streams (http.sseStreamsMax); retry later, or on another instance\n`);
      return;
    }
    if (previous === undefined && this.sessions.size >= this.config.gateway.devicesMax) {
      badRequest(res, 503, `this process holds ${this.config.gateway.devicesMax} device streams (gateway.devicesMax); try later`);
      return;
    }
    res.writeHead(200, SSE_HEADERS);
    res.write('retry: 1000\n\n');
    const session = new DeviceSession(this, deviceId, {
      write: (msg) => res.write(sseText(msg)),
      end: (st) => {
        if (st !== null) res.write(`event: end\ndata: ${JSON.stringify({ code: statusName(st.code), details: st.details })}\n\n`);
        res.end();
      },
    });
    res.on('drain', () => session.onDrain());
    res.on('close', () => session.peerGone());
    this.sessions.set(deviceId, session);
    this.responses.set(session, res);
    metrics.sseStreams.set(this.sessions.size);
    previous?.end(grpcError(ErrorCode.STREAM_SUPERSEDED, `a newer stream for device ${deviceId} took over this one`));
    session.start(cursor).catch(() => session.end(grpcError(ErrorCode.REDIS_UNAVAILABLE, 'Redis did not answer while this stream was starting; reconnect')));
  }

  /** A comment line on every stream: keeps proxies from timing it out and shows the client it is alive. */
  private beat(): void {
    for (const res of this.responses.values()) {
      if (!res.writableNeedDrain) res.write(': heartbeat\n\n');
    }
  }

  /** Ends every stream (the client reconnects elsewhere with its Last-Event-ID) and lets go of Redis. */
  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    const streams = this.sessions.size;
    for (const s of [...this.sessions.values()]) s.end(grpcError(ErrorCode.SHUTTING_DOWN, 'server shutting down; reconnect'));
    drainTally.streamsEnded += streams;
    await this.link.close();
    log.info({ streams }, 'SSE streams ended');
  }
}

const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  // nginx and similar proxies buffer responses unless told not to.
  'x-accel-buffering': 'no',
};

/** `/v1/devices/{id}/events` -> the id, or null after answering 404/400. */
function deviceFromPath(res: ServerResponse, path: string): string | null {
  if (!path.endsWith(SUFFIX) || path.length <= PREFIX.length + SUFFIX.length) {
    badRequest(res, 404, `not found: GET ${PREFIX}{id}${SUFFIX}`);
    return null;
  }
  const raw = path.slice(PREFIX.length, -SUFFIX.length);
  if (raw.includes('/')) {
    badRequest(res, 404, `not found: GET ${PREFIX}{id}${SUFFIX} (percent-encode a "/" in the id as %2F)`);
    return null;
  }
  try {
    return decodeURIComponent(raw);
  } catch {
    // The client's mistake, answered with a 400 that says so: nothing of the engine's is lost.
    badRequest(res, 400, 'device id: not valid percent-encoding');
    return null;
  }
}

/** `/sse?clientId={id}` -> the id (URLSearchParams has decoded it), or null after answering 400. */
function deviceFromQuery(res: ServerResponse, url: URL): string | null {
  const ids = url.searchParams.getAll('clientId');
  if (ids.length !== 1) {
    badRequest(res, 400, `GET ${ALIAS} needs exactly one clientId query parameter, the device id (got ${ids.length}): ${ALIAS}?clientId=dev-1`);
    return null;
  }
  return ids[0]!;
}

function badRequest(res: ServerResponse, code: number, message: string): void {
  res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8' }).end(`${message}\n`);
}

/**
 * One write per Downlink: every result as a default ("message") event, so EventSource.onmessage
 * gets it. (SSE sessions never carry acks or rejects.)
 */
function sseText(msg: Downlink): string {
  let out = '';
  for (const r of msg.results ?? []) {
    // JSON has no Infinity or NaN (JSON.stringify writes null): those values go as the strings
    // "Infinity", "-Infinity", "NaN", which Number() reads back. (sq of 1e200 is Infinity.)
    const value = Number.isFinite(r.value) ? r.value : String(r.value);
    const data = JSON.stringify({ seq: r.seq, type: r.type, value, payload: Buffer.from(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength).toString('base64'), sentAtUs: r.sentAtUs, processedAtUs: r.processedAtUs });
    out += `id: ${r.seq}\ndata: ${data}\n\n`;
  }
  return out;
}
