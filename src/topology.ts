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
    /** Consumer group of the archivers (events and results topics -> the archive store). */
    readonly archiver: string;
    /** Consumer group (Redis Streams) of the metrics exporters. */
    readonly exporter: string;
    /** Consumer group of one round-trip probe run: new per run, so it always starts from the beginning. */
    probe(runId: string): string;
  };
  readonly redis: {
    readonly prefix: string;
    /**
     * Hash per device: a = last seq taken (admission), k = highest seq known durable in Kafka (a
     * contiguous prefix of what was taken), h = highest seq routed (the forwarder's dedupe), n = last
     * buffer index, d = last seq written to the device by any session (the server-side cursor).
     */
    deviceState(deviceId: string): string;
    /** Stream per device: every routed result, ids `n-0`, capped at redis.deviceBufferMax. */
    deviceBuffer(deviceId: string): string;
    /** String per device: the instance id that has events of it waiting for Kafka (gateway.admitLeaseMs). */
    admission(deviceId: string): string;
    /** String per device: the instance id holding it, with a lease. */
    presence(deviceId: string): string;
    /** Pub/sub channel of one gateway instance: delivery frames. */
    instanceChannel(instanceId: string): string;
    /** Pub/sub channel of one round-trip probe run (`stack up`, the demo, readiness checks). */
    probeChannel(runId: string): string;
    /** List of one round-trip probe run; deleted when the run ends. */
    probeList(runId: string): string;
    /** List queue NAME (event.EventService -> `stratus worker`): LPUSH in, BLMOVE out from the right. */
    queue(name: string): string;
    /** In-progress list of one worker of queue NAME (BLMOVE target). */
    queueProcessing(name: string, workerId: string): string;
    /** Set of the worker ids of queue NAME. */
    queueWorkers(name: string): string;
    /** Heartbeat key of one worker (leased, queue.leaseMs). */
    queueHeartbeat(name: string, workerId: string): string;
    /** Hash: item digest -> attempts so far. */
    queueAttempts(name: string): string;
    /** Dead-letter list of queue NAME. */
    queueDead(name: string): string;
    /** Hash: what the `record` handler stored (event_id -> item). */
    queueDone(name: string): string;
    /** Stream of results the forwarder could not buffer for their device (dead-letter). */
    readonly resultsDead: string;
    /** Stream of ingested metrics (data_nexus.MetricsService). */
    readonly metricsStream: string;
    /**
     * String `<first id> <last id> <count>`: what one script call of the metrics write added, kept
     * for a moment so that the same call, resent by the client after a lost reply, adds nothing.
     */
    metricsWrite(token: string): string;
    /** Stream of metric entries that could not be decoded or exported (dead-letter). */
    readonly metricsDead: string;
  };
}

export function topology(config: Config): Topology {
  const t = config.kafka.topicPrefix;
  const r = config.redis.keyPrefix;
  // On Redis Cluster every key of one device carries the hash tag {d:<id>}, so they share a slot and
  // one script can touch them all (redis/sharding.ts); one server keeps the untagged names. The
  // `d:` keeps the tag from being empty (an id starting with `}`), which would hash each key whole.
  const cluster = config.redis.mode === 'cluster';
  const dev = cluster ? (id: string) => `{d:${id}}` : (id: string) => id;
  return Object.freeze({
    topics: Object.freeze({ events: `${t}events`, results: `${t}results`, probe: `${t}probe` }),
    groups: Object.freeze({ processor: `${t}processor`, forwarder: `${t}forwarder`, archiver: `${t}archiver`, exporter: 'exporter', probe: (runId: string) => `${t}probe.${runId}` }),
    redis: Object.freeze({
      prefix: r,
      deviceState: (id: string) => `${r}dev:${dev(id)}`,
      deviceBuffer: (id: string) => `${r}buf:${dev(id)}`,
      admission: (id: string) => `${r}adm:${dev(id)}`,
      presence: (id: string) => `${r}presence:${dev(id)}`,
      instanceChannel: (id: string) => `${r}gw:${id}`,
      probeChannel: (runId: string) => `${r}probe:${runId}`,
      probeList: (runId: string) => `${r}probe:list:${runId}`,
      // Hash tags keep one queue's keys in one slot, so its Lua scripts stay valid on a cluster.
      queue: (name: string) => `${r}q:{${name}}`,
      queueProcessing: (name: string, w: string) => `${r}q:{${name}}:processing:${w}`,
      queueWorkers: (name: string) => `${r}q:{${name}}:workers`,
      queueHeartbeat: (name: string, w: string) => `${r}q:{${name}}:hb:${w}`,
      queueAttempts: (name: string) => `${r}q:{${name}}:attempts`,
      queueDead: (name: string) => `${r}q:{${name}}:dead`,
      queueDone: (name: string) => `${r}q:{${name}}:done`,
      resultsDead: `${r}results:dead`,
      metricsStream: `${r}metrics`,
      // On a cluster the token shares the stream's slot: its tag is the stream's whole name.
      metricsWrite: (token: string) => (cluster ? `${r}metrics:w:{${r}metrics}:${token}` : `${r}metrics:w:${token}`),
      // On a cluster in the stream's slot too: the exporter parks and acks in one MULTI.
      metricsDead: cluster ? `${r}metrics:dead:{${r}metrics}` : `${r}metrics:dead`,
    }),
  });
}
