/**
 * Per-connection limits on the gRPC port that grpc-js does not offer:
 *
 * - grpc.connectionsMax: open HTTP/2 connections. Beyond it a new TCP connection is closed as it
 *   is accepted (net.Server maxConnections: before any TLS or HTTP/2 work), so a flood of idle
 *   connections reaches this cap, not the process's open-file limit.
 * - grpc.controlFramesPerSecondMax: per connection, PING frames and SETTINGS frames in any one
 *   second, each counted apart. A normal client sends a few keepalive PINGs a minute and one
 *   SETTINGS per connection.
 * - grpc.resetStreamsMax: per connection, calls the client cancelled (RST_STREAM) before the server
 *   answered anything and within a second of their start: past this many while they are more than half of its calls, the connection is
 *   an HTTP/2 "rapid reset" (CVE-2023-44487): each stream costs the server its call set-up (~0.1 ms of CPU
 *   here) and nghttp2's own limit (1,000 at once, then 33/s) lets 1,000 through per connection. A
 *   client that cancels a few calls among many (ghz ending a timed run) is never cut.
 * - grpc.abusePenaltyMs: a connection cut for one of the two above puts its address in a penalty
 *   box: new connections from it are closed as they are accepted, before any HTTP/2 work, for
 *   that long. Without it a rapid reset reconnects at once and costs the same again. The box holds
 *   at most PENALTY_ADDRESSES_MAX addresses (the oldest leave first). Open connections of the same
 *   address, a normal device behind the same NAT say, are not touched.
 *
 * A cut connection gets GOAWAY ENHANCE_YOUR_CALM, then is destroyed; its calls end.
 *
 * grpc-js creates its http2 servers itself and does not pass Node's per-session options through,
 * so this reaches them through grpc-js's `http2Servers` map (http2-servers.ts),
 * and gates their 'connection' listeners for the penalty box. An assert fails at start if a
 * grpc-js upgrade renames the map, and the abuse suite fails if the guard stops working.
 */
import { constants, type Http2Session, type ServerHttp2Stream } from 'node:http2';
import type { Server as NetServer, Socket } from 'node:net';
import type { Server } from '@grpc/grpc-js';
import { grpcHttp2Servers } from './http2-servers.js';
import { metrics } from '../http/metrics.js';
import { roleLog } from '../log.js';

type Kind = 'resets' | 'pings' | 'settings';

export interface ConnectionLimits {
  connectionsMax: number;
  controlFramesPerSecondMax: number;
  resetStreamsMax: number;
  abusePenaltyMs: number;
}

/** Addresses the penalty box holds at most (a Map entry each). */
const PENALTY_ADDRESSES_MAX = 10_000;
const NOTHING = (): void => {};
const ignoreStreamError = (): void => {};
/** A client reset of an unanswered stream younger than this is premature (a rapid reset's kind); others are calls ended. */
const PREMATURE_RESET_MS = 1000;
/** New streams handed to grpc-js per turn of the event loop (~0.1 ms of call set-up each). */
const DISPATCH_PER_TURN = 64;
const LOG_INTERVAL_MS = 10_000;

/** What the stream dispatch needs to know of a connection. */
interface SessionState {
  /** The connection was cut: its streams are refused, not dispatched. */
  cut: boolean;
  /** One more call the client cancelled (cuts the connection past grpc.resetStreamsMax). */
  reset(): void;
}

