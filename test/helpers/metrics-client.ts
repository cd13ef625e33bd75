/**
 * A data_nexus.MetricsService client built from the field list, not from proto/: what a
 * client of the Go service has. int64 as decimal strings (proto-loader `longs: String`).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, loadPackageDefinition, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import type { Config } from '../../src/config.js';
import { createRedis, connectRedis, type RedisClient } from '../../src/redis/client.js';
import { topology } from '../../src/topology.js';
import { deleteEach, scanKeys } from './redis-keys.js';

const FIELD_LIST = `
syntax = "proto3";
package data_nexus;
service MetricsService {
  rpc IngestMetric(Metric) returns (IngestResponse);
  rpc IngestMetrics(BatchMetrics) returns (BatchIngestResponse);
}
message Metric { string name = 1; double value = 2; string type = 3; int64 timestamp = 4; map<string,string> labels = 5; }
message BatchMetrics { repeated Metric metrics = 1; }
message IngestResponse { string eventId = 1; }
message BatchIngestResponse { repeated string eventIds = 1; }
`;

export interface MetricIn {
  name: string;
  value: number;
  type: string;
  timestamp?: string;
  labels?: Record<string, string>;
}

export interface MetricsClient {
  ingestMetric(m: MetricIn): Promise<{ eventId: string }>;
  ingestMetrics(metrics: MetricIn[]): Promise<{ eventIds: string[] }>;
  close(): void;
}

type Unary = (req: object, cb: (err: ServiceError | null, res: never) => void) => void;
type Ctor = new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => Client & { IngestMetric: Unary; IngestMetrics: Unary };

export function metricsClient(address: string): MetricsClient {
  const dir = mkdtempSync(join(tmpdir(), 'metrics-proto-'));
  writeFileSync(join(dir, 'metrics.proto'), FIELD_LIST);
  const def = loadSync(join(dir, 'metrics.proto'), { keepCase: true, longs: String, defaults: true });
  rmSync(dir, { recursive: true, force: true });
  const Service = (loadPackageDefinition(def) as unknown as { data_nexus: { MetricsService: Ctor } }).data_nexus.MetricsService;
  const client = new Service(address, credentials.createInsecure());
  const call = <T>(fn: Unary, req: object) => new Promise<T>((resolve, reject) => fn.call(client, req, (err, res) => (err ? reject(err) : resolve(res))));
  return {
    ingestMetric: (m) => call(client.IngestMetric, m),
    ingestMetrics: (metrics) => call(client.IngestMetrics, { metrics }),
    close: () => client.close(),
  };
}

/** A Redis client for assertions, and cleanup of the streams' keys (deleted in t.after). */
export async function streamsRedis(config: Config): Promise<RedisClient> {
  const redis = createRedis(config, 'test-streams');
  await connectRedis(redis);
  return redis;
}

export async function deleteStreamKeys(redis: RedisClient, config: Config): Promise<void> {
  const t = topology(config).redis;
  await deleteEach(redis, [t.metricsStream, t.metricsDead, ...(await scanKeys(redis, `${t.metricsWrite('')}*`))]);
  redis.disconnect();
}

/** Resolves once `check` returns true; throws after timeoutMs naming what was awaited. */
export async function until(what: string | (() => string), check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** XPENDING's count for the exporter group. */
export async function pendingCount(redis: RedisClient, config: Config): Promise<number> {
  const t = topology(config);
  const summary = (await redis.call('XPENDING', t.redis.metricsStream, t.groups.exporter)) as [number, ...unknown[]];
  return summary[0];
}
