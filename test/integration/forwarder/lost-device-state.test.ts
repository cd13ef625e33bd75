/**
 * Regression test for bug (a): a device's `dev:<id>` hash vanishes (eviction, operator cleanup,
 * partial restore) while its result buffer `buf:<id>` remains. The old deliver script then did
 * HINCRBY n -> 1, HSET h, and failed on XADD `1-0`; the forwarder retried the whole batch forever,
 * the result was marked routed but never buffered (lost), and every other device's results stopped.
 *
 * Through the real forwarder and a real results topic: every result of the device whose hash was
 * deleted and of the others ends up in its buffer exactly once, and the others keep flowing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testConfig } from '../../helpers/config.js';
import { deleteTopics, ensureTopics } from '../../../src/kafka/admin.js';
import { KafkaProducer } from '../../../src/kafka/native/producer.js';
import { createRedis, connectRedis, disconnectRedis } from '../../../src/redis/client.js';
import { startForwarder } from '../../../src/forwarder/forwarder.js';
import { topology } from '../../../src/topology.js';
import { decodeResult, encodeResult, encodeResultRecord } from '../../../src/wire/result-record.js';

const PER_DEVICE = 200;
const DEVICES = ['dev-a', 'dev-b', 'dev-c'];

/** A field of a stream entry read with xrangeBuffer (name, value, name, value...). */
function field(fields: Buffer[], name: string): Buffer {
  const i = fields.findIndex((f, j) => j % 2 === 0 && f.toString() === name);
  assert.ok(i >= 0, `entry has no field ${name}`);
  return fields[i + 1]!;
}

async function until(what: string, cond: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('regression (a): dev hash deleted mid-stream: every result of every device buffered exactly once, others never stall', { timeout: 120_000 }, async (t) => {
  const config = testConfig({ 'kafka-partitions': '2' });
  const topo = topology(config);
  await ensureTopics(config, [{ topic: topo.topics.results, partitions: 2 }]);
  t.after(() => deleteTopics(config, [topo.topics.results]).catch(() => {}));
  const redis = createRedis(config, 'test-lost-state');
  await connectRedis(redis);
  t.after(async () => {
    const keys = await redis.keys(`${topo.redis.prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    disconnectRedis(redis);
  });
  const forwarder = await startForwarder(config, 'test-lost-state');
  t.after(() => forwarder.stop());
  const producer = await KafkaProducer.connect(config, 'test-lost-state-producer', (err) => assert.ifError(err));
  t.after(() => producer.disconnect());

  const produce = async (device: string, from: number, to: number) => {
    // One record of the device's results from..to, as the processor writes them.
    const results: Buffer[] = [];
    for (let seq = from; seq <= to; seq++) results.push(encodeResult({ deviceId: device, seq, value: seq * 10, sentAtUs: 1, receivedAtUs: Date.now() * 1000, processedAtUs: Date.now() * 1000, type: 'sq', payload: new Uint8Array(0) }));
    assert.ok(producer.produce(topo.topics.results, null, device, encodeResultRecord(results), null));
  };
  const xlen = (device: string) => redis.xlen(topo.redis.deviceBuffer(device));

  // First half of every device, then wait until it is buffered.
  for (const d of DEVICES) await produce(d, 1, PER_DEVICE / 2);
  await producer.flush(10_000);
  await until('the first half buffered', async () => (await Promise.all(DEVICES.map(xlen))).every((n) => n === PER_DEVICE / 2), 30_000);

  // The device state of dev-a vanishes; its buffer stays.
  assert.equal(await redis.del(topo.redis.deviceState('dev-a')), 1);

  // Second half, interleaved so dev-a's first lost-state result shares batches with the others.
  for (let s = PER_DEVICE / 2 + 1; s <= PER_DEVICE; s += 10) for (const d of DEVICES) await produce(d, s, s + 9);
  // dev-a's old results again (a re-read batch): still duplicates after the rebuild.
  await produce('dev-a', 1, 20);
  await produce('dev-a', PER_DEVICE - 5, PER_DEVICE);
  // Sentinels: once they are in, nothing before them is still on its way.
  for (const d of DEVICES) await produce(d, PER_DEVICE + 1, PER_DEVICE + 1);
  await producer.flush(10_000);

  // The others must not wait on dev-a (the old forwarder stalled every device here, forever).
  await until('dev-b and dev-c complete', async () => (await xlen('dev-b')) === PER_DEVICE + 1 && (await xlen('dev-c')) === PER_DEVICE + 1, 15_000);
  await until('dev-a complete', async () => (await xlen('dev-a')) === PER_DEVICE + 1, 15_000);

  for (const d of DEVICES) {
    const rows = (await redis.xrangeBuffer(topo.redis.deviceBuffer(d), '-', '+')) as [Buffer, Buffer[]][];
    const seqs = rows.map(([, fields]) => decodeResult(field(fields, 'r')).seq);
    assert.deepEqual(seqs, Array.from({ length: PER_DEVICE + 1 }, (_, i) => i + 1), `${d}: every seq exactly once, in order`);
    const ids = rows.map(([id]) => Number(id.toString().split('-')[0]));
    assert.deepEqual(ids, Array.from({ length: PER_DEVICE + 1 }, (_, i) => i + 1), `${d}: buffer ids n-0 without a gap`);
  }
  assert.equal(await redis.exists(`${topo.redis.prefix}results:dead`), 0, 'nothing dead-lettered');
  const state = await redis.hgetall(topo.redis.deviceState('dev-a'));
  assert.equal(state.h, String(PER_DEVICE + 1));
  assert.equal(state.n, String(PER_DEVICE + 1));
});
