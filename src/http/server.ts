/**
 * The HTTP surface of one engine process (http.port): GET /metrics (Prometheus text), GET /livez
 * (the process answers), GET /readyz (every Kafka and Redis client of the process up, and not
 * draining: 200, else 503 with the reason), plus the routes the process's roles add (SSE,
 * /metrics/ingested). Anything else: 404. With tls.cert/tls.key it serves HTTPS only (and with
 * tls.ca, mutual TLS).
 *
 * The probes always get a connection, whatever SSE streams and idle or slowloris sockets hold:
 *   - SSE streams are bounded on their own (http.sseStreamsMax, below http.connectionsMax; sse.ts).
 *   - The surface tracks its connections itself. One arriving at http.connectionsMax makes room by
 *     closing the connection idle the longest, i.e. without a request in progress: a keep-alive
 *     connection between requests, or one whose request headers are not complete (a slowloris
 *     socket never completes them). Only when every open connection has a request in progress is
 *     the new one closed. So a probe's fresh connection gets in and is answered.
 *   - Headers must arrive within http.headersTimeoutMs (counted from the connection's start for a
 *     socket that sends nothing), the whole request within http.requestTimeoutMs; idle keep-alive
 *     connections close after http.keepAliveTimeoutMs.
 * Node's own server.maxConnections stays as a hard guard on file descriptors, a little above
 * http.connectionsMax.
 */
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Socket } from 'node:net';
import { tlsFiles } from '../auth/tls.js';
import type { Config } from '../config.js';
import { boundAddress, listenError } from '../net/port-owner.js';
import { healthDegraded, registerHealth } from './health.js';
import { metrics, registry } from './metrics.js';

/**
 * Connections Node itself accepts beyond http.connectionsMax before it drops new ones unseen: room
 * for connections accepted in one turn of the event loop before the tracking below closes one.
 */
const HARD_GUARD_RESERVE = 64;
/** A readiness probe that has not answered in this long is reported as not ready. */
const READINESS_TIMEOUT_MS = 1000;

/** The SSE streams one process holds: http.sseStreamsMax, capped below http.connectionsMax when left at its default. */
export function sseStreamsLimit(config: Config): number {
  return Math.max(0, Math.min(config.http.sseStreamsMax, config.http.connectionsMax - 1));
}

export interface ReadinessProbe {
  /** null when ready, else why not (one line). */
  check(): Promise<string | null>;
}

/** A route a role adds: `path` exactly, or every path under `prefix`; and each of `aliases` exactly. */
export interface HttpRoute {
  readonly path?: string;
  readonly prefix?: string;
  /** With prefix: the path must also end with this (two routes under one prefix: SSE's /events, the archive's /history). */
  readonly suffix?: string;
  /** Other exact paths the same handler serves (SSE: `/sse`, the old Spring demo's path). */
  readonly aliases?: readonly string[];
  /** One line for the 404 text, e.g. `GET /v1/devices/{id}/events`. */
  readonly describe: string;
  handle(req: IncomingMessage, res: ServerResponse, url: URL): void;
}

export interface HttpSurfaceOptions {
  port?: number;
  /** Read on every request, so routes pushed after start are served. */
  routes?: readonly HttpRoute[];
  /** Prometheus text for /metrics; default: this process's registry (a cluster primary aggregates its workers'). */
  metricsText?: () => Promise<string>;
}

/**
 * The open connections of a surface, oldest idle first, and the headers timeout of fresh ones.
 *
 *   open:  every accepted TCP connection -> its requests in progress (headers complete, response
 *          not yet closed)
 *   idle:  the open connections with none in progress, in the order they became idle: the first
 *          is the one to close to make room
 *   fresh: the idle ones that have not completed a request's headers yet, in the order they were
 *          accepted, each with its deadline (accepted + http.headersTimeoutMs)
 * Invariant: socket in idle iff open.get(socket) === 0; fresh is a subset of idle.
 *
 * Fresh connections past their deadline are closed by a sweep every SWEEP_MS, at most
 * SWEEP_CLOSES_MAX per sweep, oldest first. Node's own headers timeout would close every expired
 * one in one turn of the event loop: 5,000 idle sockets opened in a burst then cost ~250 ms of
 * event loop at once, and every device stream waits behind it. Node's check stays as a backstop,
 * later than this one.
 */
class ConnectionTable {
  private readonly open = new Map<Socket, number>();
  private readonly idle = new Set<Socket>();
  private readonly fresh = new Map<Socket, number>();
  private sweeper: NodeJS.Timeout | null = null;

  constructor(
    private readonly max: number,
    private readonly headersTimeoutMs: number,
    private readonly plaintext: boolean,
  ) {}

  get size(): number {
    return this.open.size;
  }

