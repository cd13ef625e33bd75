/**
 * SSE deliveries/s on a real `stratus run` against the local stack. Two measurements, one run:
 *   buffered: results for D offline devices wait in their Redis buffers; D SSE clients connect at
 *             once and the clock runs until every result has arrived (the SSE path alone);
 *   live:     D SSE clients connected; events go in through IngestBatch, and the clock runs from
 *             the first send until every result has arrived (the whole pipeline, SSE at the end).
 * Every result is checked: each (device, seq) exactly once, in order. Prints JSON; asserts nothing.
 *
 *   node dist/bench/e2e/sse-deliveries.js --devices 200 --per-device 1000
 */
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, credentials, type ServiceError } from '@grpc/grpc-js';
import { loadConfig, PROJECT_ROOT } from '../../src/config.js';
import { deleteTopics } from '../../src/kafka/admin.js';
import { codecs, type BatchAck, type Event } from '../../src/gateway/protocol.js';
import { topology } from '../../src/topology.js';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '200' },
    'per-device': { type: 'string', default: '1000' },
    port: { type: 'string', default: '50290' },
  },
});
const devices = Number(values.devices);
const perDevice = Number(values['per-device']);
const port = Number(values.port);
const httpPort = port + 1;
const prefix = `ssebench${Date.now()}.`;
const EMPTY = Buffer.alloc(0);

/** One SSE stream; counts results and checks their seqs arrive as from+1, from+2, ... */
function openStream(deviceId: string, expectFrom: number, expectTo: number, lastEventId: number | null): Promise<{ done: Promise<void>; close: () => void; errors: () => number }> {
  return new Promise((resolve, reject) => {
    let next = expectFrom;
    let errors = 0;
    let rest = '';
    let finish!: () => void;
    const done = new Promise<void>((r) => (finish = r));
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (lastEventId !== null) headers['last-event-id'] = String(lastEventId);
    const req = request(`http://127.0.0.1:${httpPort}/v1/devices/${encodeURIComponent(deviceId)}/events`, { headers }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`SSE ${deviceId}: HTTP ${res.statusCode}`));
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        rest += chunk;
        let at: number;
        while ((at = rest.indexOf('\n\n')) >= 0) {
          const block = rest.slice(0, at);
          rest = rest.slice(at + 2);
          if (!block.startsWith('id: ')) continue;
          const seq = Number(block.slice(4, block.indexOf('\n')));
          if (seq !== next) errors++;
          next = seq + 1;
          if (seq === expectTo) finish();
        }
      });
      resolve({ done, close: () => req.destroy(), errors: () => errors });
    });
    req.on('error', () => {});
    req.end();
  });
}

async function ingest(client: Client, from: number, to: number): Promise<void> {
  // One IngestBatch per 100 seqs of 10 devices: 1,000 events per call. Calls in flight together
  // name different devices: a device's seqs must increase across calls too, and two concurrent
  // calls may reach the gateway in either order.
  let inflight = 0;
  let freed: (() => void) | null = null;
  for (let s0 = from; s0 <= to; s0 += 100) {
    const calls: Promise<void>[] = [];
    for (let d0 = 0; d0 < devices; d0 += 10) {
      const events: Event[] = [];
      for (let d = d0; d < Math.min(d0 + 10, devices); d++) {
        for (let seq = s0; seq <= Math.min(s0 + 99, to); seq++) events.push({ deviceId: `sse-${d}`, seq, type: 'sq', value: seq, payload: EMPTY, sentAtUs: 0 });
      }
      while (inflight >= 4) await new Promise<void>((r) => (freed = r));
      inflight++;
      const call = new Promise<void>((resolve, reject) =>
        client.makeUnaryRequest('/stratus.v1.DeviceGateway/IngestBatch', codecs.EventBatch.serialize, codecs.BatchAck.deserialize, { events }, (err: ServiceError | null, ack?: BatchAck) => {
          inflight--;
          freed?.();
          freed = null;
          if (err) reject(err);
          else if (ack!.accepted !== events.length) reject(new Error(`IngestBatch accepted ${ack!.accepted} of ${events.length}`));
          else resolve();
        }),
      );
      calls.push(call);
    }
    await Promise.all(calls);
  }
}

async function main(): Promise<void> {
  const engine = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'stratus.js'), 'run', '--roles', 'gateway,processor,forwarder', '--grpc-port', String(port), '--http-port', String(httpPort), '--instance-id', `ssebench-${port}`], {
    env: { ...process.env, STRATUS_KAFKA_TOPIC_PREFIX: prefix, STRATUS_REDIS_KEY_PREFIX: `${prefix}:`, STRATUS_REDIS_DEVICE_BUFFER_MAX: String(perDevice * 2), STRATUS_REDIS_DEVICE_STATE_TTL_MS: '600000' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  await new Promise<void>((resolve) => {
    let err = '';
    engine.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      // The engine's `started` line (JSON, src/log.ts).
      if (err.includes('"msg":"started"')) resolve();
    });
  });
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  const total = devices * perDevice;

  // 1. Buffered: fill every device's buffer while no stream is open, wait until the forwarder has
  //    routed it all (the last seq of every device is in its buffer), then connect every stream.
  await ingest(client, 1, perDevice);
  const config = loadConfig({ flags: { 'redis-key-prefix': `${prefix}:` } });
  const { createRedis } = await import('../../src/redis/client.js');
  const redis = createRedis(config, 'ssebench');
  await redis.connect();
  for (;;) {
    const lens = await Promise.all(Array.from({ length: devices }, (_, d) => redis.xlen(topology(config).redis.deviceBuffer(`sse-${d}`))));
    if (lens.every((n) => n >= perDevice)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  let t0 = performance.now();
  let streams = await Promise.all(Array.from({ length: devices }, (_, d) => openStream(`sse-${d}`, 1, perDevice, 0)));
  await Promise.all(streams.map((s) => s.done));
  const bufferedS = (performance.now() - t0) / 1000;
  const bufferedErrors = streams.reduce((a, s) => a + s.errors(), 0);
  for (const s of streams) s.close();
  await new Promise((r) => setTimeout(r, 500));

  // 2. Live: streams open (resuming after perDevice), then the events go in.
  streams = await Promise.all(Array.from({ length: devices }, (_, d) => openStream(`sse-${d}`, perDevice + 1, 2 * perDevice, perDevice)));
  t0 = performance.now();
  await ingest(client, perDevice + 1, 2 * perDevice);
  const ingestS = (performance.now() - t0) / 1000;
  await Promise.all(streams.map((s) => s.done));
  const liveS = (performance.now() - t0) / 1000;
  const liveErrors = streams.reduce((a, s) => a + s.errors(), 0);
  for (const s of streams) s.close();

  client.close();
  redis.disconnect();
  engine.kill('SIGTERM');
  await new Promise((r) => engine.once('exit', r));
  const t = topology(loadConfig({ flags: { 'kafka-topic-prefix': prefix } }));
  await deleteTopics(loadConfig({ flags: { 'kafka-topic-prefix': prefix } }), [t.topics.events, t.topics.results]).catch(() => {});
  process.stdout.write(JSON.stringify({
    params: { devices, perDevice, results: total },
    buffered: { seconds: +bufferedS.toFixed(2), deliveriesPerSec: Math.round(total / bufferedS), outOfOrderOrMissing: bufferedErrors },
    live: { seconds: +liveS.toFixed(2), deliveriesPerSec: Math.round(total / liveS), ingestEventsPerSec: Math.round(total / ingestS), outOfOrderOrMissing: liveErrors },
  }, null, 2) + '\n');
}

await main();
