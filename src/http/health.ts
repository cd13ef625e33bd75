/**
 * The process's health registry, which /readyz reads (readiness.ts).
 *
 * Every long-lived Kafka and Redis client registers a check when it is built and unregisters when
 * it is closed: the producers and consumers (src/kafka/native/ and platformatic/) and the Redis
 * clients that reconnect (src/redis/client.ts createRedis). A check reads only state its client
 * already keeps (ioredis's status; librdkafka's error events and statistics): nothing is sent,
 * built or awaited per probe, so /readyz answers at once however hard it is polled and whatever
 * Kafka or Redis are doing.
 *
 * The same transitions are logged once per change for the whole process (role `kafka`): "Kafka
 * lost" when the first client's brokers are all down, "Kafka back" when the last one has a broker
 * up again; a fatal error once per client.
 */
import { OutageLog, roleLog } from '../log.js';

export interface HealthCheck {
  /** Names the client in a 503 body: `Redis client stratus-x-gateway at 127.0.0.1:6379`. */
  readonly name: string;
  /** null when healthy, else why not, one line. Reads state only: no I/O. */
  problem(): string | null;
  /** The server the client talks to, for stratus_dependency_up; absent for the process's own checks. */
  readonly dependency?: Dependency;
  /**
   * true: a problem of this check is reported (/readyz's body, stratus_dependency_up) but does not
   * make the process unready. The archive store in a process that also takes device traffic: its
   * outage costs lag, not events, and must not take the gateway out of a load balancer.
   */
  readonly degraded?: boolean;
}

export const DEPENDENCIES = ['kafka', 'redis', 'archive'] as const;
export type Dependency = (typeof DEPENDENCIES)[number];

/** Insertion order: the 503 body names the oldest failing client. */
const checks = new Set<HealthCheck>();

/** Adds a check; returns its removal (idempotent). */
export function registerHealth(check: HealthCheck): () => void {
  checks.add(check);
  return () => {
    checks.delete(check);
  };
}

/** How many checks are registered. */
export function healthChecksRegistered(): number {
  return checks.size;
}

/** `<name>: <why>` of the first failing check (degraded ones aside), or null when every check passes. */
export function healthProblem(): string | null {
  for (const c of checks) {
    if (c.degraded === true) continue;
    const why = c.problem();
    if (why !== null) return `${c.name}: ${why}`;
  }
  return null;
}

/** `<name>: <why>` of the first failing degraded-only check, or null. */
export function healthDegraded(): string | null {
  for (const c of checks) {
    if (c.degraded !== true) continue;
    const why = c.problem();
    if (why !== null) return `${c.name}: ${why}`;
  }
  return null;
}

/**
 * 1 when every registered client of `dependency` is healthy, 0 when one is not, null when the
 * process has none (stratus_dependency_up, read at scrape time).
 */
export function dependencyUp(dependency: Dependency): 0 | 1 | null {
  let seen = false;
  for (const c of checks) {
    if (c.dependency !== dependency) continue;
    if (c.problem() !== null) return 0;
    seen = true;
  }
  return seen ? 1 : null;
}

/** The part of librdkafka's statistics JSON (STATISTICS.md) this reads. */
export interface KafkaStatsBrokers {
  brokers?: Record<string, { state?: string; nodeid?: number }>;
}

/** librdkafka's code for "all broker connections are down", raised on the client's error event. */
export const ERR__ALL_BROKERS_DOWN = -187;
/** librdkafka's code for a fatal error: the client can do nothing more and must be rebuilt. */
export const ERR__FATAL = -150;

/**
 * States a broker connection passes through while it is not usable (librdkafka's
 * rd_kafka_broker_state_names); INIT (never connected, sparse connections) is not one of them.
 */
const BROKER_NOT_UP = new Set(['DOWN', 'TRY_CONNECT', 'CONNECT', 'SSL_HANDSHAKE', 'AUTH_LEGACY', 'AUTH', 'AUTH_HANDSHAKE', 'AUTH_REQ', 'REAUTH']);

