import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chunksOf, rowsOf } from '../../../src/archive/archiver.js';
import type { ConsumedMessage } from '../../../src/kafka/types.js';
import { encodeEventRecord, type AcceptedEvent } from '../../../src/wire/event-record.js';
import { encodeResult, encodeResultRecord } from '../../../src/wire/result-record.js';

const ev = (deviceId: string, seq: number, payloadBytes = 4): AcceptedEvent => ({ deviceId, seq, type: 'sq', value: seq, payload: Buffer.alloc(payloadBytes, 7), sentAtUs: 1000 + seq, receivedAtUs: 2000 + seq });
const msg = (topic: string, offset: number, value: Buffer): ConsumedMessage => ({ topic, partition: 1, offset, key: null, value });

test('rowsOf: events and results of many devices per record, each with its Kafka position; the oldest time', () => {
  const events = encodeEventRecord([ev('a', 1), ev('b', 1), ev('a', 2)]);
  const results = encodeResultRecord([encodeResult({ ...ev('a', 1), value: 1, processedAtUs: 1500 }), encodeResult({ ...ev('b', 1), value: 1, processedAtUs: 3000 })]);
  const rows = rowsOf([msg('t.events', 10, events), msg('t.results', 20, results)], 't.events', 100);
  assert.deepEqual(rows.events.map((e) => [e.deviceId, e.seq, e.origin.offset, e.origin.item]), [['a', 1, 10, 0], ['b', 1, 10, 1], ['a', 2, 10, 2]]);
  assert.deepEqual(rows.results.map((r) => [r.deviceId, r.seq, r.receivedAtUs, r.processedAtUs, r.origin.item]), [['a', 1, 2001, 1500, 0], ['b', 1, 2001, 3000, 1]]);
  assert.equal(rows.oldestUs, 1500);
  assert.deepEqual(rows.deadLetters, []);
});

test('rowsOf: a payload over the limit and an undecodable record are dead letters with reasons; the rest stays', () => {
  const rows = rowsOf([msg('t.events', 1, encodeEventRecord([ev('a', 1, 101), ev('a', 2, 100)])), msg('t.events', 2, Buffer.from([0x0a, 0xff])), msg('t.results', 3, Buffer.from([0x0a, 0x05, 1]))], 't.events', 100);
  assert.deepEqual(rows.events.map((e) => e.seq), [2]);
  assert.deepEqual(rows.deadReasons, ['payload', 'undecodable', 'undecodable']);
  assert.deepEqual(rows.deadLetters[0], { topic: 't.events', partition: 1, offset: 1, item: 0, deviceId: 'a', seq: 1, reason: 'payload of 101 bytes is over archive.payloadBytesMax (100)' });
  assert.match(rows.deadLetters[1]!.reason, /^undecodable event record: /);
  assert.match(rows.deadLetters[2]!.reason, /^undecodable result record: /);
  assert.equal(rows.deadLetters[2]!.deviceId, null);
});

test('chunksOf: transactions of at most rowsMax rows, every row once, in order', () => {
  const rows = rowsOf([msg('t.events', 1, encodeEventRecord(Array.from({ length: 7 }, (_, i) => ev('a', i + 1))))], 't.events', 100);
  rows.deadLetters.push({ topic: 't', partition: 0, offset: 0, item: 0, deviceId: null, seq: null, reason: 'x' });
  const chunks = [...chunksOf(rows, 3)];
  assert.deepEqual(chunks.map((c) => c.events.length + c.results.length + c.deadLetters.length), [3, 3, 2]);
  assert.deepEqual(chunks.flatMap((c) => c.events.map((e) => e.seq)), [1, 2, 3, 4, 5, 6, 7]);
  assert.equal(chunks[2]!.deadLetters.length, 1);
  assert.deepEqual([...chunksOf({ events: [], results: [], deadLetters: [], deadReasons: [], oldestUs: Infinity }, 3)], []);
});
