/**
 * splitBatch (metrics-service.ts): the encoded metrics of an encoded BatchMetrics, each decoding to
 * what the service's own decoder gives for the whole batch; other fields skipped as protobuf
 * parsers do; anything malformed named, never thrown.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { metricsServiceDefinition, splitBatch } from '../../../src/streams/metrics-service.js';
import { lenField, varintField } from '../../helpers/raw-grpc.js';

const def = metricsServiceDefinition();
const encodeBatch = def.IngestMetrics!.requestSerialize as (o: unknown) => Buffer;
const decodeBatch = def.IngestMetrics!.requestDeserialize as (b: Buffer) => { metrics: unknown[] };
const decodeMetric = def.IngestMetric!.requestDeserialize as (b: Buffer) => unknown;

test('each entry decodes to the metric the whole-batch decoder gives, in order', () => {
  const metrics = Array.from({ length: 300 }, (_, i) => ({
    name: `m_${i}`,
    value: i % 7 === 0 ? -0.5 * i : i * 1e10,
    type: ['counter', 'gauge', 'histogram', 'summary'][i % 4],
    timestamp: String(i % 3 === 0 ? '9223372036854775807' : 1_700_000_000_000 + i),
    labels: i % 2 === 0 ? {} : { host: `h${i}`, region: 'eu' },
  }));
  metrics.push({ name: '', value: 0, type: '', timestamp: '0', labels: {} });
  const bytes = encodeBatch({ metrics });
  const parts = splitBatch(bytes);
  assert.ok(Array.isArray(parts));
  assert.deepEqual(parts.map(decodeMetric), decodeBatch(bytes).metrics);
  assert.deepEqual(splitBatch(Buffer.alloc(0)), []);
});

test('fields of other numbers are skipped, whatever their wire type', () => {
  const one = encodeBatch({ metrics: [{ name: 'a', value: 1, type: 'gauge', timestamp: '1', labels: {} }] });
  const fixed64 = Buffer.concat([Buffer.from([(7 << 3) | 1]), Buffer.alloc(8)]);
  const fixed32 = Buffer.concat([Buffer.from([(8 << 3) | 5]), Buffer.alloc(4)]);
  const withOthers = Buffer.concat([varintField(2, 2 ** 40), one, lenField(3, 'x'), fixed64, fixed32, one]);
  const parts = splitBatch(withOthers);
  assert.ok(Array.isArray(parts));
  assert.equal(parts.length, 2);
  assert.deepEqual(parts.map(decodeMetric), [...decodeBatch(one).metrics, ...decodeBatch(one).metrics]);
});

test('malformed input is named, not thrown', () => {
  const one = encodeBatch({ metrics: [{ name: 'a', value: 1, type: 'gauge', timestamp: '1', labels: {} }] });
  for (const [bytes, why] of [
    [one.subarray(0, one.length - 1), /runs past the end/],
    [Buffer.from([0x0a]), /index out of range/],
    [Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), /invalid varint/],
    [Buffer.from([(1 << 3) | 0, 5]), /field 1 \(metrics\) has wire type 0/],
    [Buffer.from([(4 << 3) | 3]), /index out of range/],
    [Buffer.from([(9 << 3) | 7]), /invalid wire type 7/],
    [Buffer.from([0x00, 0x01]), /field number 0/],
    [Buffer.from([(9 << 3) | 1, 1, 2]), /index out of range/],
  ] as const) {
    const r = splitBatch(bytes);
    assert.equal(typeof r, 'string', `accepted ${bytes.toString('hex')}`);
    assert.match(r as string, why);
  }
});
