/** How a Kafka failure reads to a user, whichever client library met it. */
import type { Config } from '../config.js';
import { ErrorCode, StratusError } from '../errors.js';
import { KafkaClientError } from './types.js';

/** The message of an error, with its cause's when it wraps one. */
function detail(err: unknown): string {
  if (err === null || err === undefined) return 'no detail';
  if (!(err instanceof Error)) return String(err);
  return err.message;
}

/**
 * KAFKA_UNAVAILABLE naming the brokers, what failed and the fix. `what` completes the sentence
 * "Kafka at <brokers> ...". Retryable unless the cause is a KafkaClientError that says a retry
 * will not change it.
 */
export function kafkaUnavailable(config: Config, what: string, cause: unknown): StratusError {
  const brokers = config.kafka.brokers.join(',');
  return new StratusError(
    ErrorCode.KAFKA_UNAVAILABLE,
    `Kafka at ${brokers} ${what} (${detail(cause)}); start the local one with \`npx stratus stack up\` ` +
      '(`npx stratus stack status` tells whether it runs), or set kafka.brokers (STRATUS_KAFKA_BROKERS, --kafka-brokers) to where it runs',
    { retryable: cause instanceof KafkaClientError ? cause.retryable : true, cause },
  );
}
