/**
 * data_nexus.MetricsService (proto/data_nexus/metrics.proto), served on the gateway's port.
 *
 * Reads: IngestMetric / IngestMetrics calls. Writes: one entry per metric to the metrics stream
 * (topology redis.metricsStream, XADD MAXLEN ~ streams.lengthMax; fields in metric-entry.ts), read
 * by the exporter. Guarantee: a call answered OK has every metric in the stream, and its eventIds
 * are their entry ids in the order sent; a call refused with INVALID_ARGUMENT or RESOURCE_EXHAUSTED
 * wrote nothing; a call that failed with UNAVAILABLE had what it wrote deleted again, except when
 * Redis went away in between or the exporter had read it (then resending repeats it: at least once).
 * A script call the Redis client sends again after a lost reply is written once (writeMetrics).
 *
 * Decoded with @grpc/proto-loader (its own protobufjs with `long`), not src/gateway/protocol.ts
 * whose protobufjs has Long disabled: `longs: String` hands int64 timestamps over as exact decimal
 * strings, and they are stored as such.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setImmediate as yieldTurn } from 'node:timers/promises';
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
  // At most streams.callsActiveMax calls are handled at once (call-limits.ts lets the others wait
  // unread), so this writes at most that many batches at a time.
  const write = (batch: readonly Metric[]): Promise<string[]> => writeMetrics(redis, config, batch);
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
          budget.take(input.length);
          void (async () => {
            const batch: Metric[] = [];
            for (let i = 0; i < input.length; i++) {
              // A turn every CHECK_CHUNK metrics: checking 10,000 takes ~10 ms of event loop, and
              // device streams share it.
              if (i > 0 && i % CHECK_CHUNK === 0) await yieldTurn();
              const m = checkMetric(input[i]!, `metrics[${i}]`);
              if (typeof m === 'string') return refuse(cb, m);
              batch.push(m);
            }
            try {
              cb(null, { eventIds: await write(batch) });
            } catch (err) {
              cb(unavailable(err));
            }
          })();
        },
      });
    },
    async stop() {
      disconnectRedis(redis);
    },
  };
}

/** Metrics checked between two turns of the event loop. */
const CHECK_CHUNK = 1000;

function refuse(cb: sendUnaryData<never>, details: string): void {
  engineMetrics.streamsRejected.inc();
  cb(grpcError(ErrorCode.REQUEST_INVALID, details));
}

function unavailable(err: unknown) {
  return grpcError(ErrorCode.REDIS_UNAVAILABLE, `Redis did not take the metrics (${err instanceof Error ? err.message : String(err)}); send them again`);
}

/**
 * The script that XADDs a slice of a batch, in order, as one step. With the `#!lua` shebang Redis
 * refuses the whole script when it is out of memory instead of running part of it.
 *
 * Idempotent per call: each call carries a token of its own (KEYS[2]). The client sends a command
 * again when its connection dropped before the reply (autoResendUnfulfilledCommands, at least
 * once); a call that already ran finds its token and answers the ids it added then (one script
 * call is one step, so they are exactly the entries from its first id to its last) instead of
 * adding them twice. The token lives ARGV[2] ms, well beyond the client's last resend.
 *
 *   KEYS[1] the metrics stream   KEYS[2] the call's token (topology redis.metricsWrite)
 *   ARGV[1] MAXLEN ~ (streams.lengthMax)   ARGV[2] token life, ms
 *   ARGV[3 + 5i ..] name, type, value, ts, labels of metric i (metric-entry.ts encodeEntry's values)
 */
const XADD_ALL_SCRIPT = `#!lua
local ids = {}
local done = redis.call('GET', KEYS[2])
if done then
  local first, last, n = string.match(done, '^(%S+) (%S+) (%d+)$')
  for _, e in ipairs(redis.call('XRANGE', KEYS[1], first, last)) do ids[#ids + 1] = e[1] end
  if #ids ~= tonumber(n) then
    return redis.error_reply('STRATUS_TRIMMED the stream was trimmed before this resent call could read its ids back')
  end
  return ids
end
for i = 3, #ARGV, 5 do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'name', ARGV[i], 'type', ARGV[i + 1], 'value', ARGV[i + 2], 'ts', ARGV[i + 3], 'labels', ARGV[i + 4])
end
redis.call('SET', KEYS[2], ids[1] .. ' ' .. ids[#ids] .. ' ' .. #ids, 'PX', ARGV[2])
return ids`;

/**
 * How long a script call's token is kept (ms). The client sends an unanswered call again right
 * after it reconnects, and fails it at its second failed attempt (redis/client.ts: 2 s connect
 * timeout per attempt, so within ~6 s). One key of ~100 bytes per script call: at the default
 * streams.metricsPerSecondMax in single-metric calls, ~200,000 keys, ~20 MB at most.
 */
const WRITE_TOKEN_MS = 20_000;

/**
 * Metrics per script call. A call of 10,000 in one script held Redis for ~40 ms, and every device's
 * admission waited behind it; 1,000 hold it ~4 ms, with a turn of the event loop between slices.
 */
const WRITE_SLICE = 1000;

type WithXaddAll = RedisClient & { stratusXaddMetrics?: (stream: string, token: string, ...args: string[]) => Promise<string[]> };

/**
 * Writes the batch in slices of WRITE_SLICE, in order, and returns the entry ids in order. A slice
 * resent by the client after a lost reply is written once (see XADD_ALL_SCRIPT). When a slice
 * fails, the entries of the slices before it are deleted again (XDEL) before the error is thrown,
 * so a failed call leaves nothing in the stream unless Redis went away in between or the exporter
 * read them meanwhile (then the device's resend repeats them: at least once). (One MULTI of an
 * XADD per metric was all or nothing but cost the engine ~100 ms of event loop per 10,000 metrics
 * in ioredis, and held Redis ~30 ms in one go.)
 */
export async function writeMetrics(redis: RedisClient, config: Config, batch: readonly Metric[]): Promise<string[]> {
  const client = redis as WithXaddAll;
  if (client.stratusXaddMetrics === undefined) client.defineCommand('stratusXaddMetrics', { numberOfKeys: 2, lua: XADD_ALL_SCRIPT });
  const keys = topology(config).redis;
  const stream = keys.metricsStream;
  const maxLen = String(config.streams.lengthMax);
  const ids: string[] = [];
  for (let from = 0; from < batch.length; from += WRITE_SLICE) {
    if (from > 0) await yieldTurn();
    const args: string[] = [maxLen, String(WRITE_TOKEN_MS)];
    for (const m of batch.slice(from, from + WRITE_SLICE)) {
      const f = encodeEntry(m);
      assert.equal(f.length, 10, 'a metric entry has five fields');
      args.push(f[1]!, f[3]!, f[5]!, f[7]!, f[9]!);
    }
    let written: string[];
    try {
      written = await client.stratusXaddMetrics!(stream, keys.metricsWrite(randomUUID()), ...args);
    } catch (err) {
      // Best effort: if Redis is gone, so is the chance to undo; the error below says the call failed.
      if (ids.length > 0) await redis.xdel(stream, ...ids).catch(() => 0);
      throw err;
    }
    assert.equal(written.length, (args.length - 2) / 5, 'one id per metric');
    ids.push(...written);
  }
  engineMetrics.streamsIngested.inc(ids.length);
  engineMetrics.redisPipelineDepth.observe({ path: 'metrics-ingest' }, ids.length);
  return ids;
}
