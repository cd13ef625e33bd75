/**
 * data_nexus.MetricsService (proto/data_nexus/metrics.proto), served on the gateway's port.
 *
 * Reads: IngestMetric / IngestMetrics calls. Writes: one entry per metric to the metrics stream
 * (topology redis.metricsStream, XADD MAXLEN ~ streams.lengthMax; fields in metric-entry.ts), read
 * by the exporter. Guarantee: a call answered OK has every metric in the stream, and its eventIds
 * are their entry ids in the order sent; a call refused with INVALID_ARGUMENT wrote nothing; a call
 * that failed with UNAVAILABLE wrote nothing, except when the connection dropped after Redis ran
 * the transaction (then resending duplicates it: at least once).
 *
 * Decoded with @grpc/proto-loader (its own protobufjs with `long`), not src/gateway/protocol.ts
 * whose protobufjs has Long disabled: `longs: String` hands int64 timestamps over as exact decimal
 * strings, and they are stored as such.
 */
import type { sendUnaryData, Server, ServerUnaryCall, ServiceDefinition } from '@grpc/grpc-js';
import type { Config } from '../config.js';
import { ErrorCode } from '../errors.js';
import { grpcError } from '../gateway/grpc-status.js';
import type { GatewayService } from '../gateway/services.js';
import { metrics as engineMetrics } from '../http/metrics.js';
import { connectRedis, createRedis, disconnectRedis, redisUnavailable, type RedisClient } from '../redis/client.js';
import { topology } from '../topology.js';
import { checkMetric, encodeEntry, type Metric, type MetricMessage } from './metric-entry.js';
import { loadSeedService } from '../gateway/seed-service.js';
import { RateBudget } from '../rate-budget.js';

export const METRICS_SERVICE_NAME = 'data_nexus.MetricsService';
export const METRICS_PROTO_FILE = 'data_nexus/metrics.proto';

/** The service definition, decoded as described above (also what tests' and the bench's servers add). */
export function metricsServiceDefinition(): ServiceDefinition {
  return loadSeedService(METRICS_PROTO_FILE, METRICS_SERVICE_NAME);
}

interface BatchMetrics {
  metrics?: MetricMessage[];
}

export async function startMetricsService(config: Config, instanceId: string): Promise<GatewayService> {
  // No offline queue: while Redis is unreachable a call fails at once with UNAVAILABLE, and the
  // client decides, instead of calls piling up in ioredis's unbounded queue.
  const redis = createRedis(config, `${instanceId}-metrics`, { offlineQueue: false });
  try {
    await connectRedis(redis);
  } catch (err) {
    disconnectRedis(redis);
    throw redisUnavailable(config, 'refused the metrics service connection', err);
  }
  const service = metricsServiceDefinition();
  // Metrics per second this instance takes (streams.metricsPerSecondMax): call-limits.ts refuses new
  // calls while it is spent; each call pays for its metrics once decoded.
  const budget = new RateBudget(config.streams.metricsPerSecondMax);
  // Transactions in flight to Redis, at most streams.writesInflightMax; the rest wait in call order.
  // Redis runs a MULTI of 10,000 XADDs as one step (~10-20 ms), and every path shares that Redis:
  // a burst of big batches goes through a few at a time instead of stalling everyone behind all of
  // them. The waiting list holds at most streams.callsMax calls (call-limits.ts refuses beyond).
  let writing = 0;
  const waiting: (() => void)[] = [];
  const write = async (batch: readonly Metric[]): Promise<string[]> => {
    if (writing >= config.streams.writesInflightMax) await new Promise<void>((resolve) => waiting.push(resolve));
    else writing++;
    try {
      return await writeMetrics(redis, config, batch);
    } finally {
      // Hand the slot straight to the next waiter (writing stays the same), or free it.
      const next = waiting.shift();
      if (next !== undefined) next();
      else writing--;
    }
  };
  return {
    names: [METRICS_SERVICE_NAME],
    protoFiles: [METRICS_PROTO_FILE],
    callBudget: { group: 'metrics', budget, option: 'streams.metricsPerSecondMax' },
    addTo(server: Server) {
      server.addService(service, {
        IngestMetric: (call: ServerUnaryCall<MetricMessage, unknown>, cb: sendUnaryData<{ eventId: string }>) => {
          const m = checkMetric(call.request, '');
          if (typeof m === 'string') return refuse(cb, m);
          budget.take(1);
          write([m]).then(
            ([id]) => cb(null, { eventId: id! }),
            (err: unknown) => cb(unavailable(err)),
          );
        },
        IngestMetrics: (call: ServerUnaryCall<BatchMetrics, unknown>, cb: sendUnaryData<{ eventIds: string[] }>) => {
          const input = call.request.metrics ?? [];
          const max = config.streams.batchMetricsMax;
          if (input.length === 0) return refuse(cb, `metrics is empty; send 1..${max} metrics per IngestMetrics call`);
          if (input.length > max) return refuse(cb, `metrics has ${input.length} entries; at most ${max} per IngestMetrics call (streams.batchMetricsMax)`);
          const batch: Metric[] = [];
          for (let i = 0; i < input.length; i++) {
            const m = checkMetric(input[i]!, `metrics[${i}]`);
            if (typeof m === 'string') return refuse(cb, m);
            batch.push(m);
          }
          budget.take(batch.length);
          write(batch).then(
            (eventIds) => cb(null, { eventIds }),
            (err: unknown) => cb(unavailable(err)),
          );
        },
      });
    },
    async stop() {
      disconnectRedis(redis);
    },
  };
}

function refuse(cb: sendUnaryData<never>, details: string): void {
  engineMetrics.streamsRejected.inc();
  cb(grpcError(ErrorCode.REQUEST_INVALID, details));
}

function unavailable(err: unknown) {
  return grpcError(ErrorCode.REDIS_UNAVAILABLE, `Redis did not take the metrics (${err instanceof Error ? err.message : String(err)}); send them again`);
}

/**
 * One MULTI/EXEC of XADDs, sent in one write (ioredis pipelines the transaction), so a call is all
 * or nothing: a connection lost before EXEC discards the queued XADDs, and Redis 7 refuses the
 * whole EXEC when it is out of memory instead of running part of it. A plain pipeline would be as
 * fast but could leave the first half of a batch in the stream with the call failed, and the
 * client's resend would duplicate that half. Returns the entry ids in order.
 */
export async function writeMetrics(redis: RedisClient, config: Config, batch: readonly Metric[]): Promise<string[]> {
  const stream = topology(config).redis.metricsStream;
  const maxLen = String(config.streams.lengthMax);
  const replies = await redis.multi(batch.map((m) => ['xadd', stream, 'MAXLEN', '~', maxLen, '*', ...encodeEntry(m)])).exec();
  if (replies === null) throw new Error('the transaction was discarded');
  const ids = replies.map(([err, id]) => {
    if (err !== null) throw err;
    return id as string;
  });
  engineMetrics.streamsIngested.inc(ids.length);
  engineMetrics.redisPipelineDepth.observe({ path: 'metrics-ingest' }, ids.length);
  return ids;
}
