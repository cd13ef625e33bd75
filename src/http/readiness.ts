/**
 * /readyz of an engine process: Redis answers PING within 1 s and Kafka answers a metadata request
 * within 2 s. Checked on every request (a load balancer polls it), never cached.
 */
import type { Config } from '../config.js';
import { waitForKafka } from '../kafka/admin.js';
import { pingRedis } from '../redis/client.js';
import type { ReadinessProbe } from './server.js';

export function engineReadiness(config: Config): ReadinessProbe {
  return {
    async check() {
      try {
        await pingRedis(config, 1000);
      } catch (e) {
        return `Redis: ${(e as Error).message}`;
      }
      try {
        await waitForKafka(config, 2000);
      } catch (e) {
        return `Kafka: ${(e as Error).message}`;
      }
      return null;
    },
  };
}
