/**
 * The list path's figure: events/s into a Redis list through event.EventService/StreamEvents
 * (batched, one variadic push per flush) against the system it replaces (one awaited LPUSH per
 * event from one client), in one run against the same Redis. Prints JSON; asserts nothing but the
 * counts (a run that lost events prints nothing).
 *
 * The service runs in a child process (a grpc Server with the gateway's service factory), so the
 * clients here do not share its event loop.
 *
 *   node dist/bench/e2e/list-path.js --events 200000 --streams 8 [--flush-events-max 500] [--cpu-prof-dir DIR]
 *
 * --cpu-prof-dir runs the service under `node --cpu-prof` and leaves its profile in DIR.
 */
import { spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { loadConfig, type Config } from '../../src/config.js';
import { startEventService } from '../../src/queue/event-service.js';
import { connectRedis, createRedis, type RedisClient } from '../../src/redis/client.js';
import { topology } from '../../src/topology.js';
import { eventClient, events, streamEvents } from '../../test/helpers/event-client.js';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '200000' },
    streams: { type: 'string', default: '8' },
    'flush-events-max': { type: 'string', default: '500' },
    // The per-event baseline stops here even if it has not pushed --events yet.
    'baseline-seconds-max': { type: 'string', default: '60' },
    'cpu-prof-dir': { type: 'string' },
    serve: { type: 'string' }, // internal: the child's key prefix
  },
});

function benchConfig(prefix: string): Config {
  return loadConfig({ flags: { 'redis-key-prefix': prefix, 'queue-flush-events-max': String(values['flush-events-max']), 'queue-length-max': '100000000' } });
}

async function serve(prefix: string): Promise<void> {
  const config = benchConfig(prefix);
  const service = await startEventService(config, 'bench');
  const server = new Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });
  service.addTo(server);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  process.stdout.write(`port ${port}\n`);
  process.on('SIGTERM', () => {
    server.forceShutdown();
    void service.stop().then(() => process.exit(0));
  });
}

async function deleteUnder(redis: RedisClient, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}

async function main(): Promise<void> {
  const n = Number(values.events);
  const m = Number(values.streams);
  const prefix = `bench${Date.now()}:`;
  const config = benchConfig(prefix);
  const redis = createRedis(config, 'bench-list-path');
  await connectRedis(redis);
  const key = topology(config).redis.queue('events');

  // (a) StreamEvents on a server in its own process, M concurrent streams, until every summary is back.
  const prof = values['cpu-prof-dir'] === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', values['cpu-prof-dir']];
  const child = spawn(process.execPath, [...prof, fileURLToPath(import.meta.url), '--serve', prefix, '--flush-events-max', String(values['flush-events-max'])], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const match = /port (\d+)/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  const clients = Array.from({ length: m }, () => eventClient(`127.0.0.1:${port}`));
  const perStream = Math.ceil(n / m);
  const batches = clients.map((_, i) => events(Math.min(perStream, n - i * perStream), `s${i}-`));
  // Warm-up: connections and the script cache.
  await Promise.all(clients.map((c, i) => streamEvents(c, events(100, `warm${i}-`))));
  await redis.del(key);
  const t0 = process.hrtime.bigint();
  const results = await Promise.all(clients.map((c, i) => streamEvents(c, batches[i]!)));
  const listS = Number(process.hrtime.bigint() - t0) / 1e9;
  const received = results.reduce((a, r) => a + (r.summary?.events_received ?? 0), 0);
  const stored = await redis.llen(key);
  if (received !== n || stored !== n || results.some((r) => r.error !== null || r.summary?.success !== true)) {
    throw new Error(`list path: sent ${n}, summaries say ${received}, list holds ${stored}; ${results.find((r) => r.error)?.error?.message ?? ''}`);
  }
  for (const c of clients) c.close();
  // Waited for: the service writes its CPU profile as it exits.
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
  await redis.del(key);

  // (b) The old collector: one awaited LPUSH per event, one client.
  const items = events(n, 'old-').map((e) => JSON.stringify(e));
  const deadline = Date.now() + Number(values['baseline-seconds-max']) * 1000;
  const t1 = process.hrtime.bigint();
  let pushed = 0;
  while (pushed < n && (pushed % 1000 !== 0 || Date.now() < deadline)) await redis.lpush(key, items[pushed++]!);
  const oldS = Number(process.hrtime.bigint() - t1) / 1e9;
  if ((await redis.llen(key)) !== pushed) throw new Error('per-event path: the list does not hold what was pushed');

  await deleteUnder(redis, prefix);
  const info = await redis.info('server');
  redis.disconnect();
  const listPathEventsPerSec = Math.round(n / listS);
  const perEventPushEventsPerSec = Math.round(pushed / oldS);
  process.stdout.write(
    JSON.stringify(
      {
        listPathEventsPerSec,
        perEventPushEventsPerSec,
        ratio: Math.round((listPathEventsPerSec / perEventPushEventsPerSec) * 10) / 10,
        params: {
          events: n,
          streams: m,
          flushEventsMax: Number(values['flush-events-max']),
          perEventPushed: pushed,
          listSeconds: Math.round(listS * 100) / 100,
          perEventSeconds: Math.round(oldS * 100) / 100,
          date: new Date().toISOString(),
          cpu: `${cpus().length} x ${cpus()[0]?.model ?? '?'}`,
          node: process.version,
          redis: /redis_version:(\S+)/.exec(info)?.[1] ?? '?',
        },
      },
      null,
      2,
    ) + '\n',
  );
}

if (values.serve !== undefined) await serve(values.serve);
else await main();
