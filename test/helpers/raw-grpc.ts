/**
 * gRPC spoken by hand over node:http2, for hostile-input tests: any bytes in a message, any
 * length prefix or compressed flag, any headers. A grpc-js client cannot send most of these (it
 * serializes and frames for you). Also a protobuf writer for messages no codec would produce:
 * truncated varints, invalid wire types, invalid UTF-8, uint64 2^64-1.
 */
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type OutgoingHttpHeaders } from 'node:http2';

/** How a call ended: a grpc-status (trailers or trailers-only), an HTTP status, or a stream reset. */
export interface RawOutcome {
  grpcStatus: number | null;
  grpcMessage: string;
  httpStatus: number | null;
  /** RST_STREAM code when the server reset the stream, or -1 when the session itself failed. */
  rstCode: number | null;
}

export class RawSession {
  readonly session: ClientHttp2Session;
  private constructor(session: ClientHttp2Session) {
    this.session = session;
  }

  static async open(address: string): Promise<RawSession> {
    const session = connect(`http://${address}`, { maxSessionMemory: 64, peerMaxConcurrentStreams: 100_000 });
    session.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      session.once('connect', () => resolve());
      session.once('error', reject);
    });
    return new RawSession(session);
  }

  call(path: string, opts: { headers?: OutgoingHttpHeaders; read?: boolean } = {}): RawCall {
    const stream = this.session.request(
      { ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...opts.headers },
      { endStream: false },
    );
    this.streams.add(stream);
    stream.on('close', () => this.streams.delete(stream));
    return new RawCall(stream, opts.read !== false);
  }

  private readonly streams = new Set<ClientHttp2Stream>();

  close(): void {
    this.session.close();
  }

  /**
   * Resets every open stream, then closes the session gracefully. (Destroying a session whose
   * streams still have writes queued corrupted the heap of this process on Node 20.20, seen as
   * "corrupted size vs. prev_size": tests end sessions this way.)
   */
  async shutdown(): Promise<void> {
    for (const st of this.streams) if (!st.closed) st.close(constants.NGHTTP2_CANCEL);
    if (this.session.closed || this.session.destroyed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.session.destroy();
        resolve();
      }, 5000);
      this.session.close(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

export class RawCall {
  /** Whole gRPC messages received (the payload of each length-prefixed frame). */
  readonly messages: Buffer[] = [];
  readonly done: Promise<RawOutcome>;
  private pending: Buffer = Buffer.alloc(0);
  private onMessage: ((m: Buffer) => void) | null = null;

  constructor(
    readonly stream: ClientHttp2Stream,
    read: boolean,
  ) {
    let httpStatus: number | null = null;
    let grpcStatus: number | null = null;
    let grpcMessage = '';
    let settle!: (o: RawOutcome) => void;
    this.done = new Promise((resolve) => (settle = resolve));
    const finish = (rstCode: number | null) => settle({ grpcStatus, grpcMessage, httpStatus, rstCode });
    const fromHeaders = (h: Record<string, unknown>) => {
      if (h['grpc-status'] !== undefined) grpcStatus = Number(h['grpc-status']);
      if (typeof h['grpc-message'] === 'string') grpcMessage = decodeURIComponent(h['grpc-message']);
    };
    // The call is answered once a status arrives (trailers, or trailers-only headers), even while
    // our side of the stream is still open: the stream itself closes only when both sides end.
    stream.on('response', (h) => {
      httpStatus = Number(h[':status']);
      fromHeaders(h);
      if (grpcStatus !== null || httpStatus !== 200) finish(null);
    });
    stream.on('trailers', (h) => {
      fromHeaders(h);
      finish(null);
    });
    if (read) {
      stream.on('data', (chunk: Buffer) => this.parse(chunk));
    } else {
      // A device that never reads: nothing consumes the response, so HTTP/2 flow control stops
      // the server once the stream's window is full.
      stream.pause();
    }
    stream.on('error', () => {});
    stream.on('close', () => {
      const rst = stream.rstCode;
      finish(grpcStatus === null && rst !== undefined && rst !== constants.NGHTTP2_NO_ERROR ? rst : grpcStatus === null && httpStatus === null ? -1 : null);
    });
  }

  listen(f: (m: Buffer) => void): this {
    this.onMessage = f;
    return this;
  }

  /** Writes raw bytes (already framed, or deliberately not). false: wait for 'drain'. */
  writeRaw(bytes: Buffer, end = false): boolean {
    if (end) {
      this.stream.end(bytes);
      return true;
    }
    return this.stream.write(bytes);
  }

  /** Writes one length-prefixed gRPC message. */
  send(message: Buffer, end = false): boolean {
    return this.writeRaw(grpcFrame(message), end);
  }

  drained(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.stream.writableNeedDrain) return resolve();
      const done = () => {
        this.stream.off('drain', done);
        this.stream.off('close', done);
        resolve();
      };
      this.stream.on('drain', done);
      this.stream.on('close', done);
    });
  }

  end(): void {
    this.stream.end();
  }

  cancel(): void {
    this.stream.close(constants.NGHTTP2_CANCEL);
  }

  private parse(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 5) {
      const len = this.pending.readUInt32BE(1);
      if (this.pending.length < 5 + len) break;
      const m = this.pending.subarray(5, 5 + len);
      this.pending = this.pending.subarray(5 + len);
      this.messages.push(m);
      this.onMessage?.(m);
    }
  }
}

/** The 5-byte gRPC prefix (compressed flag, big-endian length) and the message. */
export function grpcFrame(message: Buffer, opts: { compressed?: number; length?: number } = {}): Buffer {
  const head = Buffer.alloc(5);
  head[0] = opts.compressed ?? 0;
  head.writeUInt32BE(opts.length ?? message.length, 1);
  return Buffer.concat([head, message]);
}

// --- a protobuf writer that does what it is told --------------------------------------------

export function varint(n: bigint | number): Buffer {
  let v = BigInt(n);
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return Buffer.from(out);
}

export const WireType = { VARINT: 0, I64: 1, LEN: 2, SGROUP: 3, EGROUP: 4, I32: 5 } as const;

export function tag(field: number, wireType: number): Buffer {
  return varint((BigInt(field) << 3n) | BigInt(wireType));
}

export function lenField(field: number, bytes: Buffer | string): Buffer {
  const b = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
  return Buffer.concat([tag(field, WireType.LEN), varint(b.length), b]);
}

export function varintField(field: number, n: bigint | number): Buffer {
  return Buffer.concat([tag(field, WireType.VARINT), varint(n)]);
}

export function doubleField(field: number, x: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(x);
  return Buffer.concat([tag(field, WireType.I64), b]);
}

/** stratus.v1.Event, field by field; a field left undefined is absent. */
export function rawEvent(e: { deviceId?: Buffer | string; seq?: bigint | number; type?: Buffer | string; value?: number; payload?: Buffer }): Buffer {
  const parts: Buffer[] = [];
  if (e.deviceId !== undefined) parts.push(lenField(1, e.deviceId));
  if (e.seq !== undefined) parts.push(varintField(2, e.seq));
  if (e.type !== undefined) parts.push(lenField(3, e.type));
  if (e.value !== undefined) parts.push(doubleField(4, e.value));
  if (e.payload !== undefined) parts.push(lenField(5, e.payload));
  return Buffer.concat(parts);
}

/** A message of repeated field 1 (stratus.v1.Uplink and EventBatch alike). */
export function rawRepeated(events: Buffer[]): Buffer {
  return Buffer.concat(events.map((e) => lenField(1, e)));
}
