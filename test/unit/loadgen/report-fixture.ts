/**
 * A small LoadgenSummary of a 2,000-device run for the report and compare tests: every field set,
 * round figures so expected deltas are exact.
 */
import type { LatencyStats, LoadgenSummary } from '../../../loadgen/summary.js';

export function latency(p50: number, p90: number, p99: number, p999: number, max: number): LatencyStats {
  return {
    count: 1000, minMs: p50 / 2, meanMs: p50, p50Ms: p50, p90Ms: p90, p99Ms: p99, p999Ms: p999, p9999Ms: max, maxMs: max,
    distribution: [[0, p50 / 2], [50, p50], [90, p90], [99, p99], [99.9, p999], [100, max]],
  };
}

export function summary(over: Partial<LoadgenSummary> = {}): LoadgenSummary {
  return {
    version: 1,
    startedAt: '2026-12-05T02:00:00.000Z',
    target: '127.0.0.1:21351',
    api: 'stratus',
    profile: 'iot',
    loop: 'open',
    options: { devices: 2000, totalRate: 1000, ratePerDevice: 0.5, batch: 1, durationS: 30, warmupS: 5 },
    environment: { node: 'v20.20.2', platform: 'linux x64', cpuModel: 'CPU', cpus: 2, memoryBytes: 2 ** 33 },
    runS: 40,
    measuredS: 30,
    window: { startS: 5, endS: 35 },
    fleet: { devices: 2000, connections: 20, workers: 1, connectedPeak: 2000, fleetConnectS: 1.2, slowReaders: 0 },
    counts: { sent: 40_000, acked: 40_000, results: 40_000, rejected: {}, errors: {}, missing: 0, duplicates: 0, wrong: 0, unacked: 0, heldUnsent: 0, reconnects: 0 },
    throughput: { sentPerS: 1000, ackedPerS: 1000, resultsPerS: 1000 },
    latency: { ack: latency(4, 8, 20, 50, 80), result: latency(10, 20, 40, 100, 200) },
    series: {
      tS: [], connected: [], sentPerS: [], ackedPerS: [], resultsPerS: [], errorsPerS: [], latencyP99Ms: [],
      ackLatency: { p50Ms: [], p90Ms: [], p99Ms: [], p999Ms: [] }, resultLatency: { p50Ms: [], p90Ms: [], p99Ms: [], p999Ms: [] },
    },
    footprint: { rssBytesBaseline: 1, rssBytesPeak: 2, rssBytesPerDevice: 0, cpuUserS: 1, cpuSystemS: 1, cpuShare: 0.1 },
    thresholds: [],
    ...over,
  };
}

