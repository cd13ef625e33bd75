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
  readonly groups: {
    readonly processor: string;
    readonly forwarder: string;
    /** Consumer group of one round-trip probe run: new per run, so it always starts from the beginning. */
    probe(runId: string): string;
  };
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
    /** Pub/sub channel of one round-trip probe run (`stack up`, the demo, readiness checks). */
    probeChannel(runId: string): string;
    /** List of one round-trip probe run; deleted when the run ends. */
    probeList(runId: string): string;
  };
}

export function topology(config: Config): Topology {
  const t = config.kafka.topicPrefix;
  const r = config.redis.keyPrefix;
  return Object.freeze({
    topics: Object.freeze({ events: `${t}events`, results: `${t}results`, probe: `${t}probe` }),
    groups: Object.freeze({ processor: `${t}processor`, forwarder: `${t}forwarder`, probe: (runId: string) => `${t}probe.${runId}` }),
    redis: Object.freeze({
      prefix: r,
      deviceState: (id: string) => `${r}dev:${id}`,
      deviceBuffer: (id: string) => `${r}buf:${id}`,
      presence: (id: string) => `${r}presence:${id}`,
      instanceChannel: (id: string) => `${r}gw:${id}`,
      probeChannel: (runId: string) => `${r}probe:${runId}`,
      probeList: (runId: string) => `${r}probe:list:${runId}` }),
  });
}
