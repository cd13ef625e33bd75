/**
 * The HTTP surface of one engine process (http.port): GET /metrics (Prometheus text), GET /livez
 * (the process answers), GET /readyz (Kafka and Redis reachable and not draining: 200, else 503
 * with the reason), plus the routes the process's roles add (SSE, /metrics/ingested). Anything
 * else: 404. With tls.cert/tls.key it serves HTTPS only (and with tls.ca, mutual TLS).
 */
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { tlsFiles } from '../auth/tls.js';
import type { Config } from '../config.js';
import { registry } from './metrics.js';

export interface ReadinessProbe {
  /** null when ready, else why not (one line). */
  check(): Promise<string | null>;
}

/** A route a role adds: `path` exactly, or every path under `prefix`. */
export interface HttpRoute {
  readonly path?: string;
  readonly prefix?: string;
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

export class HttpSurface {
  draining = false;
  private constructor(private readonly server: Server) {}

  static async start(config: Config, readiness: ReadinessProbe, options: HttpSurfaceOptions = {}): Promise<HttpSurface> {
    let surface!: HttpSurface;
    const routes = options.routes ?? [];
    const metricsText = options.metricsText ?? (() => registry.metrics());
    // Read per request: a role may add its route after the surface is up.
    const known = () => ['GET /metrics', 'GET /livez', 'GET /readyz', ...routes.map((r) => r.describe)].join(', ');
    const handler: RequestListener = (req, res) => {
      let url: URL;
      try {
        url = new URL(req.url ?? '/', 'http://localhost');
      } catch {
        res.writeHead(400, { 'content-type': 'text/plain' }).end('bad request target\n');
        return;
      }
      const path = url.pathname;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      const route = routes.find((r) => (r.path !== undefined ? r.path === path : path.startsWith(r.prefix!)));
      if (route !== undefined) {
        route.handle(req, res, url);
      } else if (path === '/livez') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (path === '/readyz') {
        void (async () => {
          const why = surface.draining ? 'draining: the process is shutting down' : await readiness.check().catch((e: unknown) => String(e));
          res.writeHead(why === null ? 200 : 503, { 'content-type': 'text/plain' }).end(why === null ? 'ready\n' : `not ready: ${why}\n`);
        })();
      } else if (path === '/metrics') {
        void metricsText().then(
          (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
          (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${String(e)}\n`),
        );
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found; this process serves ${known()}\n`);
      }
    };
    // TLS (tls.cert/tls.key) like the gRPC port; with tls.ca, a client without a certificate that
    // CA signed fails the handshake (requestCert + rejectUnauthorized).
    const tls = tlsFiles(config);
    const server: Server =
      tls === null
        ? createServer(handler)
        : createTlsServer({ cert: tls.cert, key: tls.key, ...(tls.ca === null ? {} : { ca: tls.ca, requestCert: true, rejectUnauthorized: true }) }, handler);
    // Bounded: a slow or idle client can't hold a socket forever. requestTimeout bounds receiving
    // the request only, so long-lived responses (SSE) are not cut by it.
    server.requestTimeout = 10_000;
    server.headersTimeout = 5_000;
    server.keepAliveTimeout = 5_000;
    server.maxConnections = config.http.connectionsMax;
    surface = new HttpSurface(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? config.http.port, config.grpc.host, () => resolve());
    });
    return surface;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
