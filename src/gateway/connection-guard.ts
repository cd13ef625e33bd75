/**
 * Per-connection limits on the gRPC port that grpc-js does not offer:
 *
 * - grpc.connectionsMax: open HTTP/2 connections. Beyond it a new TCP connection is closed as it
 *   is accepted (net.Server maxConnections: before any TLS or HTTP/2 work), so a flood of idle
 *   connections reaches this cap, not the process's open-file limit.
 * - grpc.controlFramesPerSecondMax: per connection and per kind, the PING frames, SETTINGS frames
 *   and client-cancelled streams (RST_STREAM before the call ended: "rapid reset",
 *   CVE-2023-44487) in any one-second window. Past it the connection gets GOAWAY
 *   ENHANCE_YOUR_CALM and is closed; its calls end, the client may reconnect. A normal client
 *   sends a few keepalive PINGs a minute and one SETTINGS per connection; nghttp2's own reset
 *   limit (1,000 at once, then 33/s) lets a rapid reset run 1,000 stream starts per connection,
 *   each a call the handlers begin.
 *
 * grpc-js creates its http2 servers itself and does not pass Node's per-session options through,
 * so this reaches them through grpc-js's `http2Servers` map (read-only: the listening servers). An
 * assert fails at start if a grpc-js upgrade renames it, and the abuse suite fails if the guard
 * stops working.
 */
import assert from 'node:assert/strict';
import { constants, type Http2Server, type Http2Session, type ServerHttp2Stream } from 'node:http2';
import type { Server } from '@grpc/grpc-js';
import { metrics } from '../http/metrics.js';

type Kind = 'resets' | 'pings' | 'settings';

export interface ConnectionLimits {
  connectionsMax: number;
  controlFramesPerSecondMax: number;
}

export class ConnectionGuard {
  private open = 0;
  /** Abuse closes since the last log line, by kind; logged at most once per LOG_INTERVAL_MS. */
  private unlogged = new Map<string, number>();
  private logTimer: NodeJS.Timeout | null = null;

  constructor(private readonly limits: ConnectionLimits) {
    for (const reason of ['resets', 'pings', 'settings', 'connections_max']) metrics.grpcConnectionsClosed.inc({ reason }, 0);
    metrics.grpcConnections.set(0);
  }

  /** Call once after bindAsync resolved. */
  attach(server: Server): void {
    const servers = (server as unknown as { http2Servers?: Map<Http2Server, unknown> }).http2Servers;
    assert.ok(servers instanceof Map && servers.size > 0, 'grpc-js Server.http2Servers not found: connection limits cannot be applied (grpc-js changed?)');
    for (const h2 of servers.keys()) {
      h2.maxConnections = this.limits.connectionsMax;
      h2.on('drop', () => this.closed('connections_max'));
      h2.on('session', (session: Http2Session) => this.watch(session));
    }
  }

  get connections(): number {
    return this.open;
  }

  stop(): void {
    if (this.logTimer !== null) clearTimeout(this.logTimer);
    this.logTimer = null;
    this.flushLog();
  }

  private watch(session: Http2Session): void {
    metrics.grpcConnections.set(++this.open);
    const max = this.limits.controlFramesPerSecondMax;
    let windowStart = Date.now();
    const counts = { resets: 0, pings: 0, settings: 0 };
    let cut = false;
    const count = (kind: Kind) => {
      if (cut) return;
      const now = Date.now();
      if (now - windowStart >= 1000) {
        windowStart = now;
        counts.resets = counts.pings = counts.settings = 0;
      }
      if (++counts[kind] <= max) return;
      cut = true;
      this.closed(kind);
      // GOAWAY tells a well-behaved client why; destroy frees everything now, whatever it does.
      try {
        session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
      } catch {
        // Already closing: destroy below does the rest; nothing is lost (the count is taken).
      }
      setImmediate(() => session.destroy());
    };
    session.on('ping', () => count('pings'));
    // The first SETTINGS of a connection is the client's preface: count it like the others.
    session.on('remoteSettings', () => count('settings'));
    session.on('stream', (stream: ServerHttp2Stream) => {
      // A stream closed by RST_STREAM with an error code: grpc-js never resets a server stream
      // itself (it ends calls with trailers), so the client did: a cancelled call. Node's
      // 'aborted' event is not enough: it is skipped once the server has ended its side.
      stream.once('close', () => {
        if (stream.rstCode !== constants.NGHTTP2_NO_ERROR) count('resets');
      });
    });
    session.once('close', () => metrics.grpcConnections.set(--this.open));
  }

  private closed(reason: string): void {
    metrics.grpcConnectionsClosed.inc({ reason });
    this.unlogged.set(reason, (this.unlogged.get(reason) ?? 0) + 1);
    if (this.logTimer === null) {
      this.flushLog();
      this.logTimer = setTimeout(() => {
        this.logTimer = null;
        this.flushLog();
      }, LOG_INTERVAL_MS);
      this.logTimer.unref();
    }
  }

  private flushLog(): void {
    if (this.unlogged.size === 0) return;
    const parts = [...this.unlogged].map(([k, n]) => `${n} ${k === 'connections_max' ? 'refused at grpc.connectionsMax' : `for ${k} beyond grpc.controlFramesPerSecondMax`}`);
    this.unlogged = new Map();
    process.stderr.write(`gateway: connections closed: ${parts.join(', ')}\n`);
  }
}

const LOG_INTERVAL_MS = 10_000;
