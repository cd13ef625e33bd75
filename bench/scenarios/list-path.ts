/**
 * Scenario 3: the list path (event.EventService/StreamEvents, one variadic push per flush)
 * against the old Node collector's way (one awaited LPUSH per event, bench/e2e/list-path) and
 * against Redis's own `redis-benchmark -P 64` pushing the same size of item to one list.
 * Targets: >= 20x the per-event push, >= 0.5x redis-benchmark -P 64.
 */
import { randomUUID } from 'node:crypto';
import { connectRedis, createRedis } from '../../src/redis/client.js';
import { dist, runJson } from '../child.js';
import { ratio, type Scenario } from '../scenario.js';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeProfile, readProfileDir, type ProfileSummary } from '../cpu-profile.js';
import { promisify } from 'node:util';

interface ListPathJson { listPathEventsPerSec: number; perEventPushEventsPerSec: number; params: Record<string, number | string> }

export const listPath: Scenario = {
  id: 'list-path',
  title: 'List path vs a per-event awaited push and redis-benchmark -P 64',
  async run(ctx) {
    const events = ctx.quick ? 20_000 : 200_000;
    const profileDir = mkdtempSync(join(tmpdir(), 'stratus-bench-prof-'));
    let profile: ProfileSummary | undefined;
    let lp: ListPathJson | undefined;
    try {
      [lp] = await runJson<ListPathJson>(process.execPath, [dist('bench', 'e2e', 'list-path.js'), '--events', String(events), '--streams', '8', '--baseline-seconds-max', ctx.quick ? '3' : '60', '--cpu-prof-dir', profileDir], {
        env: { STRATUS_REDIS_HOST: ctx.config.redis.host, STRATUS_REDIS_PORT: String(ctx.config.redis.port) },
      });
      profile = readProfileDir(profileDir);
    } catch (err) {
      if (lp === undefined) throw err;
      ctx.log(`  no CPU profile of the service: ${(err as Error).message}`);
    } finally {
      rmSync(profileDir, { recursive: true, force: true });
    }
    ctx.log(`  StreamEvents ${lp!.listPathEventsPerSec}/s, per-event LPUSH ${lp!.perEventPushEventsPerSec}/s`);
    // The same item size as the list path stores (one event as JSON).
    const item = JSON.stringify({ event_id: 'e-000000-000000', type: 'click', timestamp: '1790000000000000' });
    const key = `${ctx.config.redis.keyPrefix}bench:${randomUUID()}`;
    const args = ['-h', ctx.config.redis.host, '-p', String(ctx.config.redis.port), '-n', String(events), '-P', '64', '--csv'];
    if (ctx.config.redis.password !== '') args.push('-a', ctx.config.redis.password);
    const { stdout } = await promisify(execFile)('redis-benchmark', [...args, 'lpush', key, item], { timeout: 300_000 });
    // The CSV row's first column is the command itself (quotes and commas included); the seven
    // numbers after it are rps, then latencies.
    const row = /"([\d.]+)"(?:,"[\d.]+"){6}\s*$/.exec(stdout.trim());
    const rbPerS = Math.round(Number(row?.[1]));
    if (!Number.isFinite(rbPerS) || rbPerS <= 0) throw new Error(`redis-benchmark printed no rate: ${stdout}`);
    const redis = createRedis(ctx.config, 'bench-list-path');
    await connectRedis(redis);
    await redis.del(key);
    redis.disconnect();
    ctx.log(`  redis-benchmark -P 64 LPUSH ${rbPerS}/s`);
    const ours = lp!.listPathEventsPerSec;
    return {
      id: this.id,
      title: this.title,
      params: { events, streams: 8, itemBytes: item.length, flushEventsMax: Number(lp!.params.flushEventsMax) },
      sides: [
        { name: 'Stratus StreamEvents (batched push)', figures: { eventsPerS: ours } },
        { name: 'one awaited LPUSH per event', figures: { eventsPerS: lp!.perEventPushEventsPerSec } },
        { name: 'redis-benchmark -P 64 LPUSH', figures: { eventsPerS: rbPerS } },
      ],
      ratios: [
        ratio('events/s: Stratus / per-event push', ours / lp!.perEventPushEventsPerSec, { op: '>=', value: 20 }),
        ratio('events/s: Stratus / redis-benchmark -P 64', ours / rbPerS, { op: '>=', value: 0.5 }),
      ],
      reading:
        `Through gRPC and a Lua flush, the list path stored ${ours.toLocaleString('en-US')} events/s: ${(ours / lp!.perEventPushEventsPerSec).toFixed(1)}x one awaited LPUSH per event and ${(ours / rbPerS).toFixed(2)}x Redis's own pipelined benchmark pushing the same items with no gRPC in front. Each event is one gRPC message here (StreamEvents carries one event per message), and the clients sending them share the machine with the service and Redis.` +
        (profile === undefined ? '' : ` ${describeProfile(profile, 'the StreamEvents service')}`),
      raw: profile === undefined ? undefined : { serviceProfile: profile },
    };
  },
};
