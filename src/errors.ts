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
