/**
 * The downlink of one device stream (Connect, Nimbus ProcessEvent, SSE): delivery of its results.
 * A stream that also sends (Connect, Nimbus) has an UplinkSession beside it (uplink-session.ts),
 * whose acks and rejects go out in the same Downlinks.
 *
 * Reads: the device's Redis buffer (on start and whenever a gap shows) and live delivery frames.
 * Every buffered result has an index n (its stream id); the session delivers indexes in order, so
 * results reach the device in seq order, each once: a result at or below the device's cursor is
 * skipped. The cursor is the client's (x-last-result-seq, Last-Event-ID) or, without one, the
 * server's record of what any earlier session wrote (`dev:<id>` field d). On a takeover the earlier
 * session, on whatever instance, is ended and records its position before this one reads it
 * (DeliveryLink.claim's handoff), so a client without a cursor gets nothing twice.
 *
 * Writes respect write()/'drain': while the device is not reading, results wait in `outbound`, up
 * to gateway.outboundMax; beyond it live results are left in the device's Redis buffer and the
 * session reads them from there one page at a time, each page only once the last is in the
 * transport, so a device that reads slowly gets everything at its own pace. A device that takes
 * nothing for gateway.stallTimeoutMs while results wait ends with RESOURCE_EXHAUSTED. Nothing is
 * lost by that: the results stay in the device's Redis buffer for its next session.
 */
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import type { Config } from '../config.js';
import { ErrorCode } from '../errors.js';
import { metrics } from '../http/metrics.js';
import { decodeResult } from '../wire/result-record.js';
import type { DeliveryLink, HeldDevice } from './delivery.js';
import { grpcError } from './grpc-status.js';
import type { Downlink, Result } from './protocol.js';
import type { UplinkSession } from './uplink-session.js';

export interface SessionHost {
  readonly config: Config;
  readonly link: DeliveryLink;
  /** Schedules a flush of every dirty session at the end of this event-loop turn. */
  markDirty(session: DeviceSession): void;
  /** Called once when the session ends, whatever the reason. */
  closed(session: DeviceSession): void;
}

const BUFFER_PAGE = 500;
/** A Downlink's results stay under this many bytes, well inside the 4 MiB message limit. */
const DOWNLINK_BYTES_MAX = 1024 * 1024;
const RESULT_OVERHEAD_BYTES = 64;

/**
 * The stream a session talks through: DeviceGateway.Connect writes Downlinks as they are; the
 * Nimbus-compatible service (nimbus.ts) turns them into EventResponses. The adapter forwards the
 * stream's events to onUplink / onHalfClose / onDrain / end.
 */
export interface SessionIO {
  /** false: the transport is full; wait for onDrain before writing again. */
  write(msg: Downlink): boolean;
  /** Ends the call: with a status, or (null) normally. */
  end(st: { code: status; details: string } | null): void;
}

export class DeviceSession implements HeldDevice {
  /** The stream's sending side (Connect, Nimbus); null for SSE. */
  uplink: UplinkSession | null = null;
  /** Seq of the last result taken for the device (or confirmed by it): the dedupe cursor. */
  cursor = 0;
  /**
   * Seq of the last result written to the transport (or confirmed by the device): what the server
   * records as delivered when the session ends, for devices that reconnect without
   * x-last-result-seq. Invariant: sentSeq <= cursor. Results taken but still waiting in `outbound`
   * when the session ends are not counted: they are sent again by the next session.
   */
  sentSeq = 0;
  /** The client gave no cursor: what this session writes is recorded promptly (DeliveryLink.noteSent). */
  private noteSent = false;
  /** Buffer index of the last result taken from the buffer or from a frame, in order. */
  lastN = 0;
  private draining = false;
  /** Invariant: true until start() has set the cursor; live entries wait in the buffer meanwhile. */
  private starting = true;
  /** Highest index seen in a live frame while draining: a drain must end past it. */
  private liveMaxN = 0;
  private outbound: Result[] = [];
  /** Invariant: true while the transport's last write() returned false and 'drain' has not come. */
  blocked = false;
  /** Set while a buffer drain waits for the transport to take what it wrote. */
  private drained: (() => void) | null = null;
  /** The status this side ended the stream with; null while open or when the peer ended it. */
  endedWith: { code: status; details: string } | null = null;
  /** Invariant: closed is true iff the call has been ended (by us or by the peer). */
  closed = false;

  constructor(
    private readonly host: SessionHost,
    readonly deviceId: string,
    private readonly io: SessionIO,
  ) {}

