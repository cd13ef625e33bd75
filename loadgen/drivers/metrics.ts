/**
 * data_nexus.MetricsService/IngestMetrics, the Python system's API, which feeds the Redis Streams
 * path: one unary call per uplink (B metrics), acknowledged when it returns one entry id per
 * metric. Each event is a gauge `loadgen_value{device=...}`. No results come back on this API.
 */
import type { ServiceError } from '@grpc/grpc-js';
import { loadSeedService } from '../../src/gateway/seed-service.js';
import { deviceMetadata, UNARY_API, unarySession, type Driver } from './driver.js';

export function metricsDriver(deadlineMs: number): Driver {
  const def = loadSeedService('data_nexus/metrics.proto', 'data_nexus.MetricsService');
  const m = def.IngestMetrics!;
  return {
    ...UNARY_API,
    open(client, device, _cursor, ev) {
      const labels = { device: device.id };
      return unarySession((events) => {
        const seqs = events.map((e) => e.seq);
        const now = String(Date.now());
        client.makeUnaryRequest(
          m.path,
          m.requestSerialize,
          m.responseDeserialize,
          { metrics: events.map((e) => ({ name: 'loadgen_value', value: e.value, type: 'gauge', timestamp: now, labels })) },
          deviceMetadata(device, 'x-device-id'),
          { deadline: Date.now() + deadlineMs },
          (err: ServiceError | null, res?: unknown) => {
            if (err !== null) return ev.callFailed(err, seqs);
            const ids = (res as { eventIds?: string[] } | undefined)?.eventIds ?? [];
            if (ids.length === seqs.length) ev.ackedSeqs(seqs);
            else for (const seq of seqs) ev.rejected(seq, 'WRONG_ID_COUNT');
          },
        );
      });
    },
  };
}
