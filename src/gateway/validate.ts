/**
 * What the gateway refuses, per event, before anything is produced. The codes are a stable public
 * table: clients key on them; never rename or reuse one.
 */
import type { Event, Reject } from './protocol.js';

export const RejectCode = {
  /** `type` names no processor (see `stratus run --help` for the list). */
  UNKNOWN_TYPE: 'UNKNOWN_TYPE',
  /** seq is 0, above 2^53-1, or not an integer. */
  INVALID_SEQ: 'INVALID_SEQ',
  /**
   * seq is not above the device's last seq (Reject.last_seq), and an event with this seq was taken
   * and is durable. Nothing new is produced. A resend: done, its result comes once. A device whose
   * counter restarted (new readings under old seqs): continue from last_seq + 1.
   */
  DUPLICATE: 'DUPLICATE',
  /**
   * seq is not above the device's last seq (Reject.last_seq) and was never taken: a device's events
   * are taken in seq order across all its calls and streams, so it never can be. Nothing is produced;
   * send the reading again with seq last_seq + 1.
   */
  OUT_OF_ORDER: 'OUT_OF_ORDER',
  /** Another call of this device on another gateway instance has events waiting for Kafka; send again shortly. */
  BUSY: 'BUSY',
  /**
   * Internal: the engine could not order the event (Redis did not answer in time). Never sent as a
   * Reject: the stream or call ends with status UNAVAILABLE (the event may still be taken).
   */
  UNAVAILABLE: 'UNAVAILABLE',
  /** value is NaN or +-Infinity. */
  INVALID_VALUE: 'INVALID_VALUE',
  /** payload is larger than gateway.payloadBytesMax. */
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  /** device_id differs from the stream's x-device-id (Connect) or the call's token, or is missing (Ingest, IngestBatch). */
  DEVICE_MISMATCH: 'DEVICE_MISMATCH',
  /** The engine sheds the event (Kafka producer queue full, or events wait for Kafka over gateway.ackWaitMaxMs); send it again later. */
  OVERLOADED: 'OVERLOADED',
  /** The device is over its rate (gateway.deviceRatePerS, token bucket of gateway.deviceBurstMax); send it again later. */
  RATE_LIMITED: 'RATE_LIMITED',
} as const;
export type RejectCode = (typeof RejectCode)[keyof typeof RejectCode];

export const rateLimitedMessage = (ratePerS: number): string => `device is over its rate of ${ratePerS} events/s (gateway.deviceRatePerS); send this event again later`;

export const OVERLOADED_MESSAGE = 'the engine is overloaded (its Kafka producer queue is full, or events wait for Kafka longer than gateway.ackWaitMaxMs); send this event again later';

export interface ValidationContext {
  /** The stream's device (Connect; Ingest and IngestBatch when auth is on: the token's); null where each event names its own. */
  streamDeviceId: string | null;
  payloadBytesMax: number;
  types: ReadonlySet<string>;
  /** The engine numbers the events (Nimbus): seq is not the device's and is not checked. */
  assignSeq?: boolean;
}

const DEVICE_ID_BYTES_MAX = 256;

/** null when the event is acceptable, else the Reject to send. */
export function validateEvent(e: Event, ctx: ValidationContext): Reject | null {
  const seq = e.seq ?? 0;
  const reject = (code: RejectCode, message: string): Reject => ({ seq: Number.isSafeInteger(seq) ? seq : 0, code, message, lastSeq: 0 });
  const deviceId = e.deviceId ?? '';
  if (ctx.streamDeviceId !== null) {
    if (deviceId !== '' && deviceId !== ctx.streamDeviceId) {
      return reject(RejectCode.DEVICE_MISMATCH, `device_id "${deviceId.slice(0, 64)}" differs from this stream's device "${ctx.streamDeviceId}" (its x-device-id or token); a device sends only as itself: leave it empty or send the same id`);
    }
  } else if (deviceId === '' || Buffer.byteLength(deviceId) > DEVICE_ID_BYTES_MAX) {
    return reject(RejectCode.DEVICE_MISMATCH, `device_id is required here and must be 1..${DEVICE_ID_BYTES_MAX} bytes`);
  }
  if (ctx.assignSeq !== true && (!Number.isSafeInteger(seq) || seq <= 0)) {
    return reject(RejectCode.INVALID_SEQ, `seq must be an integer from 1 to 2^53-1 (got ${seq > Number.MAX_SAFE_INTEGER ? 'a value above 2^53-1' : seq})`);
  }
  const value = e.value ?? 0;
  if (!Number.isFinite(value)) {
    return reject(RejectCode.INVALID_VALUE, `value must be a finite number (got ${value})`);
  }
  if (!ctx.types.has(e.type ?? '')) {
    return reject(RejectCode.UNKNOWN_TYPE, `type "${(e.type ?? '').slice(0, 64)}" names no processor; known: ${[...ctx.types].join(', ')}`);
  }
  const payloadLen = e.payload?.length ?? 0;
  if (payloadLen > ctx.payloadBytesMax) {
    return reject(RejectCode.PAYLOAD_TOO_LARGE, `payload is ${payloadLen} bytes; the limit is ${ctx.payloadBytesMax} (gateway.payloadBytesMax)`);
  }
  return null;
}