  /** A new connection: makes room if the table is full. false: nothing could be closed, the caller refuses it. */
  admit(socket: Socket): boolean {
    if (this.open.size >= this.max) {
      const victim = this.idle.values().next();
      if (victim.done === true) return false;
      this.forget(victim.value);
      victim.value.destroy();
      metrics.httpConnectionsShed.inc({ reason: 'evicted' });
    }
    this.open.set(socket, 0);
    this.idle.add(socket);
    this.fresh.set(socket, Date.now() + this.headersTimeoutMs);
    socket.once('close', () => this.forget(socket));
    this.sweeper ??= setInterval(() => this.sweep(), SWEEP_MS).unref();
    return true;
  }

  /** A request's headers are complete; the returned function marks its response closed. */
  begin(socket: Socket): () => void {
    const active = this.open.get(socket);
    if (active === undefined) return () => {};
    this.open.set(socket, active + 1);
    this.idle.delete(socket);
    this.fresh.delete(socket);
    let done = false;
    return () => {
      const now = this.open.get(socket);
      if (done || now === undefined) return;
      done = true;
      this.open.set(socket, now - 1);
      // At the back: the connection that was just used is the last to be closed for room.
      if (now === 1) this.idle.add(socket);
    };
  }

  close(): void {
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
  }

  private sweep(): void {
    const now = Date.now();
    let closed = 0;
    for (const [socket, deadline] of this.fresh) {
      if (deadline > now || closed >= SWEEP_CLOSES_MAX) break;
      this.forget(socket);
      // What Node itself answers (plaintext only: a TLS connection may not have finished its
      // handshake, and the raw socket is under TLS anyway), then closed once it is written.
      if (this.plaintext) socket.write(REQUEST_TIMEOUT_RESPONSE, () => socket.destroy());
      else socket.destroy();
      metrics.httpConnectionsShed.inc({ reason: 'headers_timeout' });
      closed++;
    }
    if (this.open.size === 0 && this.sweeper !== null) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }

  private forget(socket: Socket): void {
    this.open.delete(socket);
    this.idle.delete(socket);
    this.fresh.delete(socket);
  }
}

const REQUEST_TIMEOUT_RESPONSE = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';
/** Pending connections the kernel may queue for accept (Node's default is 511). */
const LISTEN_BACKLOG = 4096;
/** How often fresh connections past http.headersTimeoutMs are looked for. */
const SWEEP_MS = 20;
/** Expired fresh connections closed per sweep: 250 per 20 ms is 12,500/s, a few ms of event loop per sweep. */
const SWEEP_CLOSES_MAX = 250;
/** Node's own headers check closes what this sweep has not, this much later. */
const NODE_HEADERS_BACKSTOP_MS = 5000;

export class HttpSurface {
  private drainingSince: (() => void) | null = null;

  /** true from a graceful stop on: /readyz answers 503 and stratus_ready reads 0. */
  get draining(): boolean {
    return this.drainingSince !== null;
  }

  set draining(on: boolean) {
    if (on === this.draining) return;
    if (on) this.drainingSince = registerHealth({ name: 'this process', problem: () => 'draining: the process is shutting down' });
    else {
      this.drainingSince!();
      this.drainingSince = null;
    }
  }

  private constructor(
    private readonly server: Server,
    private readonly connections: ConnectionTable,
  ) {}

