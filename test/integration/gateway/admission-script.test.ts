/**
 * The admission scripts (src/gateway/admission-script.ts) alone against the real Redis: what a
 * call takes and refuses (DUPLICATE, OUT_OF_ORDER, WAIT), the dev:/seqs:/adm: keys it writes, the
 * updates section (k and lease release), re-taking a seq whose fate is unknown, the taken-seq
 * window and its reset, the rebuild of a lost dev: hash from the buffer, exact 2^53-1, and the
 * renew script.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { testConfig } from '../../helpers/config.js';
import { connectRedis, createRedis, disconnectRedis, type RedisClient } from '../../../src/redis/client.js';
import { ADMIT_RENEW_SCRIPT, ADMIT_SCRIPT, SEQ_WINDOW } from '../../../src/gateway/admission-script.js';
import { topology, type Topology } from '../../../src/topology.js';

const DUP = -1;
const WAIT = -2;
const OOO = -3;
const LEASE_MS = 10_000;
const TTL_MS = 60_000;
const MAX = Number.MAX_SAFE_INTEGER;

interface Update { device: string; k: number; release: boolean }
interface Group { device: string; myMax?: number; seqs: number[] }
interface GroupReply { a: number; k: number; verdicts: number[] }

interface Harness {
  t: Topology;
  redis: RedisClient;
  admit(groups: Group[], opts?: { me?: string; updates?: Update[]; raw?: string[] }): Promise<GroupReply[]>;
  renew(me: string, devices: string[]): Promise<number[]>;
  state(device: string): Promise<Record<string, string>>;
}

async function harness(t: TestContext): Promise<Harness> {
  const config = testConfig();
  const topo = topology(config);
  const redis = createRedis(config, 'test-admission-script');
  await connectRedis(redis);
  t.after(async () => {
    const keys = await redis.keys(`${topo.redis.prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    disconnectRedis(redis);
  });
  redis.defineCommand('stratusAdmit', { numberOfKeys: 0, lua: ADMIT_SCRIPT });
  redis.defineCommand('stratusAdmitRenew', { numberOfKeys: 0, lua: ADMIT_RENEW_SCRIPT });
  const r = redis as unknown as {
    stratusAdmit(...a: (string | number)[]): Promise<number[]>;
    stratusAdmitRenew(...a: (string | number)[]): Promise<number[]>;
  };
  return {
    t: topo,
    redis,
    async admit(groups, opts = {}) {
      const updates = opts.updates ?? [];
      const args: (string | number)[] = [topo.redis.prefix, opts.me ?? 'gw-me', LEASE_MS, TTL_MS, updates.length];
      for (const u of updates) args.push(u.device, String(u.k), u.release ? '1' : '0');
      for (const g of groups) {
        args.push(g.device, String(g.myMax ?? 0), g.seqs.length);
        for (const s of opts.raw ?? g.seqs.map(String)) args.push(s);
      }
      const reply = await r.stratusAdmit(...args);
      const out: GroupReply[] = [];
      let i = 0;
      for (const g of groups) {
        const a = Number(reply[i++]);
        const k = Number(reply[i++]);
        out.push({ a, k, verdicts: reply.slice(i, i + g.seqs.length).map(Number) });
        i += g.seqs.length;
      }
      assert.equal(i, reply.length, 'one a, one k and one verdict per seq, nothing more');
      return out;
    },
    async renew(me, devices) {
      return (await r.stratusAdmitRenew(topo.redis.prefix, me, LEASE_MS, ...devices)).map(Number);
    },
    async state(device) {
      return redis.hgetall(topo.redis.deviceState(device));
    },
  };
}

test('first seqs of a new device are taken in order: a advances, a/k/w written, dev:, seqs: and adm: expire', async (t) => {
  const h = await harness(t);
  const [g] = await h.admit([{ device: 'd', seqs: [1, 2, 3] }]);
  assert.deepEqual(g, { a: 3, k: 0, verdicts: [1, 2, 3] });
  assert.deepEqual(await h.state('d'), { a: '3', k: '0', w: '1' });
  const devTtl = await h.redis.pttl(h.t.redis.deviceState('d'));
  const seqsTtl = await h.redis.pttl(`${h.t.redis.prefix}seqs:d`);
  const admTtl = await h.redis.pttl(h.t.redis.admission('d'));
  assert.ok(devTtl > TTL_MS - 5000 && devTtl <= TTL_MS, `dev: PTTL ${devTtl}`);
  assert.ok(seqsTtl > TTL_MS - 5000 && seqsTtl <= TTL_MS, `seqs: PTTL ${seqsTtl}`);
  assert.ok(admTtl > LEASE_MS - 5000 && admTtl <= LEASE_MS, `adm: PTTL ${admTtl}`);
  assert.equal(await h.redis.get(h.t.redis.admission('d')), 'gw-me');

  // The next call continues above a; gaps are allowed (the skipped seqs are never taken).
  const [g2] = await h.admit([{ device: 'd', myMax: 3, seqs: [4, 9] }]);
  assert.deepEqual(g2, { a: 9, k: 0, verdicts: [4, 9] });
  assert.equal((await h.state('d')).a, '9');
});

test('a call that takes nothing writes nothing: no dev: hash, no lease', async (t) => {
  const h = await harness(t);
  await h.redis.set(h.t.redis.admission('d'), 'gw-other', 'PX', LEASE_MS);
  const [g] = await h.admit([{ device: 'd', seqs: [1] }]);
  assert.deepEqual(g, { a: 0, k: 0, verdicts: [WAIT] });
  assert.equal(await h.redis.exists(h.t.redis.deviceState('d'), `${h.t.redis.prefix}seqs:d`), 0);
  assert.equal(await h.redis.get(h.t.redis.admission('d')), 'gw-other');
});

test('a seq at or below a: DUPLICATE when taken and <= max(k, h), OUT_OF_ORDER when never taken', async (t) => {
  const h = await harness(t);
  await h.admit([{ device: 'd', seqs: [1, 2, 5] }]);
  // k = 5 recorded by the lease holder (and the lease released).
  const [g] = await h.admit([{ device: 'd', seqs: [2, 3, 4, 5, 1] }], { updates: [{ device: 'd', k: 5, release: true }] });
  assert.deepEqual(g, { a: 5, k: 5, verdicts: [DUP, OOO, OOO, DUP, DUP] });
  assert.equal((await h.state('d')).k, '5');
  assert.equal(await h.redis.exists(h.t.redis.admission('d')), 0, 'released, and refusals take no lease');

  // h (the forwarder's highest routed seq) counts as durable too.
  await h.admit([{ device: 'e', seqs: [1, 2, 3] }], { me: 'gw-x' });
  await h.redis.hset(h.t.redis.deviceState('e'), 'h', '2');
  await h.redis.del(h.t.redis.admission('e'));
  const [ge] = await h.admit([{ device: 'e', seqs: [1, 2] }]);
  assert.deepEqual(ge, { a: 3, k: 2, verdicts: [DUP, DUP] });
});

test('a seq skipped below a, anywhere within the window, is OUT_OF_ORDER (final), whoever holds the lease', async (t) => {
  const h = await harness(t);
  // New device starting at 10: 1..9 were never taken.
  const [g] = await h.admit([{ device: 'd', seqs: [10, 4, 9, 1] }]);
  assert.deepEqual(g, { a: 10, k: 0, verdicts: [10, OOO, OOO, OOO] });
  // While another instance holds the lease, even such a seq gets WAIT (the lease is checked first).
  await h.redis.set(h.t.redis.admission('d'), 'gw-other', 'PX', LEASE_MS);
  const [g2] = await h.admit([{ device: 'd', seqs: [4] }]);
  assert.deepEqual(g2, { a: 10, k: 0, verdicts: [WAIT] });
  // Later seqs after an OUT_OF_ORDER are still judged on their own (OUT_OF_ORDER is final, not a block).
  await h.redis.del(h.t.redis.admission('d'));
  const [g3] = await h.admit([{ device: 'd', myMax: 10, seqs: [3, 11] }]);
  assert.deepEqual(g3, { a: 11, k: 0, verdicts: [OOO, 11] });
});

test('seqs more than SEQ_WINDOW below a count as taken (DUPLICATE at or below k); the window edge is exact', async (t) => {
  const h = await harness(t);
  assert.equal(SEQ_WINDOW, 1024);
  // 5, then steps below the window size up to 2100 (no reset): 1..4 and everything skipped stay "never taken".
  await h.admit([{ device: 'd', seqs: [5, 1000, 1500, 2000, 2100] }]);
  assert.equal((await h.state('d')).w, '1');
  const [g] = await h.admit([{ device: 'd', seqs: [3, 1076, 1077, 1500, 2099] }], { updates: [{ device: 'd', k: 2100, release: true }] });
  // a - W = 1076: 1076 and below count as taken; 1077 is inside the window and never taken.
  assert.deepEqual(g, { a: 2100, k: 2100, verdicts: [DUP, DUP, OOO, DUP, OOO] });
});

test('WAIT while another instance holds adm:<id>: every seq of that device waits, another device in the call is taken', async (t) => {
  const h = await harness(t);
  await h.admit([{ device: 'd', seqs: [1, 2] }], { me: 'gw-other' });
  const [gd, ge] = await h.admit([
    { device: 'd', seqs: [3, 4, 0] },
    { device: 'e', seqs: [1, 2] },
  ]);
  assert.deepEqual(gd, { a: 2, k: 0, verdicts: [WAIT, WAIT, WAIT] });
  assert.deepEqual(ge, { a: 2, k: 0, verdicts: [1, 2] });
  assert.equal(await h.redis.get(h.t.redis.admission('d')), 'gw-other', 'the other lease is untouched');
  assert.equal(await h.redis.get(h.t.redis.admission('e')), 'gw-me');
  assert.equal((await h.state('d')).a, '2');
});

test('a seq in (k, a] below this instance\'s own waiting seq WAITs, and nothing later of the device overtakes it', async (t) => {
  const h = await harness(t);
  await h.admit([{ device: 'd', seqs: [1, 2, 3] }]);
  // Resend of 2 while 3 still waits for Kafka here (myMax 3): WAIT; 4 and a numbered 0 wait behind it.
  const [gd, ge] = await h.admit([
    { device: 'd', myMax: 3, seqs: [2, 4, 0] },
    { device: 'e', seqs: [7] },
  ]);
  assert.deepEqual(gd, { a: 3, k: 0, verdicts: [WAIT, WAIT, WAIT] });
  assert.deepEqual(ge, { a: 7, k: 0, verdicts: [7] });
  assert.equal((await h.state('d')).a, '3', 'nothing was taken for d');
  // With a DUPLICATE first, the block starts only at the WAIT.
  const [g2] = await h.admit([{ device: 'd', myMax: 3, seqs: [1, 3, 4] }], { updates: [{ device: 'd', k: 1, release: false }] });
  assert.deepEqual(g2, { a: 3, k: 1, verdicts: [DUP, WAIT, WAIT] });
});

test('seq "0" is numbered a + 1 (Nimbus), also mixed with numbered seqs and on a new device', async (t) => {
  const h = await harness(t);
  const [g] = await h.admit([{ device: 'n', seqs: [0, 0, 0] }]);
  assert.deepEqual(g, { a: 3, k: 0, verdicts: [1, 2, 3] });
  const [g2] = await h.admit([{ device: 'n', myMax: 3, seqs: [10, 0] }]);
  assert.deepEqual(g2, { a: 11, k: 0, verdicts: [10, 11] });
  assert.equal((await h.state('n')).a, '11');
});

test('updates: k recorded only while the lease names the caller, never lowered; release drops only the caller\'s lease', async (t) => {
  const h = await harness(t);
  await h.admit([{ device: 'd', seqs: [1, 2, 3, 4, 5] }], { me: 'gw-a' });
  // gw-b does not hold d's lease: its k and release are ignored.
  await h.admit([], { me: 'gw-b', updates: [{ device: 'd', k: 5, release: true }] });
  assert.equal((await h.state('d')).k, '0');
  assert.equal(await h.redis.get(h.t.redis.admission('d')), 'gw-a');
  // gw-a records k=3 without releasing, then k=2 (ignored: k never goes down), then k 0 with release.
  await h.admit([], { me: 'gw-a', updates: [{ device: 'd', k: 3, release: false }] });
  assert.equal((await h.state('d')).k, '3');
  assert.equal(await h.redis.get(h.t.redis.admission('d')), 'gw-a');
  await h.admit([], { me: 'gw-a', updates: [{ device: 'd', k: 2, release: false }] });
  assert.equal((await h.state('d')).k, '3');
  await h.admit([], { me: 'gw-a', updates: [{ device: 'd', k: 0, release: true }] });
  assert.equal((await h.state('d')).k, '3');
  assert.equal(await h.redis.exists(h.t.redis.admission('d')), 0);
  // Without the lease a later k is not recorded either.
  await h.admit([], { me: 'gw-a', updates: [{ device: 'd', k: 5, release: true }] });
  assert.equal((await h.state('d')).k, '3');
  // Updates run before the groups of the same call: after the release, gw-b takes d at once.
  await h.admit([{ device: 'd', seqs: [6] }], { me: 'gw-a' });
  const [g] = await h.admit([{ device: 'd', seqs: [7] }], { me: 'gw-b' });
  assert.deepEqual(g.verdicts, [WAIT]);
  const [g2] = await h.admit([], { me: 'gw-a', updates: [{ device: 'd', k: 6, release: true }] });
  assert.equal(g2, undefined);
  const [g3] = await h.admit([{ device: 'd', seqs: [7] }], { me: 'gw-b' });
  assert.deepEqual(g3, { a: 7, k: 6, verdicts: [7] });
});

test('a seq in (k, a] (an unknown region) is taken again while nothing above the region was taken and myMaxSeq < seq; WAIT when myMaxSeq >= seq; OUT_OF_ORDER once a seq above it was taken', async (t) => {
  const h = await harness(t);
  await h.admit([{ device: 'd', seqs: [1, 2, 3, 4, 5] }], { me: 'gw-a' });
  // gw-a: 1..2 durable, 3..5 failed in Kafka; releases with k=2.
  await h.admit([], { me: 'gw-a', updates: [{ device: 'd', k: 2, release: true }] });
  // gw-b, nothing waiting (myMax 0): 3..5 are taken again, with their own seqs; 2 is DUPLICATE.
  const [g] = await h.admit([{ device: 'd', seqs: [2, 3, 4, 5, 6] }], { me: 'gw-b' });
  assert.deepEqual(g, { a: 6, k: 2, verdicts: [DUP, 3, 4, 5, 6] });
  assert.equal(await h.redis.get(h.t.redis.admission('d')), 'gw-b');
  assert.equal((await h.state('d')).a, '6');
  // 3..5 were an unknown region; 6 was taken above it, so a further resend of 4 can never be taken
  // again (it could land after 6, and the forwarder would drop it): OUT_OF_ORDER.
  const [g2] = await h.admit([{ device: 'd', myMax: 6, seqs: [4] }], { me: 'gw-b' });
  assert.deepEqual(g2.verdicts, [OOO]);

  // A region resent while nothing above it was taken: taken again in order; at or below what this
  // instance still has waiting for Kafka (myMax), WAIT.
  await h.admit([{ device: 'e', seqs: [1, 2, 3, 4, 5] }], { me: 'gw-a' });
  await h.admit([], { me: 'gw-a', updates: [{ device: 'e', k: 2, release: true }] });
  const [e1] = await h.admit([{ device: 'e', seqs: [4] }], { me: 'gw-b' });
  assert.deepEqual(e1.verdicts, [4]);
  const [e2] = await h.admit([{ device: 'e', myMax: 4, seqs: [4] }], { me: 'gw-b' });
  assert.deepEqual(e2.verdicts, [WAIT], 'myMax == seq waits');
  const [e3] = await h.admit([{ device: 'e', myMax: 3, seqs: [4, 5, 3] }], { me: 'gw-b' });
  assert.deepEqual(e3.verdicts, [4, 5, WAIT], 'a re-take raises the running max within the call');
  // Resolved by this owner (k reaches the region's top before anything above it): the region is gone.
  await h.admit([], { me: 'gw-b', updates: [{ device: 'e', k: 5, release: true }] });
  assert.equal(await h.redis.hget(h.t.redis.deviceState('e'), 'uh'), null);
  const [e4] = await h.admit([{ device: 'e', seqs: [3, 6] }], { me: 'gw-b' });
  assert.deepEqual(e4.verdicts, [DUP, 6]);
});

test('a jump of SEQ_WINDOW or more resets the window: valid from the new seq - SEQ_WINDOW + 1 (all skipped), seqs: holds only its bit', async (t) => {
  const h = await harness(t);
  await h.admit([{ device: 'd', seqs: [1, 1024] }]);
  // 1024 - 1 < W: no reset.
  assert.equal((await h.state('d')).w, '1');
  await h.admit([{ device: 'd', myMax: 1024, seqs: [2048] }]);
  // 2048 - 1024 >= W: reset.
  assert.equal((await h.state('d')).w, '1025');
  assert.equal(await h.redis.bitcount(`${h.t.redis.prefix}seqs:d`), 1);
  assert.equal(await h.redis.getbit(`${h.t.redis.prefix}seqs:d`, 2048 % SEQ_WINDOW), 1);
  const [g] = await h.admit([{ device: 'd', seqs: [1024, 2049] }], { updates: [{ device: 'd', k: 2048, release: false }] });
  assert.deepEqual(g, { a: 2049, k: 2048, verdicts: [DUP, 2049] });
});

test('a seq skipped by a window reset and above k is OUT_OF_ORDER, never taken again below a', async (t) => {
  // 1, then 1025 (a jump of 1024: window reset, w = 1025). 500 was never taken, but it is below w,
  // so wasTaken() says taken; with k < 500 and nothing waiting here (myMax 0, e.g. another instance
  // or after a release), it is "taken again" and produced after 1025. If 1025 landed (not yet
  // recorded as k), the forwarder's dedupe (h = 1025) drops 500's result: acked, never delivered.
  // Every seq in (1, 1025) was provably never taken at the jump (they are all above the old a).
  const h = await harness(t);
  await h.admit([{ device: 'd', seqs: [1, 1025] }], { me: 'gw-a' });
  await h.admit([], { me: 'gw-a', updates: [{ device: 'd', k: 1, release: true }] });
  const [g] = await h.admit([{ device: 'd', seqs: [500] }], { me: 'gw-b' });
  assert.deepEqual(g, { a: 1025, k: 1, verdicts: [OOO] });
});

test('a lost dev: hash is rebuilt from the buffer\'s last entry field s (k = a = that seq, window anew above it)', async (t) => {
  const h = await harness(t);
  const buf = h.t.redis.deviceBuffer('d');
  await h.redis.xadd(buf, '6-0', 'r', 'x', 's', '40');
  await h.redis.xadd(buf, '7-0', 'r', 'y', 's', '41');
  const [g] = await h.admit([{ device: 'd', seqs: [41, 40, 45, 43] }]);
  // 41, 40: durable (routed); 45 taken; 43 skipped by it: never taken.
  assert.deepEqual(g, { a: 45, k: 41, verdicts: [DUP, DUP, 45, OOO] });
  assert.deepEqual(await h.state('d'), { a: '45', k: '41', w: '42' });

  // A rebuild that takes nothing writes nothing, and answers from the buffer again.
  await h.redis.xadd(h.t.redis.deviceBuffer('e'), '3-0', 'r', 'z', 's', '9');
  const [ge] = await h.admit([{ device: 'e', seqs: [9] }]);
  assert.deepEqual(ge, { a: 9, k: 9, verdicts: [DUP] });
  assert.equal(await h.redis.exists(h.t.redis.deviceState('e')), 0);

  // A buffer key of the wrong type does not fail the call: the device starts from 0.
  await h.redis.set(h.t.redis.deviceBuffer('f'), 'not a stream');
  const [gf] = await h.admit([{ device: 'f', seqs: [1] }]);
  assert.deepEqual(gf, { a: 1, k: 0, verdicts: [1] });
});

test('seqs up to 2^53-1 round-trip exactly (reply and hash, no float formatting)', async (t) => {
  const h = await harness(t);
  const [g] = await h.admit([{ device: 'd', seqs: [MAX - 2, MAX - 1] }]);
  assert.deepEqual(g, { a: MAX - 1, k: 0, verdicts: [MAX - 2, MAX - 1] });
  // MAX - 2 is a jump of more than the window from 0: the window is valid from MAX - 2 - 1023.
  assert.deepEqual(await h.state('d'), { a: '9007199254740990', k: '0', w: '9007199254739966' });
  await h.admit([], { updates: [{ device: 'd', k: MAX - 2, release: false }] });
  assert.equal((await h.state('d')).k, '9007199254740989');
  const [g2] = await h.admit([{ device: 'd', myMax: MAX - 1, seqs: [MAX - 2, MAX] }]);
  assert.deepEqual(g2, { a: MAX, k: MAX - 2, verdicts: [DUP, MAX] });
  assert.equal((await h.state('d')).a, '9007199254740991');

  // A big seq on a fresh device (window reset) and one numbered by "0".
  const [g3] = await h.admit([{ device: 'e', seqs: [MAX - 5, 0] }]);
  assert.deepEqual(g3, { a: MAX - 4, k: 0, verdicts: [MAX - 5, MAX - 4] });
  assert.deepEqual(await h.state('e'), { a: '9007199254740987', k: '0', w: '9007199254739963' });
  // Rebuild from a buffer whose last s is 2^53-1.
  await h.redis.xadd(h.t.redis.deviceBuffer('f'), '1-0', 'r', 'x', 's', String(MAX));
  const [gf] = await h.admit([{ device: 'f', seqs: [MAX] }]);
  assert.deepEqual(gf, { a: MAX, k: MAX, verdicts: [DUP] });
});

test('renew extends only the leases that name the caller', async (t) => {
  const h = await harness(t);
  await h.redis.set(h.t.redis.admission('mine'), 'gw-me', 'PX', 2000);
  await h.redis.set(h.t.redis.admission('theirs'), 'gw-other', 'PX', 2000);
  assert.deepEqual(await h.renew('gw-me', ['mine', 'theirs', 'nobody']), [1, 0, 0]);
  const mine = await h.redis.pttl(h.t.redis.admission('mine'));
  const theirs = await h.redis.pttl(h.t.redis.admission('theirs'));
  assert.ok(mine > 2000 && mine <= LEASE_MS, `own lease extended to ~${LEASE_MS} (PTTL ${mine})`);
  assert.ok(theirs <= 2000, `another's lease untouched (PTTL ${theirs})`);
  assert.equal(await h.redis.exists(h.t.redis.admission('nobody')), 0, 'nothing created');
  assert.deepEqual(await h.renew('gw-me', []), []);
});
