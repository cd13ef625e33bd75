/**
 * The one place a KafkaJS-style client of @confluentinc/kafka-javascript is built, and how its
 * failures read to a user.
 *
 * src/kafka/ is the only importer of @confluentinc/kafka-javascript. The admin calls and the probes
 * (admin.ts, round-trip.ts) use its KafkaJS-compatible promise API, built here; the hot-path
 * producer and consumer (producer.ts, consumer.ts) use the native API without a promise per message.
 *
 * Compatibility mode changes librdkafka's defaults. Whenever a `kafkaJS` block is present
 * (lib/kafkajs/_common.js kafkaJSToRdKafkaConfig and the per-client converters) the library sets:
 *   socket.connection.setup.timeout.ms = 11000, socket.timeout.ms = 30000,
 *   retry.backoff.ms = 300, retry.backoff.max.ms = 30000, log_level = 6 (info);
 *   producers: retries = 5 (even when idempotent), partitioner = murmur2_random;
 *   consumers: allow.auto.create.topics = true, enable.auto.commit = true,
 *   partition.assignment.strategy = roundrobin, session.timeout.ms = 30000.
 * Options given at the top level are librdkafka names and override those (Object.assign after the
 * conversion), so every value that matters is spelled out where a client is built.
 */
import KafkaJavascript from '@confluentinc/kafka-javascript';
import type { KafkaJS } from '@confluentinc/kafka-javascript';
import type { Config } from '../../config.js';
import type { KafkaClientHealth } from '../../http/health.js';
import { errorText, RateLimitedLog, roleLog } from '../../log.js';

const { Kafka, logLevel, ErrorCodes } = KafkaJavascript.KafkaJS;

/** librdkafka's error codes (negative: raised in the client; positive: answered by a broker). */
export const KafkaErrorCodes = ErrorCodes;

/**
 * librdkafka logs every refused connection while a broker is down or starting ("Connect to
 * ipv4#127.0.0.1:9092 failed: Connection refused"), and the KafkaJS layer logs each `error` event
 * through the same logger; with the library's DefaultLogger that is console.error on every
 * reconnect. Here they go to the `kafka` role's logger at debug, whatever level the library gave
 * them: a refused connection repeats every reconnect (once a second while a broker is down), and the
 * calls that matter fail with a typed error that names the broker and the fix. Kafka lost / back is
 * logged once per change by the producers' and consumers' health (src/http/health.ts).
 */
function kafkaLogger(clientId: string): KafkaJS.Logger {
  const kafka = roleLog('kafka');
  const write = (level: string) => (message: string, extra?: object) => {
    kafka.debug({ client: clientId, libLevel: level, ...extra }, message);
  };
  const logger: KafkaJS.Logger = {
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    debug: write('debug'),
    namespace: () => logger,
    // The library calls this with the level derived from `logLevel` below; the filtering is pino's
    // (the kafka role's level), so there is nothing to set.
    setLogLevel: () => {},
  };
  return logger;
}

/**
 * librdkafka's own errors and log lines of the processes' native clients, one limiter for all: at
 * most 5 lines per minute per client and code (a broker down repeats its error on every reconnect,
 * once a second). Lost / back is logged once per change by the health (src/http/health.ts).
 */
const librdkafkaLog = new RateLimitedLog(roleLog('kafka'), { linesMax: 5, intervalMs: 60_000 });

/** The part of a native client (producer or consumer) that emits librdkafka's events. */
interface NativeEvents {
  on(event: 'event.error', listener: (err: { code?: number; message?: string; isFatal?: boolean }) => void): unknown;
  on(event: 'event.log', listener: (log: { severity: number; fac: string; message: string }) => void): unknown;
}

/**
 * Routes a native client's `event.error` to its health (/readyz, Kafka lost / back) and to the log,
 * and its `event.log` (librdkafka's log lines at log_level, 3 = errors unless logLevel is debug)
 * to the log: severity 0-4 (emerg..warning) as warn, the rest as debug; both rate-limited.
 */
export function librdkafkaEvents(native: NativeEvents, clientId: string, health: KafkaClientHealth): void {
  native.on('event.error', (err) => {
    health.error(err);
    librdkafkaLog.warn(`${clientId}\0error\0${err.code ?? ''}\0${err.message ?? ''}`, { client: clientId, code: err.code, err: err.message }, 'librdkafka error');
  });
  native.on('event.log', (l) => {
    if (l.severity <= 4) librdkafkaLog.warn(`${clientId}\0log\0${l.fac}`, { client: clientId, severity: l.severity, fac: l.fac }, l.message);
    else roleLog('kafka').debug({ client: clientId, severity: l.severity, fac: l.fac }, l.message);
  });
}

