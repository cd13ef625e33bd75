/**
 * End-to-end load on a real `stratus run` (gateway + processor + forwarder) against the local
 * stack: N devices on Connect streams, each sending `sq` events on an open-loop schedule. Latency
 * is measured from each event's intended send time (so a stall shows in the tail), to its durable
 * ack and to its result. Prints figures as JSON; asserts nothing. The fleet simulator proper
 * (`stratus loadgen`) is its own issue; this is the pipeline's own measurement.
 *
 *   node dist/bench/e2e/pipeline-load.js --devices 1000 --rate 5 --duration 20 --threads 1
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, credentials, Metadata, type ClientDuplexStream } from '@grpc/grpc-js';
import * as hdr from 'hdr-histogram-js';
import { loadConfig, PROJECT_ROOT } from '../../src/config.js';
import { deleteTopics } from '../../src/kafka/admin.js';
import { topology } from '../../src/topology.js';
import { codecs, type Downlink, type Uplink } from '../../src/gateway/protocol.js';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000' },
    rate: { type: 'string', default: '5' }, // events per second per device
    duration: { type: 'string', default: '20' }, // seconds of measured load
    warmup: { type: 'string', default: '5' },
    threads: { type: 'string', default: '1' },
    'per-connection': { type: 'string', default: '100' },
    port: { type: 'string', default: '50190' },
    type: { type: 'string', default: 'sq' }, // sha256: CPU-heavy, --value rounds per event
    value: { type: 'string' },
    'processor-threads': { type: 'string', default: '0' },
  },
});
const devices = Number(values.devices);
const rate = Number(values.rate);
const durationS = Number(values.duration);
const warmupS = Number(values.warmup);
const perConn = Number(values['per-connection']);
const port = Number(values.port);
const prefix = `bench${Date.now()}.`;
const type = String(values.type);
const fixedValue = values.value === undefined ? null : Number(values.value);
const EMPTY = Buffer.alloc(0);

const hist = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
const ackUs = hist();
const resultUs = hist();

function rssKb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}
function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function main(): Promise<void> {
  const engine = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'stratus.js'), 'run', '--grpc-port', String(port), '--threads', String(values.threads), '--instance-id', `bench-${port}`], {
    env: { ...process.env, STRATUS_KAFKA_TOPIC_PREFIX: prefix, STRATUS_REDIS_KEY_PREFIX: `${prefix}:`, STRATUS_GATEWAY_INFLIGHT_MAX: '100000', STRATUS_REDIS_DEVICE_STATE_TTL_MS: '600000', STRATUS_PROCESSOR_THREADS: String(values['processor-threads']), STRATUS_HTTP_PORT: String(port + 1) },
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
  const rssIdle = [engine.pid!, ...childPids(engine.pid!)].reduce((a, p) => a + rssKb(p), 0);

  // Open every stream, then measure what the connected fleet costs.
  const clients: Client[] = [];
  const calls: ClientDuplexStream<Uplink, Downlink>[] = [];
  const sentAt: Float64Array[] = [];
  let acked = 0;
  let connected = 0;
  let results = 0;
  let measuring = false;
  const t0Connect = performance.now();
  for (let i = 0; i < devices; i++) {
    if (i % perConn === 0) clients.push(new Client(`127.0.0.1:${port}`, credentials.createInsecure()));
    const md = new Metadata();
    md.set('x-device-id', `${prefix}d${i}`);
    const call = clients[clients.length - 1]!.makeBidiStreamRequest('/stratus.v1.DeviceGateway/Connect', codecs.Uplink.serialize, codecs.Downlink.decodeRaw, md);
    const times = new Float64Array(Math.ceil(rate * (durationS + warmupS + 5)) + 2);
    sentAt.push(times);
    let lastAck = 0;
    call.on('data', (d: Downlink) => {
      const now = performance.now();
      const a = Number(d.ackedSeq ?? 0);
      for (let s = lastAck + 1; s <= a; s++) {
        if (measuring) ackUs.recordValue(Math.max(1, Math.round((now - times[s]!) * 1000)));
        acked++;
      }
      if (a > lastAck) lastAck = a;
      for (const r of d.results ?? []) {
        if (measuring) resultUs.recordValue(Math.max(1, Math.round((now - times[Number(r.seq)]!) * 1000)));
        results++;
      }
    });
    call.on('error', () => {});
    call.once('metadata', () => connected++);
    calls.push(call);
  }
  // Connected = the gateway answered the stream's headers (it sends them when it accepts a stream).
  const deadline = performance.now() + 120_000;
  while (connected < devices && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const connectS = (performance.now() - t0Connect) / 1000;
  await new Promise((r) => setTimeout(r, 1000));
  const gatewayPids = Number(values.threads) > 1 ? childPids(engine.pid!) : [engine.pid!];
  const rssConnected = [engine.pid!, ...childPids(engine.pid!)].reduce((a, p) => a + rssKb(p), 0);

  // Open loop: the fleet's events are one sequence j = 0, 1, 2, ... spaced 1 / (devices * rate)
  // apart; event j is seq floor(j / devices) + 1 of device j % devices, due at start + j * gap,
  // whatever the server does. Each tick sends exactly the events that have come due: work
  // proportional to events, not to devices.
  const start = performance.now();
  const gapMs = 1000 / (rate * devices);
  const endAt = start + (warmupS + durationS) * 1000;
  const seqMax = sentAt[0]!.length - 2;
  let nextJ = 0;
  let ackedAtMeasureStart = 0;
  let resultsAtMeasureStart = 0;
  let measureStart = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      if (!measuring && now - start >= warmupS * 1000) {
        measuring = true;
        measureStart = now;
        ackedAtMeasureStart = acked;
        resultsAtMeasureStart = results;
      }
      const dueJ = Math.floor((Math.min(now, endAt) - start) / gapMs);
      for (; nextJ <= dueJ; nextJ++) {
        const i = nextJ % devices;
        const seq = Math.floor(nextJ / devices) + 1;
        if (seq > seqMax) continue;
        const intended = start + nextJ * gapMs;
        sentAt[i]![seq] = intended;
        calls[i]!.write({ events: [{ deviceId: '', seq, type, value: fixedValue ?? seq, payload: EMPTY, sentAtUs: Math.round(intended * 1000) }] });
      }
      if (now >= endAt) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  const measuredS = (performance.now() - measureStart) / 1000;
  const ackedMeasured = acked - ackedAtMeasureStart;
  const resultsMeasured = results - resultsAtMeasureStart;
  const rssLoaded = [engine.pid!, ...childPids(engine.pid!)].reduce((a, p) => a + rssKb(p), 0);
  for (const c of calls) c.cancel();
  for (const c of clients) c.close();
  engine.kill('SIGTERM');
  await new Promise((r) => engine.on('exit', r));
  // The run's topics go with it; its Redis keys expire in 10 minutes (the TTL set above).
  const config = loadConfig({ flags: { 'kafka-topic-prefix': prefix } });
  await deleteTopics(config, [topology(config).topics.events, topology(config).topics.results]).catch(() => {});
  const pct = (h: hdr.Histogram, p: number) => Math.round(h.getValueAtPercentile(p) / 10) / 100; // ms, 2 decimals
  process.stdout.write(
    JSON.stringify(
      {
        devices,
        threads: Number(values.threads),
        type,
        processorThreads: Number(values['processor-threads']),
        gatewayProcesses: gatewayPids.length,
        offeredEventsPerS: devices * rate,
        durableAckedPerS: Math.round(ackedMeasured / measuredS),
        resultsPerS: Math.round(resultsMeasured / measuredS),
        ackMs: { p50: pct(ackUs, 50), p99: pct(ackUs, 99), p999: pct(ackUs, 99.9), max: pct(ackUs, 100) },
        resultMs: { p50: pct(resultUs, 50), p99: pct(resultUs, 99), p999: pct(resultUs, 99.9), max: pct(resultUs, 100) },
        connected,
        connectS: Math.round(connectS * 10) / 10,
        engineRssKb: { idle: rssIdle, connected: rssConnected, loaded: rssLoaded },
        engineKbPerConnectedDevice: Math.round(((rssConnected - rssIdle) / devices) * 10) / 10,
      },
      null,
      2,
    ) + '\n',
  );
}

await main();
