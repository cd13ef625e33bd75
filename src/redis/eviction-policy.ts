/**
 * Stratus keeps device state in Redis (the dedupe mark h, the buffer index n, the last taken and
 * delivered seqs, the result buffers), not a cache: a key Redis evicts loses results or lets a
 * taken seq be taken again. Every Stratus key has a TTL (redis.deviceStateTtlMs), so volatile-*
 * policies evict them as surely as allkeys-* ones. Only noeviction is safe: a full Redis then
 * refuses writes (OOM), which the stages see and retry.
 */
import { ReplyError } from 'ioredis';
import type { Config } from '../config.js';
import { ErrorCode, StratusError } from '../errors.js';
import { redisAddress, redisUnavailable, type RedisClient } from './client.js';

/**
 * Resolves null when Redis's maxmemory-policy does not evict; throws REDIS_POLICY_UNSAFE when it
 * does. When CONFIG is refused (managed Redis services rename or forbid it) it resolves a warning
 * line for the caller to log: the policy can't be checked, and Stratus still runs.
 */
export async function refuseEvictingPolicy(redis: RedisClient, config: Config): Promise<string | null> {
  let reply: unknown;
  try {
    reply = await redis.config('GET', 'maxmemory-policy');
  } catch (err) {
    if (err instanceof ReplyError) {
      return `Redis at ${redisAddress(config)} refused CONFIG GET maxmemory-policy (${(err as Error).message}): make sure it is noeviction; Stratus keeps device state in Redis, and an evicting policy loses results`;
    }
    throw redisUnavailable(config, 'did not answer CONFIG GET maxmemory-policy', err);
  }
  const pair = reply as string[];
  const policy = pair[1];
  if (policy === undefined) return `Redis at ${redisAddress(config)} did not report maxmemory-policy: make sure it is noeviction; Stratus keeps device state in Redis, and an evicting policy loses results`;
  if (policy.startsWith('allkeys-') || policy.startsWith('volatile-')) {
    throw new StratusError(
      ErrorCode.REDIS_POLICY_UNSAFE,
      `Redis at ${redisAddress(config)} has maxmemory-policy ${policy}: Stratus keeps device state in Redis, not a cache; set maxmemory-policy noeviction (redis-cli CONFIG SET maxmemory-policy noeviction, and in redis.conf)`,
    );
  }
  return null;
}
