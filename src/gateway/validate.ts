/**
 * What the gateway refuses, per event, before anything is produced. The codes are a stable public
 * table: clients key on them; never rename or reuse one.
 */
import type { Event, Reject } from './protocol.js';

export const RejectCode = {
  /** `type` names no processor (see `stratus run --help` for the list). */
  UNKNOWN_TYPE: 'UNKNOWN_TYPE',
  /** seq is 0, above 2^53-1, not an integer, or not above the last seq this stream accepted. */
  INVALID_SEQ: 'INVALID_SEQ',
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
  /** Highest seq accepted for this device on this stream; 0 before the first. */
  lastSeq: number;
  payloadBytesMax: number;
  types: ReadonlySet<string>;
}

const DEVICE_ID_BYTES_MAX = 256;

/** null when the event is acceptable, else the Reject to send. */
export function validateEvent(e: Event, ctx: ValidationContext): Reject | null {
  const seq = e.seq ?? 0;
  const reject = (code: RejectCode, message: string): Reject => ({ seq: Number.isSafeInteger(seq) ? seq : 0, code, message });
  const deviceId = e.deviceId ?? '';
  if (ctx.streamDeviceId !== null) {
    if (deviceId !== '' && deviceId !== ctx.streamDeviceId) {
      return reject(RejectCode.DEVICE_MISMATCH, `device_id "${deviceId.slice(0, 64)}" differs from this stream's device "${ctx.streamDeviceId}" (its x-device-id or token); a device sends only as itself: leave it empty or send the same id`);
    }
  } else if (deviceId === '' || Buffer.byteLength(deviceId) > DEVICE_ID_BYTES_MAX) {
    return reject(RejectCode.DEVICE_MISMATCH, `device_id is required here and must be 1..${DEVICE_ID_BYTES_MAX} bytes`);
  }
  if (!Number.isSafeInteger(seq) || seq <= 0) {
    return reject(RejectCode.INVALID_SEQ, `seq must be an integer from 1 to 2^53-1 (got ${seq > Number.MAX_SAFE_INTEGER ? 'a value above 2^53-1' : seq})`);
  }
  if (seq <= ctx.lastSeq) {
    return reject(RejectCode.INVALID_SEQ, `seq ${seq} is not above ${ctx.lastSeq}, the last seq accepted on this stream; seqs must increase`);
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
