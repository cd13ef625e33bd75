/**
 * Scenario: what replication costs (issue 19). The whole engine (`stratus run`, every role) on the
 * local clusters (`stack up --kafka-nodes 3 --redis-cluster`: three KRaft brokers, a Redis Cluster
 * of three masters with one replica each), the same closed-loop fleet against three settings, one
 * after the other in one run:
 *   A  events and results topics with replication 1 (min.insync.replicas 1), forwarder WAIT on;
 *   B  replication 3, min.insync.replicas 2 (an ack waits for two brokers), WAIT on;
 *   C  as B, with the forwarder's WAIT off (redis.waitReplicas 0).
 * B / A is the price of Kafka replication for acks (acks/s, ack p99); B / C is the price of waiting
 * for a Redis replica before committing the results' offsets (results/s, result p99). Closed loop:
 * each device keeps one uplink outstanding, so each setting runs at its own pace.
 *
 * Each setting gets its own topic prefix and key prefix, so topics are created with its
 * replication. All of it shares this machine's cores with three JVMs and six redis-servers.
 */
import { availableParallelism } from 'node:os';
import type { LoadgenSummary } from '../../loadgen/summary.js';
import { kafkaClusterBrokers, REDIS_CLUSTER_PORTS } from '../../src/stack/cluster-layout.js';
import { stackDown, stackUp } from '../../src/stack/stack.js';
import { loadFigures, loadgen, startEngine, type Fleet } from '../engine.js';
import { ratio, type Scenario, type Side } from '../scenario.js';

interface Setting {
  name: string;
  replication: number;
  minInsync: number;
  waitReplicas: number;
}

const CLUSTERS = { kafkaNodes: 3, redisCluster: true };

const SETTINGS: Setting[] = [
  { name: 'A: Kafka replication 1, Redis WAIT on', replication: 1, minInsync: 1, waitReplicas: 1 },
  { name: 'B: Kafka replication 3 (min.insync 2), Redis WAIT on', replication: 3, minInsync: 2, waitReplicas: 1 },
  { name: 'C: Kafka replication 3 (min.insync 2), Redis WAIT off', replication: 3, minInsync: 2, waitReplicas: 0 },
];

export const replication: Scenario = {
  id: 'replication',
  title: 'What replication costs: Kafka replication 1 vs 3, Redis WAIT on vs off (local clusters)',
  async run(ctx) {
    const fleet: Fleet = ctx.quick
      ? { devices: 50, totalRate: 2000, durationS: 3, warmupS: 2, extra: ['--closed-loop'] }
      : { devices: 500, totalRate: 25000, durationS: 20, warmupS: 5, extra: ['--closed-loop'] };
    ctx.log('  starting the local clusters (stack up --kafka-nodes 3 --redis-cluster)');
    const up = await stackUp(ctx.config, CLUSTERS);
    // Clusters this scenario started are stopped again at its end (three JVMs idle otherwise).
    const startedHere = up.services.some((s) => s.state === 'started');
    const sides: Side[] = [];
    const summaries: LoadgenSummary[] = [];
    try {
      for (const s of SETTINGS) {
        const engine = await startEngine({
          env: {
            STRATUS_KAFKA_BROKERS: kafkaClusterBrokers().join(','),
            STRATUS_KAFKA_REPLICATION_FACTOR: String(s.replication),
            STRATUS_KAFKA_MIN_INSYNC_REPLICAS: String(s.minInsync),
            STRATUS_KAFKA_PARTITIONS: '6',
            STRATUS_REDIS_MODE: 'cluster',
            STRATUS_REDIS_PORT: String(REDIS_CLUSTER_PORTS[0]),
            STRATUS_REDIS_WAIT_REPLICAS: String(s.waitReplicas),
          },
        });
        try {
          const summary = await loadgen(ctx, engine.target, fleet);
          summaries.push(summary);
          sides.push({ name: s.name, figures: loadFigures(summary) });
        } finally {
          await engine.stop();
        }
      }
    } finally {
      if (startedHere) await stackDown(ctx.config, CLUSTERS);
    }
    const [a, b, c] = sides.map((x) => x.figures) as [Record<string, number>, Record<string, number>, Record<string, number>];
    const r = (name: string, x: number | undefined, y: number | undefined) => (x !== undefined && y !== undefined && y > 0 ? [ratio(name, x / y)] : []);
    return {
      id: this.id,
      title: this.title,
      params: { loop: 'closed (one uplink outstanding per device)', devices: fleet.devices, durationS: fleet.durationS, warmupS: fleet.warmupS, partitions: 6, kafkaBrokers: 3, redisMasters: 3, redisReplicasPerMaster: 1 },
      sides,
      plots: [
        { id: 'ack', title: 'Ack latency by percentile (closed loop)', series: SETTINGS.map((s, i) => ({ name: s.name, distribution: summaries[i]!.latency.ack?.distribution ?? [] })) },
        { id: 'result', title: 'Result latency by percentile (closed loop)', series: SETTINGS.map((s, i) => ({ name: s.name, distribution: summaries[i]!.latency.result?.distribution ?? [] })) },
      ],
      ratios: [
        ...r('acked/s: replication 3 / replication 1', b.ackedPerS, a.ackedPerS),
        ...r('ack p99: replication 3 / replication 1', b.ackP99Ms, a.ackP99Ms),
        ...r('results/s: WAIT on / WAIT off', b.resultsPerS, c.resultsPerS),
        ...r('result p99: WAIT on / WAIT off', b.resultP99Ms, c.resultP99Ms),
      ],
      reading: [
        `With ${fleet.devices} devices each keeping one uplink outstanding, the engine on three brokers and a three-master Redis Cluster acknowledged ${a.ackedPerS?.toLocaleString('en-US')} events/s with replication 1 and ${b.ackedPerS?.toLocaleString('en-US')}/s with replication 3 (min.insync.replicas 2: every ack waits for a second broker), ack p99 ${a.ackP99Ms} ms against ${b.ackP99Ms} ms.`,
        `The forwarder's WAIT for a Redis replica before it commits results: ${b.resultsPerS?.toLocaleString('en-US')} results/s and result p99 ${b.resultP99Ms} ms with it, ${c.resultsPerS?.toLocaleString('en-US')}/s and ${c.resultP99Ms} ms without.`,
        `Three JVMs, six redis-servers, the engine and the load generator share this machine's ${availableParallelism()} cores, so the absolute rates are far below the single-node scenarios'; the ratios are the point.`,
      ].join(' '),
    };
  },
};
