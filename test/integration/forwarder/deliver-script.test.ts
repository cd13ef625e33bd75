/**
 * The deliver script (src/forwarder/deliver-script.ts) alone against the real Redis: buffering with
 * fields r and s, routing frames per gateway instance, dedupe, the rebuild of a lost or stale
 * `dev:` hash from the buffer, and one device's failure leaving the others' results routed.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { testConfig } from '../../helpers/config.js';
import { connectRedis, createRedis, disconnectRedis, type RedisClient } from '../../../src/redis/client.js';
import { DELIVER_SCRIPT, decodeDeliverReply, type DeliverReply } from '../../../src/forwarder/deliver-script.js';
import { topology, type Topology } from '../../../src/topology.js';
import { decodeFrame, type FrameEntry } from '../../../src/wire/delivery-frame.js';
import type { Config } from '../../../src/config.js';

interface Harness {
  config: Config;
  t: Topology;
  redis: RedisClient;
  /** Calls the script with (device, seq) pairs; the result bytes are `r:<device>:<seq>`. */
  deliver(results: [string, number][]): Promise<DeliverReply>;
  /** (id number, seq field, result text) of a device's buffer. */
  buffer(device: string): Promise<{ n: number; s: string | undefined; r: string }[]>;
}

async function harness(t: TestContext): Promise<Harness> {
  const config = testConfig();
  const topo = topology(config);
  const redis = createRedis(config, 'test-deliver-script');
  await connectRedis(redis);
  t.after(async () => {
    const keys = await redis.keys(`${topo.redis.prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    disconnectRedis(redis);
  });
  redis.defineCommand('stratusDeliver', { numberOfKeys: 0, lua: DELIVER_SCRIPT });
  const call = (redis as unknown as { stratusDeliver(...a: (string | number)[]): Promise<unknown> }).stratusDeliver.bind(redis);
  return {
    config,
    t: topo,
    redis,
    async deliver(results) {
      const args: (string | number)[] = [topo.redis.prefix, config.redis.deviceBufferMax, config.redis.deviceStateTtlMs];
      for (const [d, s] of results) args.push(d, String(s), `r:${d}:${s}`);
      return decodeDeliverReply(await call(...args));
    },
    async buffer(device) {
      const rows = await redis.xrange(topo.redis.deviceBuffer(device), '-', '+');
      return rows.map(([id, f]) => {
        const m = new Map<string, string>();
        for (let i = 0; i < f.length; i += 2) m.set(f[i]!, f[i + 1]!);
        return { n: Number(id.split('-')[0]), s: m.get('s'), r: m.get('r')! };
      });
    },
  };
}

const entries = (device: string, seqs: number[], firstN = 1) => seqs.map((s, i) => ({ n: firstN + i, s: String(s), r: `r:${device}:${s}` }));

test('buffers every result with fields r and s, ids n-0 from 1; one PUBLISH per gateway instance', async (t) => {
  const h = await harness(t);
  const sub = createRedis(h.config, 'test-deliver-sub');
  await connectRedis(sub);
  t.after(() => disconnectRedis(sub));
  const got = new Map<string, FrameEntry[][]>();
  sub.on('messageBuffer', (channel: Buffer, message: Buffer) => {
    assert.equal(message[0], 1, 'MSG_FRAME type byte');
    const list = got.get(channel.toString()) ?? [];
    list.push(decodeFrame(message.subarray(1)));
    got.set(channel.toString(), list);
  });
  await sub.subscribe(h.t.redis.instanceChannel('gw-1'), h.t.redis.instanceChannel('gw-2'));
  await h.redis.set(h.t.redis.presence('a'), 'gw-1');
  await h.redis.set(h.t.redis.presence('b'), 'gw-2');
  await h.redis.set(h.t.redis.presence('c'), 'gw-1');

  const reply = await h.deliver([['a', 1], ['b', 1], ['a', 2], ['c', 7], ['d', 3], ['b', 2]]);
  assert.deepEqual(reply, { routed: 6, duplicates: 0, frames: 2, failures: [], toPublish: [] });
  assert.deepEqual(await h.buffer('a'), entries('a', [1, 2]));
  assert.deepEqual(await h.buffer('b'), entries('b', [1, 2]));
  assert.deepEqual(await h.buffer('c'), entries('c', [7]));
  assert.deepEqual(await h.buffer('d'), entries('d', [3]), 'a device without presence is buffered too');
  assert.deepEqual(await h.redis.hgetall(h.t.redis.deviceState('a')), { n: '2', h: '2' });
  assert.ok((await h.redis.pttl(h.t.redis.deviceState('a'))) > 0);
  assert.ok((await h.redis.pttl(h.t.redis.deviceBuffer('a'))) > 0);

  const deadline = Date.now() + 5000;
  while (got.size < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const simple = (frames: FrameEntry[][] | undefined) => (frames ?? []).map((f) => f.map((e) => [e.deviceId, e.n, e.result.toString()]));
  assert.deepEqual(simple(got.get(h.t.redis.instanceChannel('gw-1'))), [[['a', 1, 'r:a:1'], ['a', 2, 'r:a:2'], ['c', 1, 'r:c:7']]]);
  assert.deepEqual(simple(got.get(h.t.redis.instanceChannel('gw-2'))), [[['b', 1, 'r:b:1'], ['b', 2, 'r:b:2']]]);
});

test('a re-read batch is all duplicates; the gateway\'s fields a and d are left alone', async (t) => {
  const h = await harness(t);
  await h.redis.hset(h.t.redis.deviceState('a'), 'a', '10', 'd', '0');
  assert.deepEqual(await h.deliver([['a', 1], ['a', 2], ['a', 3]]), { routed: 3, duplicates: 0, frames: 0, failures: [], toPublish: [] });
  assert.deepEqual(await h.deliver([['a', 1], ['a', 2], ['a', 3]]), { routed: 0, duplicates: 3, frames: 0, failures: [], toPublish: [] });
  assert.deepEqual(await h.deliver([['a', 2], ['a', 3], ['a', 4]]), { routed: 1, duplicates: 2, frames: 0, failures: [], toPublish: [] });
  assert.deepEqual(await h.buffer('a'), entries('a', [1, 2, 3, 4]));
  assert.deepEqual(await h.redis.hgetall(h.t.redis.deviceState('a')), { a: '10', d: '0', n: '4', h: '4' });
});

test('dev hash deleted, buffer left: n and h rebuilt from the buffer, the next result gets the next id, an old seq stays a duplicate', async (t) => {
  const h = await harness(t);
  await h.deliver([['a', 5], ['a', 6], ['a', 9], ['b', 1]]);
  await h.redis.del(h.t.redis.deviceState('a'));
  const reply = await h.deliver([['a', 6], ['a', 9], ['b', 2], ['a', 10], ['a', 10], ['a', 11]]);
  assert.deepEqual(reply, { routed: 3, duplicates: 3, frames: 0, failures: [], toPublish: [] });
  assert.deepEqual(await h.buffer('a'), [...entries('a', [5, 6, 9]), ...entries('a', [10, 11], 4)]);
  assert.deepEqual(await h.redis.hgetall(h.t.redis.deviceState('a')), { n: '5', h: '11' });
  assert.deepEqual(await h.buffer('b'), entries('b', [1, 2]));
  // Deleted again: only a re-sent old seq comes; it stays a duplicate and nothing is written.
  await h.redis.del(h.t.redis.deviceState('a'));
  assert.deepEqual(await h.deliver([['a', 11]]), { routed: 0, duplicates: 1, frames: 0, failures: [], toPublish: [] });
  assert.equal(await h.redis.exists(h.t.redis.deviceState('a')), 0);
});

test('dev hash lost and buffer trimmed empty by the gateway: the id goes on from the last generated one, h from the gateway\'s d', async (t) => {
  const h = await harness(t);
  await h.deliver([['a', 1], ['a', 2], ['a', 3]]);
  await h.redis.xtrim(h.t.redis.deviceBuffer('a'), 'MINID', '4-0');
  assert.equal(await h.redis.xlen(h.t.redis.deviceBuffer('a')), 0);
  await h.redis.del(h.t.redis.deviceState('a'));
  // The gateway records the device's delivered position again (renewal): seq 3 was delivered.
  await h.redis.hset(h.t.redis.deviceState('a'), 'd', '3');
  assert.deepEqual(await h.deliver([['a', 2], ['a', 3], ['a', 4]]), { routed: 1, duplicates: 2, frames: 0, failures: [], toPublish: [] });
  assert.deepEqual(await h.buffer('a'), entries('a', [4], 4));
  assert.deepEqual(await h.redis.hgetall(h.t.redis.deviceState('a')), { d: '3', n: '4', h: '4' });
});

test('dev hash behind the buffer (restored from an older snapshot): rebuilt when the XADD id is refused', async (t) => {
  const h = await harness(t);
  await h.deliver([['a', 1], ['a', 2], ['a', 3], ['a', 4]]);
  await h.redis.hset(h.t.redis.deviceState('a'), 'n', '2', 'h', '2');
  assert.deepEqual(await h.deliver([['a', 3], ['a', 4], ['a', 5]]), { routed: 1, duplicates: 2, frames: 0, failures: [], toPublish: [] });
  assert.deepEqual(await h.buffer('a'), entries('a', [1, 2, 3, 4, 5]));
  assert.deepEqual(await h.redis.hgetall(h.t.redis.deviceState('a')), { n: '5', h: '5' });
});

test('a device whose buffer key has the wrong type fails alone; h is never set for an unwritten result', async (t) => {
  const h = await harness(t);
  await h.redis.set(h.t.redis.presence('b'), 'gw-1');
  // x has state (n, h) but its buffer key was overwritten with a string.
  await h.deliver([['x', 1]]);
  await h.redis.del(h.t.redis.deviceBuffer('x'));
  await h.redis.set(h.t.redis.deviceBuffer('x'), 'not a stream');
  // y has no state at all and a string buffer (the rebuild path fails).
  await h.redis.set(h.t.redis.deviceBuffer('y'), 'not a stream');
  const reply = await h.deliver([['x', 2], ['b', 1], ['y', 1], ['x', 3], ['b', 2], ['y', 2]]);
  assert.equal(reply.routed, 2);
  assert.equal(reply.duplicates, 0);
  assert.equal(reply.frames, 1);
  assert.deepEqual(reply.failures.map((f) => f.index), [0, 2, 3, 5]);
  for (const f of reply.failures) assert.match(f.error, /^WRONGTYPE/);
  assert.deepEqual(await h.buffer('b'), entries('b', [1, 2]));
  assert.deepEqual(await h.redis.hgetall(h.t.redis.deviceState('x')), { n: '1', h: '1' }, 'h of x not advanced');
  assert.equal(await h.redis.exists(h.t.redis.deviceState('y')), 0, 'nothing recorded for y');
  // The key repaired, a retry buffers x's results; x's old seq 1 stays a duplicate even so.
  await h.redis.del(h.t.redis.deviceBuffer('x'));
  assert.deepEqual(await h.deliver([['x', 1], ['x', 2], ['x', 3]]), { routed: 2, duplicates: 1, frames: 0, failures: [], toPublish: [] });
  assert.deepEqual(await h.buffer('x'), entries('x', [2, 3], 2));
});

test('a device whose dev hash has the wrong type fails alone', async (t) => {
  const h = await harness(t);
  await h.redis.set(h.t.redis.deviceState('x'), 'oops');
  const reply = await h.deliver([['x', 1], ['b', 1]]);
  assert.equal(reply.routed, 1);
  assert.deepEqual(reply.failures.map((f) => f.index), [0]);
  assert.equal(await h.redis.exists(h.t.redis.deviceBuffer('x')), 0);
  assert.deepEqual(await h.buffer('b'), entries('b', [1]));
});
