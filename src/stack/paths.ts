/**
 * Where the local stack keeps its state. Everything lives under config.dataDir (git-ignored),
 * except the Kafka jars, which scripts/setup.sh fetches once per project into .stratus/cache.
 *
 *   <dataDir>/
 *     kafka/data/        KRaft metadata + topic logs (formatted by StorageTool)
 *     kafka/server.properties, kafka/log4j2.properties   written by `stack up` from Config
 *     redis/             appendonly files
 *     postgres/data/     the PostgreSQL cluster (initdb), only with `stack up --postgres`
 *     postgres/socket/   its unix socket (never /var/run/postgresql: that belongs to Debian's own
 *                        clusters, and a non-root user cannot write there)
 *     logs/kafka.log     broker log (log4j2)      logs/kafka.out  JVM stdout/stderr
 *     logs/redis.log     logs/postgres.log
 *     run/kafka.pid  run/redis.pid  run/postgres.pid  run/stack.lock
 */
import { join } from 'node:path';
import { PROJECT_ROOT, type Config } from '../config.js';

export interface StackPaths {
  readonly dataDir: string;
  readonly kafkaDir: string;
  readonly kafkaData: string;
  readonly kafkaProps: string;
  readonly log4jProps: string;
  readonly redisData: string;
  /** Owned by the `postgres` system user when the stack runs as root (postgres refuses root). */
  readonly postgresDir: string;
  readonly postgresData: string;
  readonly postgresSocketDir: string;
  readonly logDir: string;
  readonly kafkaLog: string;
  readonly kafkaOut: string;
  readonly redisLog: string;
  readonly postgresLog: string;
  readonly runDir: string;
  readonly kafkaPid: string;
  readonly redisPid: string;
  readonly postgresPid: string;
  readonly lock: string;
  /** The jars scripts/setup.sh resolved from src/stack/kafka-pom.xml. */
  readonly kafkaLibs: string;
}

export const KAFKA_LIBS = join(PROJECT_ROOT, '.stratus', 'cache', 'kafka', 'libs');

export function stackPaths(config: Config): StackPaths {
  const d = config.dataDir;
  return {
    dataDir: d,
    kafkaDir: join(d, 'kafka'),
    kafkaData: join(d, 'kafka', 'data'),
    kafkaProps: join(d, 'kafka', 'server.properties'),
    log4jProps: join(d, 'kafka', 'log4j2.properties'),
    redisData: join(d, 'redis'),
    postgresDir: join(d, 'postgres'),
    postgresData: join(d, 'postgres', 'data'),
    postgresSocketDir: join(d, 'postgres', 'socket'),
    logDir: join(d, 'logs'),
    kafkaLog: join(d, 'logs', 'kafka.log'),
    kafkaOut: join(d, 'logs', 'kafka.out'),
    redisLog: join(d, 'logs', 'redis.log'),
    postgresLog: join(d, 'logs', 'postgres.log'),
    runDir: join(d, 'run'),
    kafkaPid: join(d, 'run', 'kafka.pid'),
    redisPid: join(d, 'run', 'redis.pid'),
    postgresPid: join(d, 'run', 'postgres.pid'),
    lock: join(d, 'run', 'stack.lock'),
    kafkaLibs: KAFKA_LIBS,
  };
}

/** host and port of a `host:port` entry (IPv6 in brackets allowed). */
export function splitHostPort(hp: string): { host: string; port: number } {
  const i = hp.lastIndexOf(':');
  return { host: hp.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(hp.slice(i + 1)) };
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);
export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host);
}
