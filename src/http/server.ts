/**
 * The HTTP surface of one engine process (http.port): GET /metrics (Prometheus text), GET /livez
 * (the process answers), GET /readyz (Kafka and Redis reachable and not draining: 200, else 503
 * with the reason). Anything else: 404.
 */
import { createServer, type Server } from 'node:http';
import type { Config } from '../config.js';
import { registry } from './metrics.js';

export interface ReadinessProbe {
  /** null when ready, else why not (one line). */
  check(): Promise<string | null>;
}

export class HttpSurface {
  draining = false;
  private constructor(private readonly server: Server) {}

  static async start(config: Config, readiness: ReadinessProbe, port = config.http.port): Promise<HttpSurface> {
    let surface!: HttpSurface;
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (path === '/livez') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (path === '/readyz') {
        void (async () => {
          const why = surface.draining ? 'draining: the process is shutting down' : await readiness.check().catch((e: unknown) => String(e));
          res.writeHead(why === null ? 200 : 503, { 'content-type': 'text/plain' }).end(why === null ? 'ready\n' : `not ready: ${why}\n`);
        })();
      } else if (path === '/metrics') {
        void registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
          (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${String(e)}\n`),
        );
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics, /livez or /readyz\n');
      }
    });
    // Bounded: a slow or idle client can't hold a socket forever.
    server.requestTimeout = 10_000;
    server.headersTimeout = 5_000;
    server.keepAliveTimeout = 5_000;
    server.maxConnections = 1000;
    surface = new HttpSurface(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, config.grpc.host, () => resolve());
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
