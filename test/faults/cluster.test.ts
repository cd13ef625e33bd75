/**
 * Issue 19, faults on the local clusters: the engine on a three-broker Kafka (events and results
 * topics with replication 3, min.insync.replicas 2) and a six-node Redis Cluster (three masters,
 * one replica each), 500 devices at 1 event/s through a balancer to two gateways, a processor and a
 * forwarder, each its own process. While the load runs:
 *   - kill -9 the broker leading partition 0 of the events topic, start it again 10 s later;
 *   - kill -9 a Redis master, wait until its replica has taken over, then start the old master
 *     again (it rejoins as a replica).
 * Afterwards the load generator's end-to-end check reconciles every (device, seq): no acked event
 * without its result, no result twice, no wrong value; the recovery time is reported.
 *
 * The cluster is the one `stack up --kafka-nodes 3 --redis-cluster` runs (test/helpers/cluster-stack.ts);
 * this file starts it when it does not run and then stops it again.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PROJECT_ROOT } from '../../src/config.js';
import { topology } from '../../src/topology.js';
import { loadConfig } from '../../src/config.js';
import { ensureClusterStack, killKafkaBroker, killRedisNode, partitionLeader, redisMasters, startKafkaBroker, startRedisNode, stopClusterStack, type ClusterStack } from '../helpers/cluster-stack.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { checkDeliveryRow, killAll, printTable, READY_LINE, recoveryS, RoleProcess, rowOf, startLoadgen, unexpectedExits, type FaultRow } from '../helpers/fault-harness.js';
import { unusedPort } from '../helpers/ports.js';

const DEVICES = Number(process.env.FAULTS_DEVICES ?? 500);
const DURATION_S = 45;
const FAULT_AT_S = 8;
const PARTITIONS = 6;
/** How long a killed broker stays dead. */
const KAFKA_OUTAGE_S = 10;
/** The longest a Redis replica may take to be promoted (cluster-node-timeout 5 s, plus the vote). */
const PROMOTION_WAIT_MS = 30_000;

let cluster: ClusterStack;
let balancer: FaultProxy;
let env: Record<string, string>;
const roles: Record<string, RoleProcess> = {};
const rows: FaultRow[] = [];
/** The Redis node every engine process bootstraps from: never the one killed. */
let seedPort = 0;

before(async () => {
  cluster = await ensureClusterStack();
  const masters = await redisMasters();
  seedPort = masters[0]!.port;
  const id = randomUUID().slice(0, 8);
  env = {
    STRATUS_REDIS_MODE: 'cluster',
    STRATUS_REDIS_PORT: String(seedPort),
    STRATUS_KAFKA_BROKERS: cluster.kafkaBrokers.join(','),
    STRATUS_KAFKA_PARTITIONS: String(PARTITIONS),
    STRATUS_KAFKA_REPLICATION_FACTOR: '3',
    STRATUS_KAFKA_MIN_INSYNC_REPLICAS: '2',
    STRATUS_KAFKA_TOPIC_PREFIX: `cf.${id}.`,
    STRATUS_REDIS_KEY_PREFIX: `cf:${id}:`,
    // info: the `started` line RoleProcess waits for is an info line (src/log.ts).
    STRATUS_LOG_LEVEL: 'info',
  };
  const run = async (name: string, roleList: string) => {
    const args = ['run', '--roles', roleList, '--grpc-port', String(await unusedPort()), '--http-port', String(await unusedPort()), '--instance-id', name];
    const p = new RoleProcess(name, args, env, READY_LINE);
    await p.start();
    return p;
  };
  // The processor first: it creates the topics (replication 3) before the others look for them.
  roles.processor = await run('processor', 'processor');
  roles.forwarder = await run('forwarder', 'forwarder');
  roles.gatewayA = await run('gateway-a', 'gateway');
  roles.gatewayB = await run('gateway-b', 'gateway');
  balancer = await FaultProxy.start([roles.gatewayA.grpcPort, roles.gatewayB.grpcPort]);
}, { timeout: 300_000 });