export class ConnectionGuard {
  private open = 0;
  private readonly states = new WeakMap<Http2Session, SessionState>();
  /** Streams opened and not yet handed to grpc-js, oldest first (see attach). */
  private pending: (() => void)[] = [];
  /** Index of the next stream to dispatch in pending. */
  private head = 0;
  private draining = false;
  /** Address -> end of its penalty (ms since epoch), oldest first. */
  private readonly penalties = new Map<string, number>();
  /** Closes and refusals since the last log line, by reason; logged at most once per LOG_INTERVAL_MS. */
  private unlogged = new Map<string, number>();
  private logTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly limits: ConnectionLimits,
    private readonly now: () => number = Date.now,
  ) {
    for (const reason of ['resets', 'pings', 'settings', 'connections_max', 'penalized']) metrics.grpcConnectionsClosed.inc({ reason }, 0);
    metrics.grpcConnections.set(0);
  }

  /**
   * Call once after bindAsync resolved. `acceptors`: the listeners that accept the connections when
   * they are not grpc-js's own http2 servers (a reusePort listener feeding its connection injector,
   * src/gateway/threads/): grpc.connectionsMax is a net.Server maxConnections, so it applies where
   * sockets are accepted; an injected socket never passes the http2 server's accept.
   */
  attach(server: Server, acceptors?: readonly NetServer[]): void {
    const h2s = grpcHttp2Servers(server, 'connection limits');
    for (const acceptor of acceptors ?? h2s) {
      acceptor.maxConnections = this.limits.connectionsMax;
      acceptor.on('drop', () => this.closed('connections_max'));
    }
    for (const h2 of h2s) {
      // The penalty box decides before Node's own listener builds a TLS socket or an HTTP/2 session.
      const inner = h2.rawListeners('connection') as ((socket: Socket) => void)[];
      h2.removeAllListeners('connection');
      h2.on('connection', (socket: Socket) => {
        if (this.penalized(socket.remoteAddress)) {
          this.closed('penalized');
          socket.destroy();
          return;
        }
        for (const f of inner) f.call(h2, socket);
      });
      // A stream reaches grpc-js a turn after it opened, and at most DISPATCH_PER_TURN per turn:
      // - an HTTP/2 rapid reset sends HEADERS and RST_STREAM together, so by then its stream is
      //   closed and it costs no call set-up at all;
      // - a burst of new calls (2,000 clients starting at once, ~0.1 ms of grpc-js set-up each) is
      //   started in slices between which the event loop serves everything else (device acks),
      //   instead of in one 200 ms block. The queue holds only streams already open, so it is
      //   bounded by grpc.connectionsMax x grpc.streamsPerConnectionMax.
      const dispatch = h2.rawListeners('stream') as ((...args: unknown[]) => void)[];
      h2.removeAllListeners('stream');
      h2.on('stream', (stream: ServerHttp2Stream, ...rest: unknown[]) => {
        // grpc-js listens for a stream's errors once it is dispatched; until then (and for a stream
        // never dispatched) a reset with an error code, or the REFUSED_STREAM below, would be an
        // unhandled 'error' event and end the process. Nothing is lost: such a stream has no call.
        stream.on('error', ignoreStreamError);
        this.pending.push(() => {
          const state = this.states.get(stream.session as Http2Session);
          if (state?.cut === true) {
            if (!stream.destroyed) stream.close(constants.NGHTTP2_REFUSED_STREAM);
            return;
          }
          // Cancelled before it was dispatched: counted as a reset by its close.
          if (stream.closed || stream.destroyed) return;
          // A client that half-closed without sending a message (an Ingest of no events) had its
          // stream's 'end' emitted before grpc-js listened: hand it to grpc-js's own 'end'
          // listeners, and only to them (Node's listener already had it).
          const missedEnd = stream.readableEnded;
          const before = missedEnd ? new Set(stream.listeners('end')) : null;
          for (const f of dispatch) f.call(h2, stream, ...rest);
          if (before !== null) for (const f of stream.listeners('end')) if (!before.has(f)) (f as () => void).call(stream);
        });
        if (!this.draining) {
          this.draining = true;
          setImmediate(() => this.drain());
        }
      });
      h2.on('session', (session: Http2Session) => this.watch(session));
    }
  }

  /** Streams dispatched at most per turn; the rest wait for the next turn, in order. */
  private drain(): void {
    const end = Math.min(this.pending.length, this.head + DISPATCH_PER_TURN);
    while (this.head < end) {
      const f = this.pending[this.head]!;
      this.pending[this.head++] = NOTHING;
      f();
    }
    if (this.head === this.pending.length) {
      this.pending = [];
      this.head = 0;
      this.draining = false;
    } else {
      // Drop the dispatched front now and then, not on every turn (that would copy the queue each time).
      if (this.head >= 1024) {
        this.pending = this.pending.slice(this.head);
        this.head = 0;
      }
      setImmediate(() => this.drain());
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

  /** True while address is in the penalty box. */
  penalized(address: string | undefined): boolean {
    if (address === undefined || this.penalties.size === 0) return false;
    const until = this.penalties.get(address);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.penalties.delete(address);
    return false;
  }

  private penalize(address: string | undefined): void {
    if (address === undefined || this.limits.abusePenaltyMs === 0) return;
    this.penalties.delete(address);
    if (this.penalties.size >= PENALTY_ADDRESSES_MAX) this.penalties.delete(this.penalties.keys().next().value!);
    this.penalties.set(address, this.now() + this.limits.abusePenaltyMs);
  }

  private watch(session: Http2Session): void {
    metrics.grpcConnections.set(++this.open);
    const max = this.limits.controlFramesPerSecondMax;
    const address = session.socket?.remoteAddress;
    let windowStart = this.now();
    let pings = 0;
    let settings = 0;
    let streams = 0;
    let resets = 0;
    const state: SessionState = {
      cut: false,
      reset: () => {
        if (!state.cut && ++resets > this.limits.resetStreamsMax && resets * 2 > streams) cutOff('resets');
      },
    };
    this.states.set(session, state);
    const cutOff = (kind: Kind) => {
      state.cut = true;
      this.closed(kind);
      this.penalize(address);
      // What the cut spares the engine is what it would still parse of the client's bytes:
      // - GOAWAY ENHANCE_YOUR_CALM is only queued here; nghttp2 refuses new streams once it is
      //   sent, and until then (the rest of this read) it hands Node every HEADERS, each a stream
      //   object and a 'stream' event. close() marks the session closed, so Node refuses those at
      //   once (an RST_STREAM, no stream object). It destroys nothing here: the GOAWAY waits to be
      //   written (Node's close then leaves the session open), and streams destroyed later defer
      //   their session's destroy to a later turn.
      // - stopReading: libuv reads up to 32 chunks of 64 KiB per socket per turn, and nghttp2
      //   parses each. After the cut only the chunk in hand is parsed. With both, a rapid reset on
      //   200 connections stalls the event loop for at most ~50 ms (before: 60 ms to 2 s; on 50
      //   connections the abuse suite's canary p99 went from 100-360 ms to 14-20 ms).
      // The session is destroyed a turn later, never inside the read: destroying it there trips
      // Node's memory accounting of nghttp2 (a native assert aborted the process under the abuse
      // suite).
      try {
        session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
        session.close();
      } catch {
        // Already closing: the destroy below does the rest; the close was counted above.
      }
      stopReading(session);
      setImmediate(() => session.destroy());
    };
    const frame = (kind: 'pings' | 'settings') => {
      if (state.cut) return;
      const t = this.now();
      if (t - windowStart >= 1000) {
        windowStart = t;
        pings = settings = 0;
      }
      const n = kind === 'pings' ? ++pings : ++settings;
      if (n > max) cutOff(kind);
    };
    session.on('ping', () => frame('pings'));
    // The first SETTINGS of a connection is the client's preface: counted like the others.
    session.on('remoteSettings', () => frame('settings'));
    /** The connection's last stream: a reset of it is seen at the next stream's start. */
    let last: ServerHttp2Stream | null = null;
    const counted = new WeakSet<ServerHttp2Stream>();
    /** When each stream opened: only a reset within PREMATURE_RESET_MS of it counts. */
    const opened = new WeakMap<ServerHttp2Stream, number>();
    /**
     * A stream closed by RST_STREAM with an error code: grpc-js never resets a server stream
     * itself (it ends calls with trailers), so the client cancelled it. (Node's 'aborted' event is
     * not enough: it is skipped once the server has ended its side.) Counted once per stream.
     */
    const noteClosed = (stream: ServerHttp2Stream) => {
      if (state.cut || counted.has(stream) || stream.rstCode === undefined || stream.rstCode === constants.NGHTTP2_NO_ERROR) return;
      counted.add(stream);
      // Premature only: reset before the server answered anything and within a second of its
      // start. A stream the server answered, or that lived a while, is a client ending its call
      // (devices closing their Connect streams, a fleet of them sharing one connection), not a
      // rapid reset.
      if (stream.headersSent || this.now() - (opened.get(stream) ?? 0) > PREMATURE_RESET_MS) return;
      state.reset();
    };
    session.on('stream', (stream: ServerHttp2Stream) => {
      streams++;
      // nghttp2 has already applied a RST_STREAM that came before this HEADERS in the same read
      // (rstCode is set), while the 'close' events wait for the end of the read: checking the last
      // stream here finds a rapid reset within the read instead of after it (~1,000 streams).
      if (last !== null) noteClosed(last);
      last = stream;
      opened.set(stream, this.now());
      if (!state.cut) stream.once('close', () => noteClosed(stream));
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
    const parts = [...this.unlogged].map(([k, n]) => `${n} ${REASON_TEXT[k] ?? k}`);
    const counts = this.unlogged;
    this.unlogged = new Map();
    // Already at most one line per LOG_INTERVAL_MS (closed() above), however many clients misbehave.
    roleLog('gateway').warn({ closed: Object.fromEntries(counts) }, `connections closed: ${parts.join(', ')}`);
  }
}

const REASON_TEXT: Record<string, string> = {
  connections_max: 'refused at grpc.connectionsMax',
  penalized: 'refused from an address in the penalty box (grpc.abusePenaltyMs)',
  pings: 'for PINGs beyond grpc.controlFramesPerSecondMax',
  settings: 'for SETTINGS beyond grpc.controlFramesPerSecondMax',
  resets: 'for cancelled calls beyond grpc.resetStreamsMax (rapid reset)',
};

/**
 * Stops libuv reading the session's socket, so the chunk in hand is the last one nghttp2 parses.
 * Through the socket's native handle (TCP, or TLS over it): Node's http2 consumes that handle
 * directly, and its session.socket refuses pause(). A handle without readStop is left as it is;
 * the destroy a turn later ends it anyway.
 */
function stopReading(session: Http2Session): void {
  const handle = (session.socket as unknown as { _handle?: { readStop?: () => number } } | undefined)?._handle;
  handle?.readStop?.();
}
