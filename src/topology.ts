/**
 * Every Kafka topic, consumer group and Redis key/channel name Stratus uses, in one place.
 * Names are derived from Config prefixes so that tests (and several deployments on one broker or
 * Redis) stay apart by choosing a prefix.
 */
import type { Config } from './config.js';

export interface Topology {
  readonly topics: {
    readonly events: string;
    readonly results: string;
    /** Scratch topic for the demo's and readiness checks' round trips; never read by the engine. */
    readonly probe: string;
  };
  readonly redis: {
    /** Round-trip probe used by `stack up`, the demo and readiness checks. */
    readonly probeChannel: string;
    readonly probeList: string;
  };
}

export function topology(config: Config): Topology {
  const t = config.kafka.topicPrefix;
  const r = config.redis.keyPrefix;
  return Object.freeze({
    topics: Object.freeze({ events: `${t}events`, results: `${t}results`, probe: `${t}probe` }),
    redis: Object.freeze({ probeChannel: `${r}probe`, probeList: `${r}probe:list` }),
  });
}
