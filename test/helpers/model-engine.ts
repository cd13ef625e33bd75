/**
 * The engine under the model test: gateway instances a and b, a processor and a forwarder, each
 * its own `stratus run --roles X` process (so kill -9 hits one role), on the running Kafka and
 * Redis stack with topic and key prefixes of their own (testConfig()). Built on the fault
 * harness's RoleProcess; ports are fixed per role, so a restarted role is found where it was.
 */
import type { Config } from '../../src/config.js';
import { deleteTopics, ensureTopics } from '../../src/kafka/admin.js';
import { connectRedis, createRedis, disconnectRedis, type RedisClient } from '../../src/redis/client.js';
import { topology } from '../../src/topology.js';
import { testConfig } from './config.js';
import { killAll, READY_LINE, RoleProcess } from './fault-harness.js';
import { unusedPort } from './ports.js';

export type ModelRole = 'a' | 'b' | 'processor' | 'forwarder';
const PARTITIONS = 3;

export class ModelEngine {
  private constructor(
    readonly config: Config,
    readonly roles: Record<ModelRole, RoleProcess>,
    readonly redis: RedisClient,
  ) {}

  static async start(extraEnv: Record<string, string> = {}): Promise<ModelEngine> {
    const config = testConfig({ 'kafka-partitions': String(PARTITIONS) });
    const t = topology(config);
    // Once here: four processes creating the same topics at once would race.
    await ensureTopics(config, [
      { topic: t.topics.events, partitions: PARTITIONS, replicationFactor: config.kafka.replicationFactor, minInsyncReplicas: config.kafka.minInsyncReplicas },
      { topic: t.topics.results, partitions: PARTITIONS, replicationFactor: config.kafka.replicationFactor, minInsyncReplicas: config.kafka.minInsyncReplicas },
    ]);
    const env = {
      STRATUS_KAFKA_TOPIC_PREFIX: config.kafka.topicPrefix,
      STRATUS_REDIS_KEY_PREFIX: config.redis.keyPrefix,
      STRATUS_KAFKA_PARTITIONS: String(PARTITIONS),
      STRATUS_GATEWAY_DRAIN_GRACE_MS: '500',
      // A killed gateway's presence entries expire sooner than the 30 s default.
      STRATUS_GATEWAY_PRESENCE_LEASE_MS: '6000',
      // info: the `started` line RoleProcess waits for is an info line (src/log.ts).
      STRATUS_LOG_LEVEL: 'info',
      ...extraEnv,
    };
    const roleOf: Record<ModelRole, string> = { a: 'gateway', b: 'gateway', processor: 'processor', forwarder: 'forwarder' };
    const roles = {} as Record<ModelRole, RoleProcess>;
    for (const r of ['a', 'b', 'processor', 'forwarder'] as const) {
      const args = ['run', '--roles', roleOf[r], '--grpc-port', String(await unusedPort()), '--http-port', String(await unusedPort()), '--instance-id', `model-${r}`];
      roles[r] = new RoleProcess(`model-${r}`, args, env, READY_LINE);
    }
    try {
      await Promise.all(Object.values(roles).map((p) => p.start()));
    } catch (err) {
      killAll();
      throw err;
    }
    const redis = createRedis(config, 'model-test');
    await connectRedis(redis);
    return new ModelEngine(config, roles, redis);
  }

  grpcAddress(i: 'a' | 'b'): string {
    return `127.0.0.1:${this.roles[i].grpcPort}`;
  }

  httpPort(i: 'a' | 'b'): number {
    return this.roles[i].httpPort;
  }

  async restart(role: ModelRole): Promise<void> {
    await this.roles[role].kill9();
    await this.roles[role].start();
  }

  async stop(): Promise<void> {
    for (const p of Object.values(this.roles)) await p.kill9();
    killAll();
    disconnectRedis(this.redis);
    const t = topology(this.config);
    await deleteTopics(this.config, [t.topics.events, t.topics.results]).catch(() => {});
  }
}
