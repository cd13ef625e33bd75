/**
 * /readyz of an engine process: every Kafka producer and consumer and every long-lived Redis client
 * of the process is up (health.ts). It reads the state those clients keep already: nothing is
 * connected, sent or awaited per request, so a probe costs microseconds and answers even while
 * Kafka or Redis hang. (Draining is the HTTP surface's own flag, checked before this.)
 */
import type { Config } from '../config.js';
import { healthChecksRegistered, healthProblem } from './health.js';
import type { ReadinessProbe } from './server.js';

export function engineReadiness(config: Config): ReadinessProbe {
  return {
    async check() {
      // The surface is bound before the roles build their clients: until one has, the process is starting.
      if (healthChecksRegistered() === 0) return `starting: no Kafka or Redis client is up yet (Kafka at ${config.kafka.brokers.join(',')}, Redis at ${config.redis.host}:${config.redis.port})`;
      return healthProblem();
    },
  };
}
