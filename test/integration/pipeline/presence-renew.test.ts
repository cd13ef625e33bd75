/**
 * The gateway's presence renewal against real Redis: every device given gets its lease (value =
 * this instance, TTL = gateway.presenceLeaseMs), across several pipelines, and the event loop is
 * never held for the whole fleet at once (a timer keeps firing while 10,000 leases are renewed).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DeliveryLink } from '../../../src/gateway/delivery.js';
import { topology } from '../../../src/topology.js';
import { testConfig } from '../../helpers/config.js';
import { deleteEach, scanKeys } from '../../helpers/redis-keys.js';

test('renew(): every lease set with its TTL, in chunks that let the event loop run', async () => {
  const config = testConfig({ 'gateway-presence-lease-ms': '60000' });
  const link = await DeliveryLink.connect(config, 'renew-test', { onEntries: () => {}, onTakeover: () => {} });
  try {
    const ids = Array.from({ length: 10_000 }, (_, i) => `dev-${i}`);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    await link.renew(ids.map((deviceId) => ({ deviceId, sentSeq: 0, lost: () => assert.fail(`${deviceId} lost`) })));
    clearInterval(timer);
    const t = topology(config);
    // One command each: on Redis Cluster the keys live on different masters.
    const replies = await Promise.all(
      [ids[0]!, ids[249]!, ids[250]!, ids[9_999]!].flatMap((id) => [link.commands.get(t.redis.presence(id)), link.commands.pttl(t.redis.presence(id))]),
    );
    for (let i = 0; i < replies.length; i += 2) {
      assert.equal(replies[i], 'renew-test');
      assert.ok(Number(replies[i + 1]) > 50_000 && Number(replies[i + 1]) <= 60_000, `pttl ${String(replies[i + 1])}`);
    }
    assert.equal((await scanKeys(link.commands, t.redis.presence('*'))).length, ids.length);
    // One pipeline of 10,000 SETs ran as one turn; in chunks, timers fire between them.
    assert.ok(ticks >= 5, `the timer fired ${ticks} times while 10,000 leases were renewed`);
    await deleteEach(link.commands, ids.map((id) => t.redis.presence(id)));
  } finally {
    await link.close();
  }
});
