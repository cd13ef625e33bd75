/**
 * DeliveryLink (src/gateway/delivery.ts) against the real Redis: presence claims and the takeover
 * handoff between two instances (the old holder's record lands before the new holder's claim
 * resolves; a dead old holder does not hold it up; a mute one costs gateway.handoffWaitMs), presence
 * renewal, release() and its record d, lastSeq(), and reading/trimming the buffer.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { testConfig } from '../../helpers/config.js';
import { connectRedis, createRedis, disconnectRedis, type RedisClient } from '../../../src/redis/client.js';
import { DeliveryLink, MSG_HANDOFF, MSG_TAKEOVER, type DeliveryHandlers, type HeldDevice } from '../../../src/gateway/delivery.js';
import { topology, type Topology } from '../../../src/topology.js';
import type { Config } from '../../../src/config.js';

interface Harness {
  config: Config;
  t: Topology;
  redis: RedisClient;
  /** A link for `instanceId`; takeovers it gets are recorded in `takeovers`. */
  link(instanceId: string, onTakeover?: (link: DeliveryLink, deviceId: string) => void): Promise<{ link: DeliveryLink; takeovers: string[] }>;
  /** A raw subscriber on an instance's channel that answers nothing. */
  mute(instanceId: string): Promise<Buffer[]>;
}