/**
 * A KafkaJS-compatible client for the brokers in config.kafka.brokers. Producers, consumers and
 * admin clients made from it share these options; each adds its own where it is built.
 */
export function kafkaClient(config: Config, clientId: string): KafkaJS.Kafka {
  return new Kafka({
    kafkaJS: {
      brokers: [...config.kafka.brokers],
      clientId,
      logger: kafkaLogger(clientId),
      // Sets librdkafka's log_level: 7 (debug) or 0, so that outside debug librdkafka does not even
      // format log lines for a logger that drops them. (The KAFKAJS_LOG_LEVEL environment variable
      // overrides this inside the library; the logger above still decides what is printed.)
      logLevel: config.logLevel === 'debug' ? logLevel.DEBUG : logLevel.NOTHING,
    },
    // A broker that does not complete the TCP connect in 10 s counts as down for this attempt; a
    // firewalled address then fails each attempt in 10 s rather than hanging.
    'socket.connection.setup.timeout.ms': 10_000,
    // A request without an answer for 30 s fails and is retried (librdkafka default: 60 s).
    'socket.timeout.ms': 30_000,
    // Reconnect after 100 ms, doubling up to 1 s (librdkafka: up to 10 s): a broker that has just
    // started is noticed within a second, which is what `stack up` and waitForKafka wait for.
    'reconnect.backoff.ms': 100,
    'reconnect.backoff.max.ms': 1000,
    // Request retries back off 100 ms doubling to 1 s (librdkafka's own values; compatibility mode
    // would make it 300 ms to 30 s, long enough to look like a hang).
    'retry.backoff.ms': 100,
    'retry.backoff.max.ms': 1000,
    // Topics are created explicitly with their partition counts (admin.ts ensureTopics), never by
    // a consumer subscribing to a name; compatibility mode turns this on for consumers.
    'allow.auto.create.topics': false,
  });
}

/**
 * One admin client for the duration of fn, destroyed afterwards whatever fn did. The admin's
 * `connect()` only creates the librdkafka handle (no network; it resolves at once even with every
 * broker down), and its `disconnect()` destroys it synchronously; a handle left connected keeps
 * the process alive.
 */
export async function withAdmin<T>(config: Config, clientId: string, fn: (admin: KafkaJS.Admin) => Promise<T>): Promise<T> {
  const admin = kafkaClient(config, clientId).admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    // disconnect() destroys the handle synchronously; a failure means it was already gone, and an
    // error here must not hide fn's own result or error.
    await admin.disconnect().catch((err: unknown) => roleLog('kafka').debug({ client: clientId, err: errorText(err) }, 'admin disconnect failed'));
  }
}

/** The librdkafka error code a KafkaJS error carries, if any. */
export function kafkaErrorCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/**
 * Local conditions (transport failure, timeout, all brokers down) may pass without anything being
 * changed; a broker's refusal (invalid partitions, authorization, policy) will not, and neither
 * will a wrong argument or state on our side.
 */
export function isRetryable(err: unknown): boolean {
  const nested = (err as { errors?: unknown[] } | null)?.errors;
  if (Array.isArray(nested) && nested.length > 0) return nested.every(isRetryable);
  const code = kafkaErrorCode(err);
  if (code === undefined) return true;
  if (code < 0) return code !== ErrorCodes.ERR__INVALID_ARG && code !== ErrorCodes.ERR__STATE && code !== ErrorCodes.ERR__NOT_IMPLEMENTED && code !== ErrorCodes.ERR__FATAL;
  const retryableBrokerCodes: readonly number[] = [
    ErrorCodes.ERR_REQUEST_TIMED_OUT,
    ErrorCodes.ERR_LEADER_NOT_AVAILABLE,
    ErrorCodes.ERR_NOT_LEADER_FOR_PARTITION,
    ErrorCodes.ERR_NOT_CONTROLLER,
    ErrorCodes.ERR_COORDINATOR_NOT_AVAILABLE,
    ErrorCodes.ERR_NOT_COORDINATOR,
    ErrorCodes.ERR_COORDINATOR_LOAD_IN_PROGRESS,
    ErrorCodes.ERR_NOT_ENOUGH_REPLICAS,
    ErrorCodes.ERR_UNKNOWN_TOPIC_OR_PART,
  ];
  return retryableBrokerCodes.includes(code);
}

/** The message of an error, with the messages of an aggregate's parts (createTopics reports one per topic). */
export function kafkaErrorDetail(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const nested = (err as { errors?: unknown[] }).errors;
  if (Array.isArray(nested) && nested.length > 0) {
    return nested.map((e) => `${(e as { topic?: string }).topic ? `${(e as { topic: string }).topic}: ` : ''}${kafkaErrorDetail(e)}`).join('; ');
  }
  return err.message;
}
