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
  readonly groups: { readonly processor: string; readonly forwarder: string };
  readonly redis: {
    readonly prefix: string;
    /** Hash per device: h = highest seq routed (dedupe), n = last buffer index, d = last seq delivered. */
    deviceState(deviceId: string): string;
    /** Stream per device: every routed result, ids `n-0`, capped at redis.deviceBufferMax. */
    deviceBuffer(deviceId: string): string;
    /** String per device: the instance id holding it, with a lease. */
    presence(deviceId: string): string;
    /** Pub/sub channel of one gateway instance: delivery frames. */
    instanceChannel(instanceId: string): string;
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
    groups: Object.freeze({ processor: `${t}processor`, forwarder: `${t}forwarder` }),
    redis: Object.freeze({
      prefix: r,
      deviceState: (id: string) => `${r}dev:${id}`,
      deviceBuffer: (id: string) => `${r}buf:${id}`,
      presence: (id: string) => `${r}presence:${id}`,
      instanceChannel: (id: string) => `${r}gw:${id}`,
      probeChannel: `${r}probe`, probeList: `${r}probe:list` }),
  });
}
