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
import { PROJECT_ROOT } from '../../src/config.js';
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
  },
});
const devices = Number(values.devices);
const rate = Number(values.rate);
const durationS = Number(values.duration);
const warmupS = Number(values.warmup);
const perConn = Number(values['per-connection']);
const port = Number(values.port);
const prefix = `bench${Date.now()}.`;

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
    env: { ...process.env, STRATUS_KAFKA_TOPIC_PREFIX: prefix, STRATUS_REDIS_KEY_PREFIX: `${prefix}:`, STRATUS_GATEWAY_INFLIGHT_MAX: '100000' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  await new Promise<void>((resolve) => {
    let err = '';
    engine.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      if (/stratus run: gateway, processor, forwarder/.test(err)) resolve();
    });
  });
  const rssIdle = [engine.pid!, ...childPids(engine.pid!)].reduce((a, p) => a + rssKb(p), 0);

  // Open every stream, then measure what the connected fleet costs.
  const clients: Client[] = [];
  const calls: ClientDuplexStream<Uplink, Downlink>[] = [];
  const sentAt: Float64Array[] = [];
  let acked = 0;
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
    calls.push(call);
  }
  await new Promise((r) => setTimeout(r, 2000));
  const connectS = (performance.now() - t0Connect) / 1000;
  const gatewayPids = Number(values.threads) > 1 ? childPids(engine.pid!) : [engine.pid!];
  const rssConnected = [engine.pid!, ...childPids(engine.pid!)].reduce((a, p) => a + rssKb(p), 0);

  // Open loop: device i sends seq s at start + (s-1)/rate + phase_i, whatever the server does.
  const start = performance.now();
  const intervalMs = 1000 / rate;
  const phase = (i: number) => (i / devices) * intervalMs;
  const next = new Array<number>(devices).fill(1);
  const endAt = start + (warmupS + durationS) * 1000;
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
      for (let i = 0; i < devices; i++) {
        const due = start + phase(i) + (next[i]! - 1) * intervalMs;
        if (due > now) continue;
        const events = [];
        let s = next[i]!;
        for (; start + phase(i) + (s - 1) * intervalMs <= now && s < sentAt[i]!.length - 1; s++) {
          const intended = start + phase(i) + (s - 1) * intervalMs;
          sentAt[i]![s] = intended;
          events.push({ deviceId: '', seq: s, type: 'sq', value: s, payload: Buffer.alloc(0), sentAtUs: Math.round(intended * 1000) });
        }
        next[i] = s;
        if (events.length > 0) calls[i]!.write({ events });
      }
      if (now >= endAt) resolve();
      else setTimeout(tick, 2);
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
  const pct = (h: hdr.Histogram, p: number) => Math.round(h.getValueAtPercentile(p) / 10) / 100; // ms, 2 decimals
  process.stdout.write(
    JSON.stringify(
      {
        devices,
        threads: Number(values.threads),
        gatewayProcesses: gatewayPids.length,
        offeredEventsPerS: devices * rate,
        durableAckedPerS: Math.round(ackedMeasured / measuredS),
        resultsPerS: Math.round(resultsMeasured / measuredS),
        ackMs: { p50: pct(ackUs, 50), p99: pct(ackUs, 99), p999: pct(ackUs, 99.9), max: pct(ackUs, 100) },
        resultMs: { p50: pct(resultUs, 50), p99: pct(resultUs, 99), p999: pct(resultUs, 99.9), max: pct(resultUs, 100) },
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