  static async start(config: Config, readiness: ReadinessProbe, options: HttpSurfaceOptions = {}): Promise<HttpSurface> {
    let surface!: HttpSurface;
    const routes = options.routes ?? [];
    const metricsText = options.metricsText ?? (() => registry.metrics());
    // Read per request: a role may add its route after the surface is up.
    const known = () => ['GET /metrics', 'GET /livez', 'GET /readyz', ...routes.map((r) => r.describe)].join(', ');
    // Single flight: probes arriving while a check runs share its answer.
    let checking: Promise<string | null> | null = null;
    const check = (): Promise<string | null> => {
      if (surface.draining) return Promise.resolve('draining: the process is shutting down');
      checking ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        try {
          return await Promise.race([
            readiness.check().catch((e: unknown) => String(e)),
            new Promise<string>((resolve) => {
              timer = setTimeout(() => resolve(`the readiness check did not answer within ${READINESS_TIMEOUT_MS} ms`), READINESS_TIMEOUT_MS);
            }),
          ]);
        } finally {
          clearTimeout(timer);
          checking = null;
        }
      })();
      return checking;
    };
    const cors = config.http.corsOrigin;
    const handler: RequestListener = (req, res) => {
      let url: URL;
      try {
        url = new URL(req.url ?? '/', 'http://localhost');
      } catch {
        res.writeHead(400, { 'content-type': 'text/plain' }).end('bad request target\n');
        return;
      }
      const path = url.pathname;
      if (cors !== '') {
        res.setHeader('access-control-allow-origin', cors);
        if (cors !== '*') res.setHeader('vary', 'Origin');
        if (req.method === 'OPTIONS') {
          // A CORS preflight (fetch with Authorization, an EventSource polyfill sending the token).
          res.writeHead(204, { 'access-control-allow-methods': 'GET, HEAD', 'access-control-allow-headers': 'authorization, last-event-id, cache-control', 'access-control-max-age': '600' }).end();
          return;
        }
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      const route = routes.find((r) => (r.path !== undefined ? r.path === path : path.startsWith(r.prefix!) && (r.suffix === undefined || path.endsWith(r.suffix))) || r.aliases?.includes(path) === true);
      if (route !== undefined) {
        route.handle(req, res, url);
      } else if (path === '/livez') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (path === '/readyz') {
        void check().then((why) => {
          const degraded = why === null ? healthDegraded() : null;
          res.writeHead(why === null ? 200 : 503, { 'content-type': 'text/plain' }).end(why !== null ? `not ready: ${why}\n` : degraded !== null ? `ready (degraded: ${degraded})\n` : 'ready\n');
        });
      } else if (path === '/metrics') {
        void metricsText().then(
          (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
          (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${String(e)}\n`),
        );
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found; this process serves ${known()}\n`);
      }
    };
    const { headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs } = config.http;
    const timeouts = {
      // Node refuses headersTimeout > requestTimeout: the headers are part of the request.
      // A backstop only: the connection table closes fresh connections at headersTimeoutMs, paced.
      headersTimeout: Math.min(headersTimeoutMs + NODE_HEADERS_BACKSTOP_MS, requestTimeoutMs),
      // Bounds receiving the request only, so long-lived responses (SSE) are not cut by it.
      requestTimeout: requestTimeoutMs,
      keepAliveTimeout: keepAliveTimeoutMs,
      // Node checks both timeouts on this interval (default 30 s, which would let a slowloris
      // socket hold on for up to 35 s with the default 5 s headers timeout).
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(Math.min(headersTimeoutMs, requestTimeoutMs) / 5))),
    };
    // TLS (tls.cert/tls.key) like the gRPC port; with tls.ca, a client without a certificate that
    // CA signed fails the handshake (requestCert + rejectUnauthorized).
    const tls = tlsFiles(config);
    const server: Server =
      tls === null
        ? createServer(timeouts)
        : createTlsServer({
            ...timeouts,
            // A TLS handshake is bounded like the headers that follow it.
            handshakeTimeout: headersTimeoutMs,
            cert: tls.cert,
            key: tls.key,
            ...(tls.ca === null ? {} : { ca: tls.ca, requestCert: true, rejectUnauthorized: true }),
          });
    const connections = new ConnectionTable(config.http.connectionsMax, headersTimeoutMs, tls === null);
    // The TCP connection, for TLS too (net.Server's 'connection' comes before the handshake), so a
    // socket stalling its handshake is tracked and closed for room like one stalling its headers.
    server.on('connection', (socket: Socket) => {
      if (!connections.admit(socket)) {
        metrics.httpConnectionsShed.inc({ reason: 'refused' });
        socket.destroy();
      }
    });
    // Beyond the hard guard Node closes new connections before 'connection'.
    server.on('drop', () => metrics.httpConnectionsShed.inc({ reason: 'refused' }));
    server.maxConnections = config.http.connectionsMax + HARD_GUARD_RESERVE;
    // Before the handler: a request is in progress from its complete headers to its response's close.
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      // With TLS, req.socket is the TLSSocket over the TCP connection (its _parent) that was admitted.
      const socket = req.socket as Socket & { _parent?: Socket | null };
      const end = connections.begin(socket._parent ?? socket);
      res.once('close', end);
    });
    server.on('request', handler);
    surface = new HttpSurface(server, connections);
    const port = options.port ?? config.http.port;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // A deep accept queue: in a burst of attacker connections, a probe's SYN waits in it instead
      // of being dropped (and retried by the client's kernel only a second later). The kernel caps
      // it at net.core.somaxconn.
      server.listen({ port, host: config.grpc.host, backlog: LISTEN_BACKLOG }, () => resolve());
    }).catch((err: unknown) => {
      // One line naming the port, its holder and the flag (port-owner.ts), for every command.
      throw listenError({ what: 'HTTP', host: config.grpc.host, port, flag: '--http-port' }, err);
    });
    return surface;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  /** The address the socket is bound to, as it reports it: `0.0.0.0:8080`, `[::]:8080`. */
  get address(): string {
    return boundAddress(this.server.address());
  }

  /** Open TCP connections the surface tracks (at most http.connectionsMax). */
  get connectionsOpen(): number {
    return this.connections.size;
  }

  close(): Promise<void> {
    // Its draining check leaves the process's registry with it (tests run several surfaces in one process).
    this.draining = false;
    this.connections.close();
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