  onDrain(): void {
    this.blocked = false;
    this.drained?.();
    this.drained = null;
    this.host.markDirty(this);
    this.uplink?.onDrain();
  }

  markDirty(): void {
    this.host.markDirty(this);
  }

  /**
   * Claims presence (ending an earlier session of the device on any instance, which records what it
   * wrote), sets the cursor and reads the buffer; then live delivery takes over.
   */
  async start(cursorFromDevice: number | null): Promise<void> {
    await this.host.link.claim(this.deviceId, cursorFromDevice === null);
    if (this.closed) return;
    this.cursor = cursorFromDevice ?? (await this.host.link.deliveredSeq(this.deviceId));
    this.sentSeq = this.cursor;
    this.noteSent = cursorFromDevice === null;
    this.starting = false;
    await this.drain();
  }

  /** An entry of a live delivery frame for this device. */
  onLive(n: number, result: Buffer): void {
    if (this.closed) return;
    // Until the cursor is known (the claim, the handoff, the record) nothing is taken: the first
    // drain reads past what was seen here.
    if (this.draining || this.starting) {
      if (n > this.liveMaxN) this.liveMaxN = n;
      return;
    }
    if (n <= this.lastN) return;
    if (n !== this.lastN + 1 || this.outbound.length >= this.host.config.gateway.outboundMax) {
      // Something between lastN and n was missed (published before this session subscribed, or
      // while it was draining), or the device is behind (gateway.outboundMax results wait for
      // it): the rest is in the buffer, in order, and the drain reads it at the device's pace.
      this.liveMaxN = n;
      void this.drain();
      return;
    }
    this.take(n, result);
  }

  /** Takes buffer entry n; returns false when the device already has it (seq <= cursor). */
  private take(n: number, bytes: Buffer): boolean {
    assert.ok(n > this.lastN, 'buffer indexes are taken in increasing order');
    this.lastN = n;
    const r = decodeResult(bytes);
    if (r.seq <= this.cursor) return false;
    this.cursor = r.seq;
    metrics.resultsDelivered.inc();
    metrics.stageSeconds.observe({ stage: 'deliver' }, (Date.now() * 1000 - r.processedAtUs) / 1e6);
    this.outbound.push({ seq: r.seq, type: r.type, value: r.value, payload: r.payload, sentAtUs: r.sentAtUs, processedAtUs: r.processedAtUs });
    if (this.outbound.length > this.host.config.gateway.outboundMax) {
      this.end(grpcError(ErrorCode.DEVICE_NOT_READING, `device is not reading: more than ${this.host.config.gateway.outboundMax} results (gateway.outboundMax) wait for it; they stay buffered for its next stream`));
    } else {
      this.host.markDirty(this);
    }
    return true;
  }