/**
 * What one native Kafka client (producer or consumer) last told about itself, fed by its owner
 * from librdkafka's events:
 *   connected()      the connect callback succeeded (metadata fetched: a broker is up)
 *   error(err)       'event.error': ALL_BROKERS_DOWN marks it down; a fatal error sticks
 *   stats(json)      'event.stats' (statistics.interval.ms): any broker UP clears down; none UP
 *                    while some are connecting or down marks it down
 *   (silence)        no statistics for silentMs: the client is not polled (a stalled consume loop)
 * The @confluentinc/kafka-javascript 1.10 binding hands 'event.error' over as the message of
 * librdkafka's code only (`code` is -1, `isFatal` absent; src/callbacks.cc), so the two codes
 * that matter are also recognised by their messages ("Local: All broker connections are down",
 * "Local: Fatal error", lower-cased by lib/error.js).
 */
/** Kafka lost / back, once per change for every client of the process together. */
const kafkaOutage = new OutageLog(roleLog('kafka'), 'Kafka');

export class KafkaClientHealth implements HealthCheck {
  readonly dependency = 'kafka';
  /** Invariant: fatal !== null once a fatal error was seen; it is never cleared (the client is dead). */
  private fatal: string | null = null;
  private up = false;
  private downSince = 0;
  private downWhy = 'connecting';
  /** When librdkafka last spoke (connect, statistics): a consumer's events come only while it is polled. */
  private heardAt = 0;

  /**
   * `silentMs`: with no statistics for this long (10 intervals of 1 s by default) the client is
   * reported as not polled: a consumer whose loop has stalled, whatever it last said.
   */
  constructor(
    readonly name: string,
    private readonly silentMs = 10_000,
  ) {}

  connected(now: number = Date.now()): void {
    this.up = true;
    this.heardAt = now;
    kafkaOutage.back(this, { client: this.name });
  }

  /** The client was disconnected on purpose: its state no longer counts for "Kafka back". */
  closed(): void {
    kafkaOutage.forget(this);
  }

  error(err: { code?: number; message?: string; isFatal?: boolean }): void {
    const message = err.message ?? '';
    if (err.isFatal === true || err.code === ERR__FATAL || /fatal error/i.test(message)) {
      if (this.fatal === null) roleLog('kafka').error({ client: this.name, err: message, code: err.code }, 'Kafka client fatal error; the process must be restarted');
      this.fatal ??= message === '' ? 'fatal error' : message;
    } else if (err.code === ERR__ALL_BROKERS_DOWN || /all broker connections are down/i.test(message)) {
      this.markDown('all broker connections are down');
    }
  }

  /** A consume or delivery error carrying librdkafka's code (those keep it). */
  failed(err: { code?: number; message?: string }): void {
    if (err.code === ERR__FATAL || err.code === ERR__ALL_BROKERS_DOWN) this.error(err);
  }

  stats(stats: KafkaStatsBrokers, now: number = Date.now()): void {
    this.heardAt = now;
    const states = Object.values(stats.brokers ?? {}).map((b) => b.state ?? '');
    if (states.includes('UP')) {
      this.up = true;
      kafkaOutage.back(this, { client: this.name });
    } else if (states.some((s) => BROKER_NOT_UP.has(s))) this.markDown('no broker connection is up');
  }

  /**
   * For a client without librdkafka's statistics (@platformatic/kafka): a broker answered (a
   * request, a fetch, a delivery). Counts as "heard from" and as connected.
   */
  heard(now: number = Date.now()): void {
    this.heardAt = now;
    if (!this.up) {
      this.up = true;
      kafkaOutage.back(this, { client: this.name });
    }
  }

  /** For a client without librdkafka's statistics: no broker connection works (why: for /readyz). */
  down(why: string): void {
    this.markDown(why);
  }

  /** For a client without librdkafka's statistics: a failure it cannot recover from (it must be replaced). */
  fatalError(message: string): void {
    this.error({ message, isFatal: true });
  }

  problem(now: number = Date.now()): string | null {
    if (this.fatal !== null) return `fatal error, the client must be restarted (${this.fatal})`;
    if (this.heardAt !== 0 && now - this.heardAt > this.silentMs) return `no statistics from librdkafka for ${Math.round((now - this.heardAt) / 1000)} s (the client is not being polled)`;
    if (this.up) return null;
    return this.downSince === 0 ? this.downWhy : `${this.downWhy} (for ${Math.round((now - this.downSince) / 1000)} s)`;
  }

  private markDown(why: string): void {
    if (this.up || this.downSince === 0) this.downSince = Date.now();
    this.heardAt = Date.now();
    this.up = false;
    this.downWhy = why;
    kafkaOutage.lost(this, { client: this.name, why });
  }
}
