/**
 * The uplink of one device stream (Connect, or a Nimbus ProcessEvent call): admission of what the
 * device sends.
 *
 * Reads: the stream's Uplinks. Each event is validated (validate.ts), counted against the device's
 * rate, then submitted to the instance (Gateway.submit: admission into the device's one order, then
 * Kafka). Writes, through the stream's DeviceSession: the cumulative acked_seq and the Rejects.
 *
 * Guarantee: acked_seq only covers events Kafka reported durable while this instance held the
 * device's admission lease; every event the device sent gets exactly one of: covered by acked_seq,
 * a Reject, or the stream's end with a status (then it is unacknowledged: README "Delivery contract").
 *
 * Flow control: at most gateway.inflightMax events of the stream wait for a verdict or a report;
 * past that the stream is paused, so HTTP/2 flow control pushes back on the device. Rejects wait for
 * a device that does not read, like results: past gateway.outboundMax of them the stream is paused
 * until the transport drains.
 */
import type { Config } from '../config.js';
import { ErrorCode } from '../errors.js';
import { metrics } from '../http/metrics.js';
import { grpcError } from './grpc-status.js';
import type { Event, Reject, Uplink } from './protocol.js';
import type { DeviceSession } from './session.js';
import { rateLimitedMessage, RejectCode, validateEvent } from './validate.js';

/** Where the outcome of one submitted event goes: exactly one call of either method per event. */
export interface EventSink {
  onRejected(reject: Reject): void;
  /** err null: durable and acknowledged; otherwise not acknowledged (it may still be durable). */
  onDurable(seq: number, err: Error | null): void;
}

export interface UplinkHost {
  readonly config: Config;
  readonly types: ReadonlySet<string>;
  /** Takes one event of the device's rate; false when it is over it (RATE_LIMITED). */
  admit(deviceId: string): boolean;
  /** Orders the event into its device's sequence and produces it; the outcome goes to the sink. */
  submit(sink: EventSink, deviceId: string, event: Event, receivedAtUs: number): void;
}

export interface UplinkIO {
  pause(): void;
  resume(): void;
}

export class UplinkSession implements EventSink {
  /** Events submitted whose verdict or delivery report has not come back. */
  pending = 0;
  /** Highest seq acknowledged on this stream (Downlink.acked_seq). */
  ackedSeq = 0;
  private ackSent = 0;
  private rejects: Reject[] = [];
  private paused = false;
  private halfClosed = false;

  constructor(
    private readonly host: UplinkHost,
    private readonly session: DeviceSession,
    private readonly io: UplinkIO,
    /** Nimbus: the device does not number its events; the engine does (seq 0 asks for the next). */
    private readonly assignSeqs = false,
  ) {}

  onUplink(uplink: Uplink): void {
    if (this.session.closed) return;
    const now = Date.now() * 1000;
    const cfg = this.host.config.gateway;
    const events = uplink.events ?? [];
    metrics.eventsReceived.inc(events.length);
    for (const event of events) {
      const reject = validateEvent(event, { streamDeviceId: this.session.deviceId, payloadBytesMax: cfg.payloadBytesMax, types: this.host.types, assignSeq: this.assignSeqs });
      if (reject !== null) {
        this.reject(reject);
        continue;
      }
      if (!this.host.admit(this.session.deviceId)) {
        this.reject({ seq: event.seq, code: RejectCode.RATE_LIMITED, message: rateLimitedMessage(cfg.deviceRatePerS) });
        continue;
      }
      this.pending++;
      this.host.submit(this, this.session.deviceId, event, now);
    }
    this.maybePause();
  }

  /** The device has nothing more to send: end once every event it sent has its outcome. */
  onHalfClose(): void {
    this.halfClosed = true;
    if (this.pending === 0) this.session.end(null);
  }

  onRejected(reject: Reject): void {
    this.pending--;
    if (this.session.closed) return;
    if (reject.code === RejectCode.UNAVAILABLE) {
      // Redis did not order the event in time: the event may still be taken (and then produced)
      // when Redis answers, so it is not refused; the stream ends, which leaves it unacknowledged
      // (at most one result), and the device resends it on its next stream.
      metrics.eventsRejected.inc({ code: reject.code });
      this.session.end(grpcError(ErrorCode.REDIS_UNAVAILABLE, `${reject.message}; reconnect and send the events after acked_seq ${this.ackedSeq} again (one refused as DUPLICATE is in)`));
      return;
    }
    this.reject(reject);
    this.settledOne();
  }

  onDurable(seq: number, err: Error | null): void {
    this.pending--;
    if (this.session.closed) return;
    if (err !== null) {
      metrics.produceFailures.inc();
      this.session.end(grpcError(ErrorCode.KAFKA_UNAVAILABLE, `event seq ${seq} was not acknowledged (${err.message}); reconnect and send the events after acked_seq ${this.ackedSeq} again (one refused as DUPLICATE is in)`));
      return;
    }
    metrics.eventsDurable.inc();
    if (seq > this.ackedSeq) this.ackedSeq = seq;
    this.session.markDirty();
    this.settledOne();
  }

  /** The acked_seq to send, if it moved since the last Downlink. */
  takeAck(): number | undefined {
    if (this.ackedSeq <= this.ackSent) return undefined;
    return (this.ackSent = this.ackedSeq);
  }

  takeRejects(): Reject[] | undefined {
    if (this.rejects.length === 0) return undefined;
    const r = this.rejects;
    this.rejects = [];
    return r;
  }

  /** The transport drained: read the uplink again if nothing else holds it. */
  onDrain(): void {
    this.maybeResume();
  }

  private reject(r: Reject): void {
    this.rejects.push(r);
    metrics.eventsRejected.inc({ code: r.code });
    this.session.markDirty();
  }

  private settledOne(): void {
    if (this.halfClosed && this.pending === 0) {
      this.session.end(null);
      return;
    }
    this.maybeResume();
  }

  /**
   * Rejects wait for a device that does not read, like results: a device sending bad events and
   * never reading would otherwise make them pile up without limit (each ~10-byte bad event costs a
   * Reject with its message). Past gateway.outboundMax of them the stream stops being read.
   */
  private holdsRejects(): boolean {
    return this.session.blocked && this.rejects.length >= this.host.config.gateway.outboundMax;
  }

  private maybePause(): void {
    if (!this.paused && (this.pending >= this.host.config.gateway.inflightMax || this.holdsRejects())) {
      this.paused = true;
      this.io.pause();
    }
  }

  /** Reads the uplink again once at most half of gateway.inflightMax wait and no rejects are held. */
  private maybeResume(): void {
    if (this.paused && this.pending <= this.host.config.gateway.inflightMax / 2 && !this.holdsRejects()) {
      this.paused = false;
      this.io.resume();
    }
  }
}
