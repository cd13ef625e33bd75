/**
 * HTTP/2 written by hand for the abuse suite's attackers: frames built byte by byte (RFC 9113 §4.1)
 * and a reader that splits what the server sends into frames, so an attacker can answer the
 * server's SETTINGS and PINGs, count GOAWAY codes, and otherwise discard everything. node:http2
 * cannot be told to flood (it paces pings, merges settings, and refuses to exceed the peer's
 * stream limit), so the floods go over a plain TCP socket.
 *
 *   frame: | length (24) | type (8) | flags (8) | R | stream id (31) | payload (length bytes) |
 */
import { connect, type Socket } from 'node:net';

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const FrameType = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8 } as const;
export const Flags = { ACK: 0x1, END_STREAM: 0x1, END_HEADERS: 0x4 } as const;
export const ErrorCodeName: Record<number, string> = {
  0: 'NO_ERROR', 1: 'PROTOCOL_ERROR', 2: 'INTERNAL_ERROR', 3: 'FLOW_CONTROL_ERROR', 4: 'SETTINGS_TIMEOUT', 5: 'STREAM_CLOSED', 6: 'FRAME_SIZE_ERROR',
  7: 'REFUSED_STREAM', 8: 'CANCEL', 9: 'COMPRESSION_ERROR', 10: 'CONNECT_ERROR', 11: 'ENHANCE_YOUR_CALM', 12: 'INADEQUATE_SECURITY', 13: 'HTTP_1_1_REQUIRED',
};

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(9 + payload.length);
  b.writeUIntBE(payload.length, 0, 3);
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(streamId & 0x7fffffff, 5);
  payload.copy(b, 9);
  return b;
}

/** SETTINGS with the given (id, value) pairs; no pairs: an empty SETTINGS (still needs an ACK). */
export function settings(pairs: [number, number][] = []): Buffer {
  const p = Buffer.alloc(6 * pairs.length);
  pairs.forEach(([id, v], i) => {
    p.writeUInt16BE(id, 6 * i);
    p.writeUInt32BE(v, 6 * i + 2);
  });
  return frame(FrameType.SETTINGS, 0, 0, p);
}

export const SETTINGS_ACK = frame(FrameType.SETTINGS, Flags.ACK, 0);

export function ping(data: Buffer = Buffer.alloc(8), ack = false): Buffer {
  return frame(FrameType.PING, ack ? Flags.ACK : 0, 0, data);
}

export function rstStream(streamId: number, code = 8 /* CANCEL */): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return frame(FrameType.RST_STREAM, 0, streamId, p);
}

/** An HPACK string literal, not Huffman-coded, length on a 7-bit prefix (RFC 7541 §5.1, §5.2). */
function hpackString(s: string): Buffer {
  const b = Buffer.from(s, 'latin1');
  return Buffer.concat([hpackInt(b.length, 7, 0), b]);
}

function hpackInt(n: number, prefixBits: number, firstByte: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (n < max) return Buffer.from([firstByte | n]);
  const out = [firstByte | max];
  n -= max;
  while (n >= 128) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/**
 * A header block for a gRPC POST with no dynamic-table state (every field a literal without
 * indexing, or an indexed static entry), so the same block can be sent on any stream.
 */
export function grpcHeaderBlock(path: string, authority: string, extra: Record<string, string> = {}): Buffer {
  const parts: Buffer[] = [
    Buffer.from([0x83]), // :method POST (static 3)
    Buffer.from([0x86]), // :scheme http (static 6)
    hpackInt(4, 4, 0x00), hpackString(path), // :path, name static 4
    hpackInt(1, 4, 0x00), hpackString(authority), // :authority, name static 1
    hpackInt(31, 4, 0x00), hpackString('application/grpc'), // content-type, name static 31
  ];
  for (const [k, v] of Object.entries({ te: 'trailers', ...extra })) parts.push(Buffer.from([0x00]), hpackString(k), hpackString(v));
  return Buffer.concat(parts);
}

export function headers(streamId: number, block: Buffer, endStream = false): Buffer {
  return frame(FrameType.HEADERS, Flags.END_HEADERS | (endStream ? Flags.END_STREAM : 0), streamId, block);
}

/**
 * Splits the server's bytes into frames and answers what a well-behaved client must (SETTINGS
 * ACK, PING ACK) so the attack measures the flood, not a missing acknowledgement.
 */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);
  goaway: number | null = null;
  settingsAcked = 0;
  pingAcks = 0;
  rstStreams = 0;
  headersFrames = 0;

  constructor(
    private readonly socket: Socket,
    private readonly onFrame?: (type: number, flags: number, streamId: number, payload: Buffer) => void,
  ) {}

  push(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 9) {
      const len = this.pending.readUIntBE(0, 3);
      if (this.pending.length < 9 + len) break;
      const type = this.pending[3]!;
      const flags = this.pending[4]!;
      const streamId = this.pending.readUInt32BE(5) & 0x7fffffff;
      const payload = this.pending.subarray(9, 9 + len);
      this.pending = this.pending.subarray(9 + len);
      if (type === FrameType.SETTINGS && (flags & Flags.ACK) === 0) this.socket.write(SETTINGS_ACK);
      else if (type === FrameType.SETTINGS) this.settingsAcked++;
      else if (type === FrameType.PING && (flags & Flags.ACK) === 0) this.socket.write(ping(Buffer.from(payload), true));
      else if (type === FrameType.PING) this.pingAcks++;
      else if (type === FrameType.GOAWAY && payload.length >= 8) this.goaway = payload.readUInt32BE(4);
      else if (type === FrameType.RST_STREAM) this.rstStreams++;
      else if (type === FrameType.HEADERS) this.headersFrames++;
      this.onFrame?.(type, flags, streamId, payload);
    }
  }
}

export interface H2Socket {
  socket: Socket;
  reader: FrameReader;
  /** Resolves once the socket is closed (by either side); the error code if it failed. */
  closed: Promise<string | null>;
}

/** A TCP connection that sent the client preface and an empty SETTINGS, reading what comes back. */
export function openH2(host: string, port: number, onFrame?: (type: number, flags: number, streamId: number, payload: Buffer) => void): Promise<H2Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const reader = new FrameReader(socket, onFrame);
    let error: string | null = null;
    const closed = new Promise<string | null>((r) => socket.once('close', () => r(error)));
    socket.on('data', (c: Buffer) => reader.push(c));
    socket.once('connect', () => {
      socket.off('error', reject);
      socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
      socket.write(Buffer.concat([PREFACE, settings()]));
      resolve({ socket, reader, closed });
    });
    socket.once('error', reject);
  });
}
