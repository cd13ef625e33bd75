/**
 * What the fleet needs from an API: open a device's session on a connection, send an uplink of
 * events, and report back acks, results, rejects and failures. One driver per API the load
 * generator speaks (the Stratus API and the seed-compatible ones), so the schedule, the checker
 * and the histograms are the same whichever server is under load.
 */
import { Metadata, status, type Client, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';

export interface UplinkEvent {
  seq: number;
  value: number;
  payloadBytes: number;
}

/** Callbacks from a session to its device. */
export interface SessionEvents {
  /** The server answered the stream's headers (streaming APIs only). */
  connected(): void;
  /** Cumulative: every non-rejected seq <= upTo is acknowledged. */
  ackedUpTo(upTo: number): void;
  /** Exactly these seqs are acknowledged (unary APIs: one call per uplink). */
  ackedSeqs(seqs: readonly number[]): void;
  result(seq: number, check: ResultCheck): void;
  rejected(seq: number, code: string): void;
  /** A unary call failed; its seqs stay unacknowledged. */
  callFailed(err: ServiceError, seqs: readonly number[]): void;
  /** The stream ended (err null: the server closed it cleanly). Streaming APIs only. */
  ended(err: ServiceError | null): void;
  /** The session was `blocked` and its transport took the buffered writes: send again. */
  writable(): void;
}

/** What a result said, for the `sq` check: the value it carries and the input it answers. */
export interface ResultCheck {
  value: number;
  /** The input echoed back where the API echoes it (nimbus); else undefined. */
  input?: number;
}

export interface DeviceIdentity {
  id: string;
  index: number;
  /** `authorization: Bearer` token, when --token-secret is given. */
  token: string | null;
}

export interface Session {
  send(events: readonly UplinkEvent[]): void;
  /**
   * The transport's write buffer is over its high-water mark (HTTP/2 flow control: the server is
   * not reading). The fleet holds new uplinks until `writable()`, so a saturated server pushes
   * back on the generator instead of the generator buffering without bound; held uplinks keep
   * their intended time, so the wait shows in their latency and in sendLag.
   */
  readonly blocked: boolean;
  /** Stop / start reading the downlink (slow readers); HTTP/2 flow control pushes back on the server. */
  pause(): void;
  resume(): void;
  close(): void;
}

export interface Driver {
  /** Long-lived stream per device (connect and reconnect times are measured). */
  readonly streaming: boolean;
  /**
   * The server sends response headers as soon as it accepts a stream, so connect time can be
   * measured. The Go nimbus server does not (headers come with the first response): there the
   * device counts as connected when the stream is opened, and connect time is not reported.
   */
  readonly headersOnAccept: boolean;
  readonly acks: boolean;
  readonly results: boolean;
  /** Unacknowledged events are sent again on the next stream (the server dedupes by seq). */
  readonly resendsUnacked: boolean;
  /**
   * Where the API carries the seq modulo this (nimbus: in a bounded int32 `number`): the seq a
   * result names is a residue, resolved by the fleet to the device's unsettled seq, and the input
   * the server squares is that residue (not valueOf). Undefined: seqs travel whole.
   */
  readonly seqModulo?: number;
  open(client: Client, device: DeviceIdentity, cursor: number, events: SessionEvents): Session;
}

export function deviceMetadata(device: DeviceIdentity, idKey: string): Metadata {
  const md = new Metadata();
  md.set(idKey, device.id);
  if (device.token !== null) md.set('authorization', `Bearer ${device.token}`);
  return md;
}

const STATUS_NAMES = new Map<number, string>(Object.entries(status).filter(([, v]) => typeof v === 'number').map(([k, v]) => [v as number, k]));

/**
 * An error's kind for the report: REFUSED, RESET, DNS and TLS where the transport says so (all of
 * them surface as UNAVAILABLE), else the gRPC status name.
 */
export function errorKind(err: ServiceError): string {
  const details = `${err.details ?? ''} ${err.message ?? ''}`;
  if (err.code === status.UNAVAILABLE) {
    if (/ECONNREFUSED/.test(details)) return 'REFUSED';
    if (/Name resolution failed|ENOTFOUND|EAI_AGAIN/i.test(details)) return 'DNS';
    // grpc-js words a reset by when it came: during connect (ECONNRESET), before the HTTP/2 preface
    // ("Connection closed before starting HTTP/2 handshake": checked before TLS's "handshake"),
    // before the server's SETTINGS with no socket error ("Failed to connect"), or on a live
    // connection ("Connection dropped").
    if (/ECONNRESET|Connection dropped|Connection closed|Failed to connect|socket hang up|EPIPE|GOAWAY|Stream refused/i.test(details)) return 'RESET';
    if (/certificate|SSL|TLS|wrong version number|CERT_|handshake/i.test(details)) return 'TLS';
  }
  return STATUS_NAMES.get(err.code) ?? `STATUS_${err.code}`;
}

/**
 * The Session of a bidi stream: `ended` reported once (error or clean end, whichever comes first),
 * nothing written after it, and close() cancels without reporting. `write` turns an uplink into
 * the stream's message(s) and returns what the last call.write() did (false: buffer full).
 */
export function streamSession<Req, Res>(call: ClientDuplexStream<Req, Res>, ev: SessionEvents, write: (events: readonly UplinkEvent[]) => boolean): Session {
  let done = false;
  let blocked = false;
  const end = (err: ServiceError | null) => {
    if (done) return;
    done = true;
    ev.ended(err);
  };
  call.on('error', (err: ServiceError) => end(err));
  call.on('end', () => end(null));
  call.on('drain', () => {
    if (!blocked || done) return;
    blocked = false;
    ev.writable();
  });
  return {
    get blocked() {
      return blocked;
    },
    send(events) {
      if (!done && !write(events)) blocked = true;
    },
    pause: () => call.pause(),
    resume: () => call.resume(),
    close() {
      done = true;
      call.cancel();
    },
  };
}

/** What every unary API (one call per uplink, acked by its answer, no results) declares. */
export const UNARY_API = { streaming: false, headersOnAccept: false, acks: true, results: false, resendsUnacked: false } as const;

/** The Session of a unary API: nothing to pause or close, each send is a call of its own. */
export function unarySession(send: (events: readonly UplinkEvent[]) => void): Session {
  return { send, blocked: false, pause() {}, resume() {}, close() {} };
}
