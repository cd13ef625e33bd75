/**
 * Operating conditions (bad config, a port taken, Kafka down, overload) are StratusError with a
 * stable code and a `retryable` flag. Programmer errors are node:assert failures and crash.
 *
 * Codes are never reused or renamed: clients, logs and dashboards key on them.
 * Mapping to gRPC status and HTTP status lives in one module each (gateway/, http/).
 */

export const ErrorCode = {
  /** A configuration value is missing, malformed or out of range. */
  CONFIG_INVALID: 'STRATUS_CONFIG_INVALID',
  /** A command-line flag or argument the command does not take. */
  USAGE: 'STRATUS_USAGE',
  /** A program the local stack needs (java, redis-server) is not installed. */
  STACK_PROGRAM_MISSING: 'STRATUS_STACK_PROGRAM_MISSING',
  /** The Kafka jars have not been fetched (setup has not run). */
  STACK_NOT_SET_UP: 'STRATUS_STACK_NOT_SET_UP',
  /** A port the local stack wants is held by a process Stratus did not start. */
  STACK_PORT_TAKEN: 'STRATUS_STACK_PORT_TAKEN',
  /** A local service did not become ready in time or exited while starting. */
  STACK_START_FAILED: 'STRATUS_STACK_START_FAILED',
  /** The local stack's data dir cannot be used as it is. */
  STACK_DATA_CORRUPT: 'STRATUS_STACK_DATA_CORRUPT',
  /** A Kafka broker did not answer, or an admin or produce/consume call failed. */
  KAFKA_UNAVAILABLE: 'STRATUS_KAFKA_UNAVAILABLE',
  /** A topic exists with a layout other than the one configured. */
  KAFKA_TOPIC_MISMATCH: 'STRATUS_KAFKA_TOPIC_MISMATCH',
  /** Redis did not answer or refused a command. */
  REDIS_UNAVAILABLE: 'STRATUS_REDIS_UNAVAILABLE',
  /** Redis is set to evict keys (maxmemory-policy allkeys-* or volatile-*): device state would be lost silently. */
  REDIS_POLICY_UNSAFE: 'STRATUS_REDIS_POLICY_UNSAFE',
  /** A Kafka or Redis value is not in the format this version writes (truncated, wrong version). */
  WIRE_CORRUPT: 'STRATUS_WIRE_CORRUPT',
  /** Another stream (this or another instance, gRPC or SSE) took over the device; this one is ended. */
  STREAM_SUPERSEDED: 'STRATUS_STREAM_SUPERSEDED',
  /** The device does not take its results (gateway.outboundMax, gateway.stallTimeoutMs); they stay buffered. Retryable. */
  DEVICE_NOT_READING: 'STRATUS_DEVICE_NOT_READING',
  /** The device fell more than redis.deviceBufferMax results behind and some were dropped. Retryable. */
  DEVICE_BEHIND: 'STRATUS_DEVICE_BEHIND',
  /** This gateway instance holds gateway.devicesMax streams. Retryable (later, or another instance). */
  INSTANCE_FULL: 'STRATUS_INSTANCE_FULL',
  /** One call names more devices than gateway.devicesMax allows; the call must be split. */
  CALL_DEVICES_MAX: 'STRATUS_CALL_DEVICES_MAX',
  /** A queue is at queue.lengthMax; events after the stored ones were not taken. Retryable. */
  QUEUE_FULL: 'STRATUS_QUEUE_FULL',
  /** The server is shutting down; reconnect (to another instance). Retryable. */
  SHUTTING_DOWN: 'STRATUS_SHUTTING_DOWN',
  /** A call's metadata entry is missing or malformed (device id, cursor, client id, queue name). */
  METADATA_INVALID: 'STRATUS_METADATA_INVALID',
  /** A request's content is refused as it is (batch size, a malformed event or metric). */
  REQUEST_INVALID: 'STRATUS_REQUEST_INVALID',
  /** The call's bearer token is missing, malformed, forged or expired. */
  UNAUTHENTICATED: 'STRATUS_UNAUTHENTICATED',
  /** The token is valid but for another device than the one the call acts for. */
  DEVICE_FORBIDDEN: 'STRATUS_DEVICE_FORBIDDEN',
  /** A service's calls in progress are at their limit (gateway.ingestCallsMax, streams.callsMax, ...). Retryable. */
  CALLS_MAX: 'STRATUS_CALLS_MAX',
  /** The process is past its memory budget (rssMaxMb) and refuses new work. Retryable. */
  MEMORY_BUDGET: 'STRATUS_MEMORY_BUDGET',
  /** A bulk side path (IngestMetrics) is over its per-instance rate budget (streams.metricsPerSecondMax). Retryable. */
  INGEST_RATE: 'STRATUS_INGEST_RATE',
  /** A port the engine listens on (grpc.port, http.port) is held by another process. */
  PORT_IN_USE: 'STRATUS_PORT_IN_USE',
  /** A port the engine listens on needs privileges the process lacks (a port below 1024: EACCES). */
  PORT_DENIED: 'STRATUS_PORT_DENIED',
  /** The runtime cannot shard the gateway the way asked (`run --shard threads` needs net's reusePort). */
  SHARD_UNSUPPORTED: 'STRATUS_SHARD_UNSUPPORTED',
  /** The archive's store (archive.store) did not answer, is full or refused a write for a reason a retry may change. Retryable. */
  ARCHIVE_UNAVAILABLE: 'STRATUS_ARCHIVE_UNAVAILABLE',
  /** The archive's database holds a schema version this Stratus does not know (written by a newer one). */
  ARCHIVE_SCHEMA_UNKNOWN: 'STRATUS_ARCHIVE_SCHEMA_UNKNOWN',
  /** An archive is asked for (the archiver role, `stratus query`, history) but archive.store is off. */
  ARCHIVE_OFF: 'STRATUS_ARCHIVE_OFF',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface StratusErrorOptions {
  /** True when the same call may succeed later without anything being changed. */
  retryable?: boolean;
  cause?: unknown;
}

export class StratusError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: StratusErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StratusError';
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

export function isStratusError(err: unknown): err is StratusError {
  return err instanceof StratusError;
}
