/**
 * EngineAdmin on @platformatic/kafka's Admin. Building the client sends nothing (connections open
 * on the first request); every call is bounded by its own timeoutMs here, because the library's
 * retries and request timeout are per client and a retrying call can outlast the caller's budget.
 * Every failure is a KafkaClientError (errors.ts walks the library's nested errors).
 */
import { Admin } from '@platformatic/kafka';
import type { Config } from '../../config.js';
import { errorText, roleLog } from '../../log.js';
import { KafkaClientError, type EngineAdmin, type NewTopic, type TopicDescription } from '../types.js';
import { bounded, platformaticFailure } from './errors.js';
import { baseOptions } from './options.js';

/** What one admin call may take by the library's own retries, before the caller's timeoutMs cuts it. */
const ADMIN_RETRY_BUDGET_MS = 5000;

class PlatformaticAdmin implements EngineAdmin {
  constructor(
    private readonly admin: Admin,
    private readonly clientId: string,
  ) {}

  private async call<T>(what: string, timeoutMs: number, run: () => Promise<T>): Promise<T> {
    try {
      return await bounded(run(), timeoutMs, what);
    } catch (err) {
      throw platformaticFailure(err, what);
    }
  }

  listTopics(timeoutMs: number): Promise<string[]> {
    return this.call('listTopics', timeoutMs, () => this.admin.listTopics({ includeInternals: false }));
  }

  async createTopics(topics: readonly NewTopic[], timeoutMs: number): Promise<void> {
    // One request per topic, all at once: the library's createTopics takes one partition count and
    // replication factor for all the topics it is given. Each outcome is awaited, so that every
    // topic that can be created is before an existing one is reported ('topic-exists' wins over the
    // others only when no other failure happened, as the native client's createTopics does).
    const outcomes = await Promise.allSettled(
      topics.map((t) =>
        this.call(`createTopics ${t.topic}`, timeoutMs, () =>
          this.admin.createTopics({
            topics: [t.topic],
            partitions: t.partitions,
            replicas: t.replicationFactor,
            configs: t.minInsyncReplicas === undefined ? [] : [{ name: 'min.insync.replicas', value: String(t.minInsyncReplicas) }],
          }),
        ),
      ),
    );
    const failures = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as KafkaClientError] : []));
    if (failures.length === 0) return;
    throw failures.find((f) => f.failure !== 'topic-exists') ?? failures[0]!;
  }

  describeTopics(topics: readonly string[], timeoutMs: number): Promise<TopicDescription[]> {
    return this.call(`describeTopics ${topics.join(',')}`, timeoutMs, async () => {
      // forceUpdate: a topic created or deleted a moment ago must not be answered from the cache.
      // retries 2: the library retries UNKNOWN_TOPIC_OR_PARTITION like a transient error (it is
      // canRetry), so with the client's budget an unknown topic took 5 s to be reported; the
      // callers (admin.ts) wait and ask again themselves.
      const meta = await this.admin.metadata({ topics: [...topics], forceUpdate: true, retries: 2 });
      return topics.map((name) => {
        const t = meta.topics.get(name);
        if (t === undefined) throw new KafkaClientError('unknown-topic', `topic ${name} is not in the cluster's metadata`, 'platformatic');
        return { name, partitions: t.partitions.map((p, id) => ({ id, leader: p.leader })) };
      });
    });
  }

  deleteTopic(topic: string, timeoutMs: number): Promise<void> {
    return this.call(`deleteTopic ${topic}`, timeoutMs, () => this.admin.deleteTopics({ topics: [topic] }));
  }

  async close(): Promise<void> {
    // A failure means the connections were already gone; it must not hide the caller's own outcome.
    await this.admin.close().catch((err: unknown) => roleLog('kafka').debug({ client: this.clientId, err: errorText(err) }, 'admin close failed'));
  }
}

export async function platformaticAdmin(config: Config, clientId: string): Promise<EngineAdmin> {
  return new PlatformaticAdmin(new Admin(baseOptions(config, clientId, ADMIN_RETRY_BUDGET_MS)), clientId);
}
