/**
 * Forwarder: results topic -> Redis -> the gateway instance holding the device.
 *
 * Reads the results topic as consumer group <prefix>forwarder, a batch at a time, and hands the
 * whole batch to one Redis script call (deliver-script.ts): dedupe by (device, seq), buffer in the
 * device's bounded Redis Stream, one PUBLISH per gateway instance. Offsets are committed only after
 * Redis acknowledged the script.
 *
 * Guarantee: every result is in its device's buffer before its offset is committed; a re-read
 * batch is deduplicated by the script, so each (device, seq) is routed once.
 */
import type { Config } from '../config.js';
import { KafkaBatchConsumer } from '../kafka/consumer.js';
import { createRedis } from '../redis/client.js';
import { topology } from '../topology.js';
import { resultSeq, resultTimesUs } from '../wire/result-codec.js';
import type { RunningStage } from '../processor/processor.js';
import { DELIVER_SCRIPT } from './deliver-script.js';
import { metrics } from '../http/metrics.js';

export interface ForwarderStats {
  batches: number;
  results: number;
  routed: number;
  duplicates: number;
  frames: number;
  skipped: number;
}

export async function startForwarder(config: Config, instanceId: string): Promise<RunningStage<ForwarderStats>> {
  const t = topology(config);
  const stats: ForwarderStats = { batches: 0, results: 0, routed: 0, duplicates: 0, frames: 0, skipped: 0 };
  const redis = createRedis(config, `${instanceId}-forwarder`, { offlineQueue: true });
  redis.on('error', () => {});
  await redis.connect();
  redis.defineCommand('stratusDeliver', { numberOfKeys: 0, lua: DELIVER_SCRIPT });
  const deliver = (args: (string | Buffer | number)[]) =>
    (redis as unknown as { stratusDeliver(...a: (string | Buffer | number)[]): Promise<[number, number, number]> }).stratusDeliver(...args);
  const consumer = await KafkaBatchConsumer.connect(config, { groupId: t.groups.forwarder, topics: [t.topics.results], clientId: `${instanceId}-forwarder` });
  let running = true;

  const loop = (async () => {
    while (running) {
      const messages = await consumer.consume();
      if (messages.length === 0) continue;
      const args: (string | Buffer | number)[] = [t.redis.prefix, config.redis.deviceBufferMax, config.redis.deviceStateTtlMs];
      for (const m of messages) {
        let seq: number;
        try {
          seq = resultSeq(m.value);
        } catch {
          stats.skipped++;
          continue;
        }
        if (m.key === null) {
          stats.skipped++;
          continue;
        }
        args.push(m.key, String(seq), m.value);
      }
      for (;;) {
        try {
          const stopTimer = metrics.redisScriptSeconds.startTimer();
          const [routed, dups, frames] = await deliver(args);
          stopTimer();
          metrics.redisPipelineDepth.observe({ path: 'forwarder' }, messages.length);
          observeStages(args);
          metrics.forwarderRouted.inc(routed);
          metrics.forwarderDuplicates.inc(dups);
          stats.routed += routed;
          stats.duplicates += dups;
          stats.frames += frames;
          break;
        } catch {
          // Redis unreachable: the batch is retried as a whole (the script is idempotent per seq).
          if (!running) return;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      consumer.commitBatch(messages);
      stats.results += messages.length;
      stats.batches++;
    }
  })();

  return {
    stats,
    async stop() {
      running = false;
      await loop;
      await consumer.disconnect();
      redis.disconnect();
    },
  };
}

/** Per-stage latency of a routed batch: process (received -> processed) and route (processed -> now). */
function observeStages(args: readonly (string | Buffer | number)[]): void {
  const nowUs = Date.now() * 1000;
  // args: 3 script parameters, then (device, seq, value) per result.
  for (let i = 5; i < args.length; i += 3) {
    const { receivedAtUs, processedAtUs } = resultTimesUs(args[i] as Buffer);
    metrics.stageSeconds.observe({ stage: 'process' }, (processedAtUs - receivedAtUs) / 1e6);
    metrics.stageSeconds.observe({ stage: 'route' }, (nowUs - processedAtUs) / 1e6);
  }
}