async function harness(t: TestContext, overrides: Record<string, string> = {}): Promise<Harness> {
  const config = testConfig(overrides);
  const topo = topology(config);
  const redis = createRedis(config, 'test-delivery-link');
  await connectRedis(redis);
  t.after(async () => {
    const keys = await redis.keys(`${topo.redis.prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    disconnectRedis(redis);
  });
  return {
    config,
    t: topo,
    redis,
    async link(instanceId, onTakeover) {
      const takeovers: string[] = [];
      let self: DeliveryLink | null = null;
      const handlers: DeliveryHandlers = {
        onEntries: () => {},
        onTakeover: (deviceId) => {
          takeovers.push(deviceId);
          onTakeover?.(self!, deviceId);
        },
      };
      self = await DeliveryLink.connect(config, instanceId, handlers);
      t.after(() => self!.close());
      return { link: self, takeovers };
    },
    async mute(instanceId) {
      const sub = createRedis(config, 'test-delivery-mute');
      await connectRedis(sub);
      t.after(() => disconnectRedis(sub));
      const got: Buffer[] = [];
      sub.on('messageBuffer', (_c: Buffer, m: Buffer) => got.push(m));
      await sub.subscribe(topo.redis.instanceChannel(instanceId));
      return got;
    },
  };
}

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('claim of a free device sets presence with the lease; a second claim by the holder publishes nothing', async (t) => {
  const h = await harness(t, { 'gateway-presence-lease-ms': '5000' });
  const { link } = await h.link('gw-a');
  const heard = await h.mute('gw-a-other');
  await link.claim('d', true);
  assert.equal(await h.redis.get(h.t.redis.presence('d')), 'gw-a');
  const ttl = await h.redis.pttl(h.t.redis.presence('d'));
  assert.ok(ttl > 3000 && ttl <= 5000, `presence PTTL ${ttl}`);
  await link.claim('d', true);
  assert.equal(await h.redis.get(h.t.redis.presence('d')), 'gw-a');
  assert.equal(heard.length, 0);
});

test('takeover: the old holder ends its session and records d before the new holder\'s claim resolves', async (t) => {
  const h = await harness(t, { 'gateway-handoff-wait-ms': '10000' });
  // The old holder's session end (as gateway.ts does it): release() issued inside onTakeover.
  const a = await h.link('gw-a', (link, deviceId) => void link.release(deviceId, 7, false));
  const b = await h.link('gw-b');
  await a.link.claim('d', true);
  const start = Date.now();
  await b.link.claim('d', true);
  const ms = Date.now() - start;
  assert.deepEqual(a.takeovers, ['d']);
  assert.deepEqual(b.takeovers, []);
  assert.equal(await b.link.deliveredSeq('d'), 7, 'the old holder\'s record is there when the claim resolves');
  assert.equal(await h.redis.get(h.t.redis.presence('d')), 'gw-b');
  assert.ok(ms < 5000, `handoff took ${ms} ms`);

  // And back: B's record lands before A's claim resolves.
  const c = await h.link('gw-c', (link, deviceId) => void link.release(deviceId, 9, true));
  await c.link.claim('e', true);
  await a.link.claim('e', true);
  assert.deepEqual(c.takeovers, ['e']);
  assert.equal(await a.link.deliveredSeq('e'), 9);
  assert.equal(await h.redis.get(h.t.redis.presence('e')), 'gw-a', 'the old holder\'s drop leaves the new holder\'s entry');
});

test('takeover without awaitHandoff: the old holder is told, the claim does not wait for it', async (t) => {
  const h = await harness(t, { 'gateway-handoff-wait-ms': '10000' });
  const heard = await h.mute('gw-mute');
  const b = await h.link('gw-b');
  await h.redis.set(h.t.redis.presence('d'), 'gw-mute');
  const start = Date.now();
  await b.link.claim('d', false);
  assert.ok(Date.now() - start < 5000);
  await until('the takeover message', () => heard.length === 1);
  const m = heard[0]!;
  assert.equal(m[0], MSG_TAKEOVER);
  const len = m.readUInt16LE(1);
  assert.equal(m.toString('utf8', 3, 3 + len), 'gw-b');
  assert.equal(m.toString('utf8', 3 + len), 'd');
  assert.equal(await h.redis.get(h.t.redis.presence('d')), 'gw-b');
});

test('a dead old holder (nobody on its channel) does not make the claim wait', async (t) => {
  const h = await harness(t, { 'gateway-handoff-wait-ms': '10000' });
  const b = await h.link('gw-b');
  await h.redis.set(h.t.redis.presence('d'), 'gw-dead');
  await h.redis.hset(h.t.redis.deviceState('d'), 'd', '4');
  const start = Date.now();
  await b.link.claim('d', true);
  const ms = Date.now() - start;
  assert.ok(ms < 5000, `claim took ${ms} ms with a 10000 ms handoffWaitMs`);
  assert.equal(await b.link.deliveredSeq('d'), 4, 'the dead holder\'s last renewal record stands');
});

test('an old holder that never answers costs gateway.handoffWaitMs, then the claim resolves', async (t) => {
  const h = await harness(t, { 'gateway-handoff-wait-ms': '300' });
  const heard = await h.mute('gw-mute');
  const b = await h.link('gw-b');
  await h.redis.set(h.t.redis.presence('d'), 'gw-mute');
  const start = Date.now();
  await b.link.claim('d', true);
  const ms = Date.now() - start;
  assert.ok(ms >= 300 && ms < 3000, `claim resolved after ${ms} ms`);
  assert.equal(heard.length, 1);
  assert.equal(heard[0]![0], MSG_TAKEOVER);
  // A late handoff for it is harmless.
  await h.redis.publish(h.t.redis.instanceChannel('gw-b'), Buffer.concat([Buffer.from([MSG_HANDOFF]), Buffer.from('d')]));
  assert.equal(await h.redis.get(h.t.redis.presence('d')), 'gw-b');
});

test('a second claim here while the first still waits for its handoff (a stream superseded while starting) resolves only after that handoff', async (t) => {
  const h = await harness(t, { 'gateway-handoff-wait-ms': '400' });
  await h.mute('gw-mute');
  const b = await h.link('gw-b');
  await h.redis.set(h.t.redis.presence('d'), 'gw-mute');
  const start = Date.now();
  const first = b.link.claim('d', true);
  // The second finds presence already naming gw-b (the first's claim): on its own it would not wait.
  await new Promise((r) => setTimeout(r, 50));
  const second = b.link.claim('d', true).then(() => Date.now() - start);
  await first;
  const ms = await second;
  assert.ok(ms >= 400, `the second claim resolved after ${ms} ms, before the first one's handoff wait ended`);
});

test('renew(): extends its own entries, takes free ones, leaves another\'s (lost()), records each sentSeq monotonically', async (t) => {
  const h = await harness(t, { 'gateway-presence-lease-ms': '5000' });
  const { link } = await h.link('gw-a');
  await h.redis.set(h.t.redis.presence('mine'), 'gw-a', 'PX', 1500);
  await h.redis.set(h.t.redis.presence('theirs'), 'gw-b', 'PX', 1500);
  await h.redis.hset(h.t.redis.deviceState('theirs'), 'd', '20');
  const lost: string[] = [];
  const held = (deviceId: string, sentSeq: number): HeldDevice => ({ deviceId, sentSeq, lost: () => lost.push(deviceId) });
  await link.renew([held('mine', 3), held('free', 0), held('theirs', 10)]);
  assert.deepEqual(lost, ['theirs']);
  const mine = await h.redis.pttl(h.t.redis.presence('mine'));
  assert.ok(mine > 1500 && mine <= 5000, `own entry extended (PTTL ${mine})`);
  assert.equal(await h.redis.get(h.t.redis.presence('free')), 'gw-a');
  assert.equal(await h.redis.get(h.t.redis.presence('theirs')), 'gw-b');
  assert.ok((await h.redis.pttl(h.t.redis.presence('theirs'))) <= 1500);
  assert.equal(await link.deliveredSeq('mine'), 3);
  assert.equal(await h.redis.exists(h.t.redis.deviceState('free')), 0, 'sentSeq 0 records nothing');
  assert.equal(await link.deliveredSeq('theirs'), 20, 'd never goes down');
  // More devices than one chunk (250): every one renewed.
  const many = Array.from({ length: 600 }, (_, i) => held(`m${i}`, i + 1));
  await link.renew(many);
  assert.equal(lost.length, 1);
  const values = await h.redis.mget(...many.map((d) => h.t.redis.presence(d.deviceId)));
  assert.deepEqual(values, many.map(() => 'gw-a'));
  assert.equal(await link.deliveredSeq('m599'), 600);
});

test('release(): d only grows, presence dropped only when asked and only if it names the caller', async (t) => {
  const h = await harness(t);
  const { link } = await h.link('gw-a');
  const p = h.t.redis.presence('d');
  await h.redis.set(p, 'gw-a');
  await link.release('d', 0, false);
  assert.equal(await h.redis.exists(h.t.redis.deviceState('d')), 0, 'nothing written: d 0 is no record');
  await link.release('d', 5, false);
  assert.equal(await link.deliveredSeq('d'), 5);
  assert.equal(await h.redis.get(p), 'gw-a', 'kept: not asked');
  const ttl = await h.redis.pttl(h.t.redis.deviceState('d'));
  assert.ok(ttl > 0 && ttl <= h.config.redis.deviceStateTtlMs, `dev: expires (PTTL ${ttl})`);
  await link.release('d', 3, false);
  assert.equal(await link.deliveredSeq('d'), 5, 'never lowered');
  await h.redis.set(p, 'gw-b');
  await link.release('d', 6, true);
  assert.equal(await h.redis.get(p), 'gw-b', 'another holder\'s entry stays');
  assert.equal(await link.deliveredSeq('d'), 6);
  await h.redis.set(p, 'gw-a');
  await link.release('d', 6, true);
  assert.equal(await h.redis.exists(p), 0);
  // 2^53-1 exactly.
  await link.release('d', Number.MAX_SAFE_INTEGER, false);
  assert.equal(await h.redis.hget(h.t.redis.deviceState('d'), 'd'), '9007199254740991');
});

test('lastSeq(): max of a and h; from the buffer\'s s field when the hash has neither; 0 for an unknown device', async (t) => {
  const h = await harness(t);
  const { link } = await h.link('gw-a');
  assert.equal(await link.lastSeq('d'), 0);
  await h.redis.hset(h.t.redis.deviceState('d'), 'a', '12', 'h', '9');
  assert.equal(await link.lastSeq('d'), 12);
  await h.redis.hset(h.t.redis.deviceState('d'), 'h', '15');
  assert.equal(await link.lastSeq('d'), 15);
  await h.redis.hset(h.t.redis.deviceState('e'), 'h', '3');
  assert.equal(await link.lastSeq('e'), 3);
  // Hash gone (or only d left): the buffer's last entry.
  await h.redis.xadd(h.t.redis.deviceBuffer('f'), '1-0', 'r', 'x', 's', '30');
  await h.redis.xadd(h.t.redis.deviceBuffer('f'), '2-0', 'r', 'y', 's', '31');
  assert.equal(await link.lastSeq('f'), 31);
  await h.redis.hset(h.t.redis.deviceState('f'), 'd', '31');
  assert.equal(await link.lastSeq('f'), 31);
  await h.redis.xadd(h.t.redis.deviceBuffer('g'), '1-0', 'r', 'x', 's', String(Number.MAX_SAFE_INTEGER));
  assert.equal(await link.lastSeq('g'), Number.MAX_SAFE_INTEGER);
});

test('readBuffer() from an index, in order, bounded; trimBuffer() drops what is below n and keeps n (its seq rebuilds a lost hash)', async (t) => {
  const h = await harness(t);
  const { link } = await h.link('gw-a');
  for (let n = 1; n <= 5; n++) await h.redis.xadd(h.t.redis.deviceBuffer('d'), `${n}-0`, 'r', `r${n}`, 's', String(n * 10));
  const page = await link.readBuffer('d', 1, 3);
  assert.deepEqual(page.map((e) => [e.n, e.result.toString()]), [[2, 'r2'], [3, 'r3'], [4, 'r4']]);
  await link.trimBuffer('d', 3);
  const rest = await link.readBuffer('d', 0, 10);
  assert.deepEqual(rest.map((e) => e.n), [3, 4, 5]);
  // Everything confirmed: the last entry stays, so a lost dev: hash still learns the last seq.
  await link.trimBuffer('d', 5);
  assert.deepEqual((await link.readBuffer('d', 0, 10)).map((e) => e.n), [5]);
  await h.redis.del(h.t.redis.deviceState('d'));
  assert.equal(await link.lastSeq('d'), 50);
});
