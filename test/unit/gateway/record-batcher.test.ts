/**
 * RecordBatcher: the events one turn takes become one record per partition, in the order taken,
 * emitted at the end of the turn; a record closes at its event or byte limit.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as turn } from 'node:timers/promises';
import { RecordBatcher } from '../../../src/gateway/record-batcher.js';
import { partitionOf } from '../../../src/kafka/partitioner.js';
import { decodeEventRecord, type AcceptedEvent } from '../../../src/wire/event-record.js';

const ev = (deviceId: string, seq: number, payloadBytes = 0): AcceptedEvent => ({ deviceId, seq, type: 'sq', value: seq, payload: Buffer.alloc(payloadBytes), sentAtUs: 1, receivedAtUs: 2 });

test('one record per partition per turn, events in the order taken, pendings beside them', async () => {
  const out: { partition: number; events: [string, number][]; pendings: number[] }[] = [];
  const b = new RecordBatcher<number>(4, 1000, 1 << 20, (partition, value, pendings) => out.push({ partition, events: decodeEventRecord(value, null).map((e) => [e.deviceId, e.seq]), pendings }));
  const devices = Array.from({ length: 20 }, (_, i) => `dev-${i}`);
  let n = 0;
  for (let seq = 1; seq <= 3; seq++) for (const d of devices) b.add(ev(d, seq), n++);
  assert.equal(out.length, 0, 'nothing before the end of the turn');
  assert.equal(b.waiting, 60);
  await turn();
  assert.equal(b.waiting, 0);
  assert.deepEqual(out.map((r) => r.partition).sort(), [...new Set(devices.map((d) => partitionOf(d, 4)))].sort());
  for (const r of out) {
    for (const [d] of r.events) assert.equal(partitionOf(d, 4), r.partition, `${d} in its partition`);
    // Per device, seqs in order; pendings in the same order as the events.
    for (const d of devices) {
      const seqs = r.events.filter(([x]) => x === d).map(([, s]) => s);
      if (seqs.length > 0) assert.deepEqual(seqs, [1, 2, 3]);
    }
    assert.deepEqual(r.pendings, [...r.pendings].sort((x, y) => x - y));
    assert.equal(r.pendings.length, r.events.length);
  }
  // A later turn starts new records.
  b.add(ev('dev-0', 4), 99);
  await turn();
  assert.deepEqual(out.at(-1)!.events, [['dev-0', 4]]);
});

test('a record closes at recordEventsMax events or recordBytesMax bytes; a larger event goes alone', async () => {
  const out: number[] = [];
  const b = new RecordBatcher<number>(1, 3, 1 << 20, (_p, value) => out.push(decodeEventRecord(value, null).length));
  for (let i = 1; i <= 7; i++) b.add(ev('d', i), i);
  await turn();
  assert.deepEqual(out, [3, 3, 1]);
  const bytes: number[] = [];
  const c = new RecordBatcher<number>(1, 1000, 4096, (_p, value, pendings) => bytes.push(value.length, pendings.length));
  c.add(ev('d', 1, 1000), 1);
  c.add(ev('d', 2, 1000), 2);
  c.add(ev('d', 3, 5000), 3);
  c.add(ev('d', 4, 10), 4);
  await turn();
  assert.equal(bytes.length, 6);
  assert.deepEqual([bytes[1], bytes[3], bytes[5]], [2, 1, 1]);
  assert.ok(bytes[0]! <= 4096);
});
