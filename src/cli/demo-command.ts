/**
 * `stratus demo`: what a newcomer sees after `npm run demo`. It runs what exists today and says
 * plainly what does not exist yet.
 */
import { deleteTopics, ensureTopics, kafkaRoundTrip } from '../kafka/admin.js';
import { redisRoundTrip } from '../redis/client.js';
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
    out('Not built yet: the device pipeline (gateway -> Kafka -> processor -> forwarder -> device), the');
    out('Redis queue and Streams paths, the load generator and the bench are open issues. This demo shows');
    out('the stack and the Kafka and Redis round trips they stand on; it will run a real fleet once they land.');
    out();
    out('The stack keeps running: `npx stratus stack status`, `npx stratus stack down`.');
    const wrong = k.produced - k.consumed + k.outOfOrder + (r.published - r.received) + r.outOfOrder + (r.pushed - r.popped) + r.notFifo;
    if (wrong !== 0) process.stderr.write(`stratus demo: ${wrong} messages lost or out of order\n`);
    return wrong === 0 ? 0 : 1;
  },
};
