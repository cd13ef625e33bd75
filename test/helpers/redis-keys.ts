/**
 * Key listing and cleanup for tests that runs on one Redis and on Redis Cluster alike: SCAN walks
 * one node, so on a cluster it runs on every master; DEL of keys in several slots is CROSSSLOT on a
 * cluster, so keys are deleted one command each (pipelined).
 */
import type { RedisClient } from '../../src/redis/client.js';
import { masters } from '../../src/redis/sharding.js';

/** Every key matching `pattern` (SCAN MATCH), sorted. */
export async function scanKeys(redis: RedisClient, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  for (const node of masters(redis).values()) {
    let cursor = '0';
    do {
      const [next, batch] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
  }
  return keys.sort();
}

/** Deletes `keys`, one DEL each. */
export async function deleteEach(redis: RedisClient, keys: readonly string[]): Promise<void> {
  await Promise.all(keys.map((k) => redis.del(k)));
}
