/**
 * WAIT after a write whose loss in a failover would lose data nothing else holds: the forwarder
 * commits Kafka offsets after its Redis write, so once committed, the result exists only in Redis.
 * A master that fails before its replica has the write hands over a dataset without it. Waiting
 * until redis.waitReplicas replicas (or as many as are connected) acknowledged the write before
 * the offsets are committed closes that window: a write they did not get in time fails the call,
 * and the caller retries it (the offsets wait; a result already there is a duplicate and dropped).
 *
 * WAIT counts the writes of the connection it is sent on, so it goes on the connection of the
 * master that ran the write: the one server, or the cluster's connection to the node of the key.
 * How many replicas each master has online is read from INFO replication every REFRESH_MS
 * and after every WAIT that fell short, so a master without replicas is never waited on, and a
 * replica that went away stops being waited for within one retry.
 */
import type { Config } from '../config.js';
import { isCluster, type RedisClient } from './client.js';
import { masters, nodeOf } from './sharding.js';

const REFRESH_MS = 5000;

export class ReplicaWaitShortError extends Error {
  constructor(node: string, want: number, got: number, timeoutMs: number) {
    super(`NOREPLICAS ${got} of ${want} replicas of ${node || 'Redis'} acknowledged the write within ${timeoutMs} ms (WAIT)`);
    this.name = 'ReplicaWaitShortError';
  }
}

export class ReplicaWait {
  private connected = new Map<string, number>();
  private refreshedAtMs = 0;
  private refreshing: Promise<void> | null = null;

  constructor(
    private readonly client: RedisClient,
    private readonly config: Config,
  ) {}

  /** Replicas connected to the master of `key`, as last read (0 before the first read). */
  replicasOf(key: string): number {
    return this.connected.get(nodeOf(this.client, key)) ?? 0;
  }

  /** Runs `write` (a write to the master of `routeKey`), then WAITs on that master when it has replicas. */
  async after<T>(routeKey: string, write: () => Promise<T>): Promise<T> {
    const asked = this.config.redis.waitReplicas;
    if (asked === 0) return write();
    if (Date.now() - this.refreshedAtMs >= REFRESH_MS) await this.refresh();
    const out = await write();
    const node = nodeOf(this.client, routeKey);
    const want = Math.min(asked, this.connected.get(node) ?? 0);
    if (want === 0) return out;
    const conn = isCluster(this.client) ? masters(this.client).get(node) : this.client;
    // The master's connection went away (failover): the retry finds the new master.
    if (conn === undefined) throw new ReplicaWaitShortError(node, want, 0, 0);
    const timeoutMs = this.config.redis.waitTimeoutMs;
    const got = Number(await conn.wait(want, timeoutMs));
    if (got < want) {
      this.refreshedAtMs = 0;
      throw new ReplicaWaitShortError(node, want, got, timeoutMs);
    }
    return out;
  }

  /** Reads connected_slaves of every master; one read at a time. */
  refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      const next = new Map<string, number>();
      await Promise.all(
        [...masters(this.client)].map(async ([node, conn]) => {
          const info = await conn.info('replication');
          // Only replicas past their initial sync: one still loading the master's snapshot cannot
          // confirm a write yet (lines `slaveN:ip=...,state=online,offset=...`).
          next.set(node, (info.match(/^slave\d+:.*state=online/gm) ?? []).length);
        }),
      );
      this.connected = next;
      this.refreshedAtMs = Date.now();
    })().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }
}
