/**
 * A gateway started before its events topic exists: it starts (its other services work), refuses
 * device events with UNAVAILABLE meanwhile, and takes them once the topic is there.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { Gateway } from '../../../src/gateway/gateway.js';
import { deleteTopics, ensureTopics } from '../../../src/kafka/admin.js';
import { topology } from '../../../src/topology.js';
import { testConfig } from '../../helpers/config.js';
import { TestDevice } from '../../helpers/device.js';

test('events topic missing at start: UNAVAILABLE until it exists, then events are taken and acked', { timeout: 60_000 }, async (t) => {
  const config = testConfig();
  const tp = topology(config).topics;
  const gw = await Gateway.start(config, 'test-no-topic', 0);
  t.after(async () => {
    await gw.stop();
    await deleteTopics(config, [tp.events, tp.results]).catch(() => {});
  });
  const early = new TestDevice('dev-early').connect(`127.0.0.1:${gw.port}`);
  early.send([{ seq: 1, type: 'sq', value: 2 }]);
  await early.until(() => early.status !== null, 10_000, 'the stream to end');
  assert.equal(early.status!.code, status.UNAVAILABLE);
  assert.match(early.status!.details, /events topic .* does not exist/);
  assert.equal(early.ackedSeq, 0);

  await ensureTopics(config, [{ topic: tp.events, partitions: 3 }]);
  const late = new TestDevice('dev-late').connect(`127.0.0.1:${gw.port}`);
  t.after(() => late.close());
  // The gateway asks again every 5 s: resend until taken, as a device does after UNAVAILABLE.
  const deadline = Date.now() + 30_000;
  let dev = late;
  while (dev.ackedSeq < 1) {
    assert.ok(Date.now() < deadline, 'the event was not acked within 30 s of the topic being created');
    if (dev.status !== null) dev = new TestDevice('dev-late').connect(`127.0.0.1:${gw.port}`);
    dev.send([{ seq: 1, type: 'sq', value: 2 }]);
    await dev.until(() => dev.ackedSeq >= 1 || dev.status !== null, 10_000, 'an ack or the end of the stream').catch(() => {});
  }
  assert.equal(dev.ackedSeq, 1);
  dev.close();
});
