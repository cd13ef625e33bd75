/**
 * Metrics ingest into Redis Streams: IngestMetrics calls of --batch metrics from --clients
 * concurrent clients (closed loop: each sends its next call when the last one answered) for
 * --duration seconds, against data_nexus.MetricsService on a grpc Server on 127.0.0.1 and the real
 * Redis of the local stack. Prints figures as JSON; asserts nothing. The stream key is deleted at
 * the end.
 *
 *   node dist/bench/e2e/streams-ingest.js --batch 100 --clients 16 --duration 10
 */
import { parseArgs } from 'node:util';
import { credentials, makeGenericClientConstructor, Server, ServerCredentials, type Client, type ServiceError } from '@grpc/grpc-js';
import * as hdr from 'hdr-histogram-js';
import { loadConfig } from '../../src/config.js';
import { connectRedis, createRedis } from '../../src/redis/client.js';
import { metricsServiceDefinition, startMetricsService } from '../../src/streams/metrics-service.js';
import { topology } from '../../src/topology.js';

const { values } = parseArgs({
  options: {
    batch: { type: 'string', default: '100' },
    clients: { type: 'string', default: '16' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    labels: { type: 'string', default: '3' },
  },
});
const batch = Number(values.batch);
const clients = Number(values.clients);
const durationS = Number(values.duration);
const warmupS = Number(values.warmup);
const labelCount = Number(values.labels);

async function main(): Promise<void> {
  const prefix = `bench${Date.now()}:`;
  const config = loadConfig({ flags: { 'redis-key-prefix': prefix, 'streams-batch-metrics-max': String(Math.max(batch, 1)) } });
  const service = await startMetricsService(config, 'bench');
  const server = new Server();
  service.addTo(server);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  // The client side uses the same definition (proto-loader, int64 as strings).
  const Ctor = makeGenericClientConstructor(metricsServiceDefinition(), 'MetricsService') as unknown as Ctor;
  const metrics = Array.from({ length: batch }, (_, i) => ({
    name: `bench_metric_${i % 10}`,
    value: i,
    type: ['counter', 'gauge', 'histogram', 'summary'][i % 4]!,
    timestamp: String(BigInt(Date.now()) * 1000n),
    labels: Object.fromEntries(Array.from({ length: labelCount }, (_, j) => [`label_${j}`, `value_${(i + j) % 7}`])),
  }));
  const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  let calls = 0;
  let failures = 0;
  let measuring = false;
  let running = true;
  const t0 = Date.now();
  const loops = Array.from({ length: clients }, async () => {
    const client = new Ctor(`127.0.0.1:${port}`, credentials.createInsecure());
    while (running) {
      const start = process.hrtime.bigint();
      const err = await new Promise<ServiceError | null>((resolve) => client.IngestMetrics({ metrics }, (e: ServiceError | null) => resolve(e)));
      if (!measuring) continue;
      if (err !== null) failures++;
      else {
        calls++;
        hist.recordValue(Number((process.hrtime.bigint() - start) / 1000n));
      }
    }
    client.close();
  });
  await new Promise((r) => setTimeout(r, warmupS * 1000));
  measuring = true;
  const m0 = Date.now();
  await new Promise((r) => setTimeout(r, durationS * 1000));
  measuring = false;
  const elapsedS = (Date.now() - m0) / 1000;
  running = false;
  await Promise.all(loops);
  const redis = createRedis(config, 'bench-cleanup');
  await connectRedis(redis);
  const streamLength = await redis.xlen(topology(config).redis.metricsStream);
  const redisVersion = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? 'unknown';
  await redis.del(topology(config).redis.metricsStream);
  redis.disconnect();
  await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  await service.stop();
  process.stdout.write(
    JSON.stringify(
      {
        entriesPerSec: Math.round((calls * batch) / elapsedS),
        callsPerSec: Math.round(calls / elapsedS),
        callLatencyMsP50: hist.getValueAtPercentile(50) / 1000,
        callLatencyMsP99: hist.getValueAtPercentile(99) / 1000,
        callLatencyMsMax: hist.maxValue / 1000,
        failures,
        streamLengthAtEnd: streamLength,
        params: { batch, clients, durationS, warmupS, labels: labelCount, streamLengthMax: config.streams.lengthMax, node: process.version, redis: redisVersion, wallS: (Date.now() - t0) / 1000 },
      },
      null,
      2,
    ) + '\n',
  );
}

type Ctor = new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => Client & { IngestMetrics(req: object, cb: (e: ServiceError | null) => void): void };
main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
