/**
 * The whole engine in the test process: topics with their own prefix, N gateways on port 0, a
 * processor and a forwarder, all real. stop() ends everything and deletes the topics.
 */
import type { Config } from '../../src/config.js';
import { deleteTopics, ensureTopics } from '../../src/kafka/admin.js';
import { startForwarder } from '../../src/forwarder/forwarder.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { startProcessor } from '../../src/processor/processor.js';
import { topology } from '../../src/topology.js';

export interface TestPipeline {
  gateways: Gateway[];
  stop(): Promise<void>;
}

export async function startPipeline(config: Config, gatewayIds: string[]): Promise<TestPipeline> {
  const t = topology(config);
  await ensureTopics(config, [
    { topic: t.topics.events, partitions: config.kafka.partitions, replicationFactor: config.kafka.replicationFactor, minInsyncReplicas: config.kafka.minInsyncReplicas },
    { topic: t.topics.results, partitions: config.kafka.partitions, replicationFactor: config.kafka.replicationFactor, minInsyncReplicas: config.kafka.minInsyncReplicas },
  ]);
  const gateways: Gateway[] = [];
  for (const id of gatewayIds) gateways.push(await Gateway.start(config, id, 0));
  const stages = [await startProcessor(config, `${gatewayIds[0]}-processor`), await startForwarder(config, `${gatewayIds[0]}-forwarder`)];
  return {
    gateways,
    async stop() {
      for (const g of gateways) await g.stop();
      for (const s of stages) await s.stop();
      await deleteTopics(config, [t.topics.events, t.topics.results]).catch(() => {});
    },
  };
}
