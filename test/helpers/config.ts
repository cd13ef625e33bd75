/**
 * Config for tests. The servers come from the same place as for every command, loadConfig():
 * defaults <- .env <- STRATUS_* environment (CI: the stack `npm test` started on the default
 * ports; a developer: STRATUS_KAFKA_BROKERS / STRATUS_REDIS_PORT, or the .env that `stack up`
 * read too). Tests never name a broker or Redis address themselves.
 *
 * Every call gets its own Kafka topic prefix and Redis key prefix, so tests run concurrently on one
 * broker and one Redis without seeing each other's topics, groups, keys or channels.
 */
import { randomUUID } from 'node:crypto';
import { loadConfig, type Config } from '../../src/config.js';

/**
 * `overrides` are config flags keyed by flag name without dashes, as on the command line:
 * `testConfig({ 'kafka-partitions': '4' })`. They win over the generated prefixes.
 */
export function testConfig(overrides: Record<string, string> = {}): Config {
  const id = randomUUID();
  return loadConfig({
    flags: { 'kafka-topic-prefix': `test.${id}.`, 'redis-key-prefix': `test:${id}:`, ...overrides },
  });
}

/**
 * Set when the suite runs against Redis Cluster (STRATUS_REDIS_MODE=cluster, `npm run test:cluster`):
 * a test that puts a proxy in front of the one Redis address skips, because a cluster client
 * connects to every node directly (the cluster's own fault tests kill nodes instead).
 */
export const SKIP_ON_REDIS_CLUSTER: string | false =
  // The environment itself, not loadConfig(): this runs at import, before a test file has taken its
  // own STRATUS_* variables (STRATUS_MODEL_SEED) out of the environment that loadConfig checks.
  process.env.STRATUS_REDIS_MODE === 'cluster' ? 'a proxy in front of one Redis address: a cluster client reaches every node directly' : false;