  /**
   * Reads the buffer from lastN to its end. A live entry seen meanwhile (liveMaxN) was written to
   * the buffer before it was published, so reading on until a read comes back empty finds it,
   * unless the buffer's cap dropped it.
   */
  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      let confirmedN = 0;
      // A page never overflows outbound: the buffer is read only as fast as the device takes it.
      const pageSize = Math.min(BUFFER_PAGE, this.host.config.gateway.outboundMax);
      for (;;) {
        // The next page only once the last is in the transport: outbound never holds more than a
        // page, however slowly the device reads.
        while (this.outbound.length > 0) {
          this.flush();
          if (this.closed) return;
          if (this.blocked && !(await this.waitDrained())) {
            this.endStalled();
            return;
          }
          if (this.closed) return;
        }
        // A live entry is written to the buffer before it is published, so once seen, any read
        // issued afterwards returns it (unless the buffer's cap dropped it).
        const liveAtIssue = this.liveMaxN;
        const page = await this.host.link.readBuffer(this.deviceId, this.lastN, pageSize);
        // Buffer indexes are consecutive per device: once this session has taken one, a hole after
        // it is results the buffer's cap dropped while the device was behind. Say so rather than
        // skip them silently.
        if (page.length > 0 && this.lastN > 0 && page[0]!.n > this.lastN + 1) {
          this.endBehind(page[0]!.n - this.lastN - 1);
          return;
        }
        for (const e of page) {
          if (this.closed) return;
          if (!this.take(e.n, e.result)) confirmedN = e.n;
        }
        this.flush();
        if (this.blocked && !(await this.waitDrained())) {
          this.endStalled();
          return;
        }
        if (this.closed) return;
        if (page.length === pageSize) continue;
        if (this.liveMaxN > this.lastN) {
          // Seen after this read was issued: read again. Seen before it, yet not returned: the cap
          // dropped it; skip ahead.
          if (this.liveMaxN > liveAtIssue) continue;
          if (this.lastN > 0) {
            this.endBehind(this.liveMaxN - this.lastN);
            return;
          }
          this.lastN = this.liveMaxN;
        }
        // No await between this check and `draining = false`: nothing live can slip past.
        break;
      }
      // Entries the device confirmed having (at or below its cursor) are not needed again.
      // A trim Redis did not answer leaves entries the device already has: the next trim (or the
      // buffer's cap) removes them, and the cursor keeps them from being delivered twice. Nothing is lost.
      if (confirmedN > 0) void this.host.link.trimBuffer(this.deviceId, confirmedN).catch(() => {});
    } catch {
      if (!this.closed) this.end(grpcError(ErrorCode.REDIS_UNAVAILABLE, "Redis did not answer while reading this device's buffered results; reconnect"));
    } finally {
      this.draining = false;
    }
  }

  /**
   * Writes what is pending: acks, results and rejects in one Downlink, split only where results
   * would pass DOWNLINK_BYTES_MAX (grpc.max_send_message_length is 4 MiB). Called by the host's flush.
   */
  flush(): void {
    if (this.closed || this.blocked) return;
    const ack = this.uplink?.takeAck();
    const rejects = this.uplink?.takeRejects();
    if (ack === undefined && rejects === undefined && this.outbound.length === 0) return;
    const msg: Downlink = {};
    if (ack !== undefined) msg.ackedSeq = ack;
    if (rejects !== undefined) msg.rejects = rejects;
    let bytes = 0;
    let i = 0;
    while (i < this.outbound.length) {
      const size = this.outbound[i]!.payload.length + RESULT_OVERHEAD_BYTES;
      if (i > 0 && bytes + size > DOWNLINK_BYTES_MAX) break;
      bytes += size;
      i++;
    }
    if (i > 0) {
      msg.results = i === this.outbound.length ? this.outbound : this.outbound.slice(0, i);
      this.sentSeq = msg.results[i - 1]!.seq;
      if (this.noteSent) this.host.link.noteSent(this.deviceId, this.sentSeq);
    }
    this.outbound = i === this.outbound.length ? [] : this.outbound.slice(i);
    metrics.downlinks.inc();
    if (!this.io.write(msg)) this.blocked = true;
    else if (this.outbound.length > 0) this.flush();
  }

  private endBehind(dropped: number): void {
    this.end(grpcError(ErrorCode.DEVICE_BEHIND, `device is not reading fast enough: it fell more than ${this.host.config.redis.deviceBufferMax} results (redis.deviceBufferMax) behind and ${dropped} results after the last it was sent were dropped from its buffer; reconnect for the newest`));
  }

  private endStalled(): void {
    this.end(grpcError(ErrorCode.DEVICE_NOT_READING, `device is not reading: it took nothing for ${this.host.config.gateway.stallTimeoutMs} ms (gateway.stallTimeoutMs) while its buffered results were being sent; they stay buffered for its next stream`));
  }

  /** Resolves true when the transport drains (or the session closes), false after gateway.stallTimeoutMs. */
  private waitDrained(): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.drained = null;
        resolve(false);
      }, this.host.config.gateway.stallTimeoutMs);
      this.drained = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }

  /** A presence renewal found the device held by another stream (on another instance). */
  lost(): void {
    this.end(grpcError(ErrorCode.STREAM_SUPERSEDED, `device ${this.deviceId} is held by another stream; this one is superseded`));
  }

  /** The peer cancelled or the transport failed: nothing more can be written. */
  peerGone(): void {
    if (this.closed) return;
    this.closed = true;
    this.drained?.();
    this.host.closed(this);
  }

  /** Ends the stream, once: with a status, or (null) normally after a last flush. */
  end(st: { code: status; details: string } | null): void {
    if (this.closed) return;
    this.closed = true;
    if (st === null) this.flushFinal();
    this.endedWith = st;
    if (st !== null) metrics.streamsEnded.inc({ status: status[st.code] ?? String(st.code) });
    this.drained?.();
    this.io.end(st);
    this.host.closed(this);
  }

  /** Half-close by the device: what is already settled is acked and rejected before the server ends the call. */
  private flushFinal(): void {
    this.closed = false;
    this.blocked = false;
    this.flush();
    this.closed = true;
  }
}