after(async () => {
  if (rows.length > 0) {
    const file = join(PROJECT_ROOT, '.stratus', 'faults', 'cluster.json');
    process.stdout.write(`\n${printTable(`fault suite, clusters (Kafka 3 brokers, replication 3, min.insync 2; Redis Cluster 3+3): ${DEVICES} devices x 1 event/s, ${DURATION_S} s each (${file})`, rows, file)}\n\n`);
  }
  await balancer?.close().catch(() => {});
  for (const p of Object.values(roles)) await p.kill9();
  // Nodes a failed test left down are started again, so the next run finds a whole cluster.
  if (cluster?.startedHere) await stopClusterStack().catch(() => {});
  killAll();
});

interface Fault {
  name: string;
  /** Injects the fault, waits out the outage and restores; returns [faultAtMs, restoredAtMs]. */
  run(): Promise<[number, number]>;
}

async function runFault(f: Fault): Promise<FaultRow> {
  for (const p of Object.values(roles)) if (!p.alive) await p.start();
  const prefix = `f-${f.name.replace(/\W+/g, '-')}-${Date.now().toString(36)}-`;
  const load = startLoadgen(`127.0.0.1:${balancer.port}`, env, [
    '--devices', String(DEVICES), '--rate', '1', '--duration', `${DURATION_S}s`, '--warmup', '0s', '--drain', '90s', '--device-prefix', prefix,
  ]);
  const exitsBefore = unexpectedExits.length;
  let times: [number, number];
  try {
    await sleep(FAULT_AT_S * 1000);
    times = await f.run();
  } catch (err) {
    load.kill();
    throw err;
  }
  const summary = await load.done;
  const row = rowOf(f.name, summary, recoveryS(summary, times[0], times[1], DURATION_S), (times[1] - times[0]) / 1000);
  rows.push(row);
  process.stdout.write(`# ${f.name}: ${JSON.stringify(row)}\n`);
  const exits = unexpectedExits.slice(exitsBefore).map((e) => `${e.name} (${e.status})`);
  assert.deepEqual(exits, [], `${f.name}: engine processes exited by themselves`);
  return row;
}

const faults: Fault[] = [
  {
    name: 'kill -9 the Kafka broker leading events partition 0',
    async run() {
      const events = topology(loadConfig({ env: { ...process.env, ...env } })).topics.events;
      const leader = await partitionLeader(events, 0);
      assert.ok(leader > 0, `events partition 0 has no leader (${leader})`);
      const at = Date.now();
      await killKafkaBroker(leader);
      process.stdout.write(`# killed Kafka node ${leader}, leader of ${events}/0\n`);
      await sleep(KAFKA_OUTAGE_S * 1000);
      await startKafkaBroker(leader);
      return [at, Date.now()];
    },
  },
  {
    name: 'kill -9 a Redis master until its replica takes over',
    async run() {
      const masters = await redisMasters();
      const victim = masters.find((m) => m.port !== seedPort && m.replicas.length > 0);
      assert.ok(victim !== undefined, `no master with a replica besides the seed ${seedPort}: ${JSON.stringify(masters)}`);
      const at = Date.now();
      await killRedisNode(victim.port);
      // Promoted: a replica of the victim now serves its slots.
      const deadline = Date.now() + PROMOTION_WAIT_MS;
      for (;;) {
        const now = await redisMasters().catch(() => []);
        if (now.some((m) => victim.replicas.some((r) => r.port === m.port))) break;
        assert.ok(Date.now() < deadline, `no replica of ${victim.port} was promoted within ${PROMOTION_WAIT_MS} ms`);
        await sleep(200);
      }
      const promotedMs = Date.now() - at;
      process.stdout.write(`# killed Redis master ${victim.port}; its replica took over after ${promotedMs} ms\n`);
      await startRedisNode(victim.port);
      return [at, Date.now()];
    },
  },
];

const only = process.env.FAULTS_ONLY;
for (const f of faults) {
  test(f.name, { timeout: 400_000, skip: only !== undefined && !f.name.includes(only) }, async () => {
    checkDeliveryRow(await runFault(f));
  });
}
