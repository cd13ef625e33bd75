/**
 * Config for tests: the servers come from the environment (the stack `npm test` started, or
 * STRATUS_* overrides), and every call gets its own topic and Redis key prefix, so tests run
 * concurrently on one broker and one Redis without seeing each other's data.
 */
import { randomUUID } from 'node:crypto';
import { loadConfig, type Config } from '../../src/config.js';

export function testConfig(flags: Record<string, string> = {}): Config {
  const id = randomUUID().slice(0, 8);
  return loadConfig({
    envFile: null,
    flags: { 'kafka-topic-prefix': `test.${id}.`, 'redis-key-prefix': `test:${id}:`, ...flags },
  });
}
