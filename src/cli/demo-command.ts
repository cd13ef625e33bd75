/**
 * `stratus demo`: what a newcomer sees after `npm run demo`: the local stack, round trips through
 * the real servers, and a device fleet through the whole pipeline, with measured figures.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../config.js';
import { deleteTopics, ensureTopics } from '../kafka/admin.js';
import { kafkaRoundTrip } from '../kafka/round-trip.js';
import { redisRoundTrip } from '../redis/round-trip.js';
import { stackUp } from '../stack/stack.js';
import { topology } from '../topology.js';
import type { Command } from './command.js';

export const demoCommand: Command = {
  name: 'demo',
  summary: 'Start the local stack and show what Stratus does, end to end, with measured figures.',
  usage: 'demo [--messages N]',
  flags: {
    messages: { type: 'string', doc: 'messages per round trip (default 10000)' },
  },
  usesConfig: true,
  async run({ flags, config }) {
    const n = flags.messages === undefined ? 10_000 : Number(flags.messages);
    if (!Number.isInteger(n) || n < 1 || n > 10_000_000) {
      process.stderr.write(`stratus demo: --messages must be a whole number from 1 to 10000000 (got ${JSON.stringify(flags.messages)})\n`);
      return 2;
    }
    const out = (l = '') => process.stdout.write(l + '\n');
    const up = await stackUp(config, { progress: (l) => process.stderr.write(`${l}\n`) });
    out('Local stack');
    for (const s of up.services) {
      out(`  ${s.name.padEnd(5)} ${s.state.padEnd(8)} ${s.address}  pid ${s.pid}${s.startMs === null ? '' : `  ready in ${(s.startMs / 1000).toFixed(1)} s`}`);
    }
    out(`  topics ${up.topics.map((t) => `${t.topic} (${t.partitions})`).join(', ')}`);
    out();

    const t = topology(config);
    // A topic of this run's own, so a second demo does not read the first one's messages.
    const probe = `${t.topics.probe}.${process.pid}.${Date.now()}`;
    await ensureTopics(config, [{ topic: probe, partitions: 3 }]);
    const k = await kafkaRoundTrip(config, { topic: probe, messages: n }).finally(() => deleteTopics(config, [probe]).catch(() => {}));
    const r = await redisRoundTrip(config, { messages: n });

    const rate = (count: number, ms: number) => (ms > 0 ? `${Math.round((count * 1000) / ms).toLocaleString('en-US')}/s` : '-');
    const rows: [string, number, number][] = [
      ['Kafka produce (idempotent, acks=all, all delivery reports in)', k.produced, k.produceMs],
      ['Kafka consume back (consumer group, from the beginning)', k.consumed, k.consumeMs],
      ['Redis PUBLISH -> SUBSCRIBE (pipelined)', r.published, r.pubsubMs],
      ['Redis list LPUSH (one variadic push) -> RPOP (FIFO)', r.popped, r.listMs],
    ];
    out(`Round trips through the real servers (${n.toLocaleString('en-US')} messages each)`);
    out(`  ${'what'.padEnd(62)} ${'count'.padStart(8)} ${'time'.padStart(9)} ${'rate'.padStart(12)}`);
    for (const [what, count, ms] of rows) {
      out(`  ${what.padEnd(62)} ${String(count).padStart(8)} ${`${ms.toFixed(0)} ms`.padStart(9)} ${rate(count, ms).padStart(12)}`);
    }
    out();

    // The pipeline itself: the engine in a child process, a fleet of devices on Connect streams.
    const fleet = { devices: 500, rate: 5, seconds: 5 };
    out(`The pipeline: ${fleet.devices} devices x ${fleet.rate} sq events/s for ${fleet.seconds} s through gateway -> Kafka -> processor -> forwarder -> Redis -> device`);
    const load = spawnSync(
      process.execPath,
      [join(PROJECT_ROOT, 'dist', 'bench', 'e2e', 'pipeline-load.js'), '--devices', String(fleet.devices), '--rate', String(fleet.rate), '--duration', String(fleet.seconds), '--warmup', '2', '--port', String(config.grpc.port)],
      { encoding: 'utf8', timeout: 120_000 },
    );
    let fleetOk = false;
    if (load.status === 0) {
      const f = JSON.parse(load.stdout) as { durableAckedPerS: number; resultsPerS: number; ackMs: Record<string, number>; resultMs: Record<string, number>; engineKbPerConnectedDevice: number };
      out(`  ${'what'.padEnd(30)} ${'per s'.padStart(8)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'p99.9 ms'.padStart(9)}`);
      out(`  ${'events durable and acked'.padEnd(30)} ${String(f.durableAckedPerS).padStart(8)} ${String(f.ackMs.p50).padStart(8)} ${String(f.ackMs.p99).padStart(8)} ${String(f.ackMs.p999).padStart(9)}`);
      out(`  ${'results back at the device'.padEnd(30)} ${String(f.resultsPerS).padStart(8)} ${String(f.resultMs.p50).padStart(8)} ${String(f.resultMs.p99).padStart(8)} ${String(f.resultMs.p999).padStart(9)}`);
      out(`  engine memory per connected device: ${f.engineKbPerConnectedDevice} KiB; latency from each event's scheduled send time`);
      fleetOk = true;
    } else {
      out(`  the fleet run failed: ${(load.stderr || load.error?.message || '').trim().split('\n').slice(-3).join(' | ')}`);
    }
    out();
    out('To load it with a fleet of your own: `npx stratus run` in one terminal, then');
    out('`npx stratus loadgen --devices 10000 --rate 0.1 --duration 30s --report out/` (out/report.html).');
    out('To compare it with what you would pick instead: `npx stratus bench` (about 20 minutes) writes');
    out('RESULTS.md, every figure against a baseline measured in the same run.');
    out('What a device may rely on (every acknowledged event gets exactly one result, one order per');
    out('device across calls and instances): README "Delivery contract"; `npm run test:model` checks it');
    out('against generated schedules of reconnects, takeovers, restarts and kills.');
    out();
    out('The stack keeps running: `npx stratus stack status`, `npx stratus stack down`.');
    const wrong = k.produced - k.consumed + k.outOfOrder + (r.published - r.received) + r.outOfOrder + (r.pushed - r.popped) + r.notFifo;
    if (wrong !== 0) process.stderr.write(`stratus demo: ${wrong} messages lost or out of order\n`);
    return wrong === 0 && fleetOk ? 0 : 1;
  },
};
