/**
 * EngineAdmin on @confluentinc/kafka-javascript's KafkaJS-compatible admin. Its `connect()` only
 * creates the librdkafka handle (no network; it resolves at once even with every broker down); each
 * call carries its own timeout and fails with ERR__TRANSPORT after it when no broker answers.
 * `disconnect()` destroys the handle synchronously; a handle left connected keeps the process alive.
 */
import type { KafkaJS } from '@confluentinc/kafka-javascript';
import type { Config } from '../../config.js';
import { errorText, roleLog } from '../../log.js';
import { KafkaClientError, type EngineAdmin, type KafkaFailure, type NewTopic, type TopicDescription } from '../types.js';
import { isRetryable, kafkaClient, KafkaErrorCodes, kafkaErrorCode, kafkaErrorDetail } from './client.js';

/** A librdkafka error as the engine decides on it; `message` is the library's, with its aggregate's parts. */
export function nativeFailure(err: unknown): KafkaClientError {
  const codes = [kafkaErrorCode(err), ...((err as { errors?: unknown[] } | null)?.errors ?? []).map(kafkaErrorCode)];
  const text = kafkaErrorDetail(err);
  let failure: KafkaFailure;
  if (codes.includes(KafkaErrorCodes.ERR_TOPIC_ALREADY_EXISTS)) failure = 'topic-exists';
  else if (codes.includes(KafkaErrorCodes.ERR_INVALID_REPLICATION_FACTOR) || /replication factor/i.test(text)) failure = 'replication-factor';
  else if (codes.includes(KafkaErrorCodes.ERR_UNKNOWN_TOPIC_OR_PART)) failure = 'unknown-topic';
  else failure = isRetryable(err) ? 'unavailable' : 'refused';
  return new KafkaClientError(failure, text, 'native', { cause: err });
}

class NativeAdmin implements EngineAdmin {
  constructor(
    private readonly admin: KafkaJS.Admin,
    private readonly clientId: string,
  ) {}

  async listTopics(timeoutMs: number): Promise<string[]> {
    try {
      return await this.admin.listTopics({ timeout: timeoutMs });
    } catch (err) {
      throw nativeFailure(err);
    }
  }

  async createTopics(topics: readonly NewTopic[], timeoutMs: number): Promise<void> {
    let created: boolean;
    try {
      created = await this.admin.createTopics({
        timeout: timeoutMs,
        topics: topics.map((s) => ({
          topic: s.topic,
          numPartitions: s.partitions,
          replicationFactor: s.replicationFactor,
          ...(s.minInsyncReplicas === undefined ? {} : { configEntries: [{ name: 'min.insync.replicas', value: String(s.minInsyncReplicas) }] }),
        })),
      });
    } catch (err) {
      throw nativeFailure(err);
    }
    // Resolves false, without saying which, when a topic already existed (the others were created).
    if (!created) throw new KafkaClientError('topic-exists', `a topic of ${topics.map((t) => t.topic).join(', ')} exists already`, 'native');
  }

  async describeTopics(topics: readonly string[], timeoutMs: number): Promise<TopicDescription[]> {
    try {
      const meta = await this.admin.fetchTopicMetadata({ topics: [...topics], timeout: timeoutMs });
      return meta.map((t) => ({ name: t.name, partitions: t.partitions.map((p) => ({ id: p.partitionId, leader: p.leader })) }));
    } catch (err) {
      throw nativeFailure(err);
    }
  }

  async deleteTopic(topic: string, timeoutMs: number): Promise<void> {
    try {
      await this.admin.deleteTopics({ topics: [topic], timeout: timeoutMs });
    } catch (err) {
      throw nativeFailure(err);
    }
  }

  async close(): Promise<void> {
    // A failure means the handle was already gone; it must not hide the caller's own outcome.
    await this.admin.disconnect().catch((err: unknown) => roleLog('kafka').debug({ client: this.clientId, err: errorText(err) }, 'admin disconnect failed'));
  }
}

export async function nativeAdmin(config: Config, clientId: string): Promise<EngineAdmin> {
  const admin = kafkaClient(config, clientId).admin();
  await admin.connect();
  return new NativeAdmin(admin, clientId);
}
