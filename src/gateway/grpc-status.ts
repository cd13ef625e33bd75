/**
 * The one mapping from errors to gRPC status (CONVENTIONS.md "Errors"). Every place that ends a
 * call or stream with a status builds it here: grpcError(ErrorCode.X, details), or
 * toGrpcStatus(err) for an error caught. The details are the StratusError's message, exactly as
 * clients and tests match on them. The SSE `event: end` names the same status (statusName).
 *
 * An error that is not a StratusError is a bug: it maps to INTERNAL with a generic text, never its
 * message or stack.
 */
import { status } from '@grpc/grpc-js';
import { ErrorCode, isStratusError, StratusError } from '../errors.js';

/** What a call or stream ends with: a gRPC status code and its details text. */
export interface GrpcStatus {
  code: status;
  details: string;
}

/** The details of an error that is not a StratusError (nothing of it is sent). */
export const INTERNAL_DETAILS = 'internal error';

/** ErrorCode -> gRPC status. Total: the type makes a new ErrorCode without an entry a build error. */
const GRPC_STATUS: { readonly [C in ErrorCode]: status } = {
  [ErrorCode.CONFIG_INVALID]: status.FAILED_PRECONDITION,
  [ErrorCode.USAGE]: status.INVALID_ARGUMENT,
  [ErrorCode.STACK_PROGRAM_MISSING]: status.FAILED_PRECONDITION,
  [ErrorCode.STACK_NOT_SET_UP]: status.FAILED_PRECONDITION,
  [ErrorCode.STACK_PORT_TAKEN]: status.FAILED_PRECONDITION,
  [ErrorCode.STACK_START_FAILED]: status.UNAVAILABLE,
  [ErrorCode.STACK_DATA_CORRUPT]: status.FAILED_PRECONDITION,
  [ErrorCode.KAFKA_UNAVAILABLE]: status.UNAVAILABLE,
  [ErrorCode.KAFKA_TOPIC_MISMATCH]: status.FAILED_PRECONDITION,
  [ErrorCode.REDIS_UNAVAILABLE]: status.UNAVAILABLE,
  [ErrorCode.REDIS_POLICY_UNSAFE]: status.FAILED_PRECONDITION,
  [ErrorCode.WIRE_CORRUPT]: status.DATA_LOSS,
  [ErrorCode.STREAM_SUPERSEDED]: status.ABORTED,
  [ErrorCode.DEVICE_NOT_READING]: status.RESOURCE_EXHAUSTED,
  [ErrorCode.DEVICE_BEHIND]: status.RESOURCE_EXHAUSTED,
  [ErrorCode.INSTANCE_FULL]: status.RESOURCE_EXHAUSTED,
  [ErrorCode.CALL_DEVICES_MAX]: status.RESOURCE_EXHAUSTED,
  [ErrorCode.QUEUE_FULL]: status.RESOURCE_EXHAUSTED,
  [ErrorCode.SHUTTING_DOWN]: status.UNAVAILABLE,
  [ErrorCode.METADATA_INVALID]: status.INVALID_ARGUMENT,
  [ErrorCode.REQUEST_INVALID]: status.INVALID_ARGUMENT,
  [ErrorCode.UNAUTHENTICATED]: status.UNAUTHENTICATED,
  [ErrorCode.DEVICE_FORBIDDEN]: status.PERMISSION_DENIED,
  [ErrorCode.CALLS_MAX]: status.RESOURCE_EXHAUSTED,
  [ErrorCode.MEMORY_BUDGET]: status.RESOURCE_EXHAUSTED,
  [ErrorCode.INGEST_RATE]: status.RESOURCE_EXHAUSTED,
  // Start-up conditions of the engine's own ports: never sent to a client, mapped for totality.
  [ErrorCode.PORT_IN_USE]: status.FAILED_PRECONDITION,
  [ErrorCode.PORT_DENIED]: status.FAILED_PRECONDITION,
  [ErrorCode.SHARD_UNSUPPORTED]: status.FAILED_PRECONDITION,
  // The archive: never on a gRPC call today (history is HTTP), mapped for totality.
  [ErrorCode.ARCHIVE_UNAVAILABLE]: status.UNAVAILABLE,
  [ErrorCode.ARCHIVE_SCHEMA_UNKNOWN]: status.FAILED_PRECONDITION,
  [ErrorCode.ARCHIVE_OFF]: status.FAILED_PRECONDITION,
};

/**
 * Codes grpcError marks retryable: the same call may succeed later without the client changing
 * anything (reconnect, resend later or elsewhere).
 */
export const RETRYABLE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCode.KAFKA_UNAVAILABLE,
  ErrorCode.REDIS_UNAVAILABLE,
  ErrorCode.DEVICE_NOT_READING,
  ErrorCode.DEVICE_BEHIND,
  ErrorCode.INSTANCE_FULL,
  ErrorCode.QUEUE_FULL,
  ErrorCode.SHUTTING_DOWN,
  ErrorCode.CALLS_MAX,
  ErrorCode.MEMORY_BUDGET,
  ErrorCode.INGEST_RATE,
]);

/** The status a call ends with for err. */
export function toGrpcStatus(err: StratusError | unknown): GrpcStatus {
  if (!isStratusError(err)) return { code: status.INTERNAL, details: INTERNAL_DETAILS };
  return { code: GRPC_STATUS[err.code], details: err.message };
}

/**
 * The status for a condition this side ends a call with; details is sent as it is. Built without
 * an Error: capturing a stack trace per refusal cost ~8 µs, and refusals come by the thousand
 * under abuse (the same status toGrpcStatus gives for StratusError(code, details)).
 */
export function grpcError(code: ErrorCode, details: string): GrpcStatus {
  return { code: GRPC_STATUS[code], details };
}

/** The status's name ("ABORTED"), as the SSE `event: end` and metrics labels carry it. */
export function statusName(code: status): string {
  return status[code] ?? String(code);
}
