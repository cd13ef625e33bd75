import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkMetric, decodeEntry, encodeEntry, LABEL_VALUE_BYTES_MAX, LABELS_MAX, type Metric } from '../../../src/streams/metric-entry.js';

const good = { name: 'http_requests_total', value: 1, type: 'counter', timestamp: '9007199254740993', labels: { zone: 'b', host: 'a' } };

test('a valid metric: labels sorted, the timestamp string kept exactly', () => {
  assert.deepEqual(checkMetric(good, 'metrics[0]'), { name: 'http_requests_total', value: 1, type: 'counter', timestamp: '9007199254740993', labels: [['host', 'a'], ['zone', 'b']] });
  assert.equal((checkMetric({ ...good, name: 'a:b_c9', type: 'gauge', value: -2.5, labels: {} }, '') as Metric).name, 'a:b_c9');
});

test('each bad field is named, with what was received', () => {
  const cases: [object, string][] = [
    [{ name: '' }, 'metrics[3].name must match [a-zA-Z_:][a-zA-Z0-9_:]* with 1..200 characters (got "")'],
    [{ name: '9lives' }, 'metrics[3].name must match [a-zA-Z_:][a-zA-Z0-9_:]* with 1..200 characters (got "9lives")'],
    [{ name: 'a-b' }, 'metrics[3].name must match [a-zA-Z_:][a-zA-Z0-9_:]* with 1..200 characters (got "a-b")'],
    [{ name: 'a'.repeat(201) }, `metrics[3].name must match [a-zA-Z_:][a-zA-Z0-9_:]* with 1..200 characters (got "${'a'.repeat(64)}...")`],
    [{ value: NaN }, 'metrics[3].value must be a finite number (got NaN)'],
    [{ value: Infinity }, 'metrics[3].value must be a finite number (got Infinity)'],
    [{ value: -Infinity }, 'metrics[3].value must be a finite number (got -Infinity)'],
    [{ value: -1 }, 'metrics[3].value must be >= 0 for a counter, whose value is an increment (got -1)'],
    [{ type: 'meter' }, 'metrics[3].type must be one of counter, gauge, histogram, summary (got "meter")'],
    [{ type: '' }, 'metrics[3].type must be one of counter, gauge, histogram, summary (got "")'],
    [{ timestamp: '9223372036854775808' }, 'metrics[3].timestamp must be a 64-bit integer (got "9223372036854775808")'],
    [{ labels: { 'bad-name': 'x' } }, 'metrics[3].labels["bad-name"]: a label name must match [a-zA-Z_][a-zA-Z0-9_]* with at most 100 characters and not start with __'],
    [{ labels: { __name__: 'x' } }, 'metrics[3].labels["__name__"]: a label name must match [a-zA-Z_][a-zA-Z0-9_]* with at most 100 characters and not start with __'],
    [{ type: 'histogram', labels: { le: '1' } }, 'metrics[3].labels["le"]: "le" is reserved in a histogram'],
    [{ labels: { a: 'x'.repeat(LABEL_VALUE_BYTES_MAX + 1) } }, `metrics[3].labels["a"] has ${LABEL_VALUE_BYTES_MAX + 1} bytes; at most ${LABEL_VALUE_BYTES_MAX}`],
    [{ labels: Object.fromEntries(Array.from({ length: LABELS_MAX + 1 }, (_, i) => [`l${i}`, ''])) }, `metrics[3].labels has ${LABELS_MAX + 1} labels; at most ${LABELS_MAX}`],
  ];
  for (const [patch, message] of cases) assert.equal(checkMetric({ ...good, ...patch }, 'metrics[3]'), message);
  assert.equal(checkMetric({ ...good, value: NaN }, ''), 'value must be a finite number (got NaN)');
});

test('encode -> decode gives the metric back exactly', () => {
  for (const value of [0, 1, -0.1, 1e21, 5e-324, 1.7976931348623157e308, 0.30000000000000004]) {
    const m = checkMetric({ ...good, type: 'gauge', value, timestamp: '-9223372036854775808' }, '') as Metric;
    assert.deepEqual(decodeEntry(encodeEntry(m)), m);
  }
  assert.deepEqual(encodeEntry(checkMetric(good, '') as Metric), ['name', 'http_requests_total', 'type', 'counter', 'value', '1', 'ts', '9007199254740993', 'labels', '{"host":"a","zone":"b"}']);
});

test('decode refuses what this service would not write, saying why', () => {
  assert.equal(decodeEntry(['garbage', 'x']), 'entry has no field "name"');
  assert.equal(decodeEntry(['name', 'a', 'type', 'gauge', 'value', '1', 'ts', '0', 'labels', '{']), 'entry field "labels" is not JSON ("{")');
  assert.equal(decodeEntry(['name', 'a', 'type', 'gauge', 'value', ' 1', 'ts', '0', 'labels', '{}']), 'entry.value must be a finite number (got NaN)');
  assert.equal(decodeEntry(['name', 'a', 'type', 'gauge', 'value', '', 'ts', '0', 'labels', '{}']), 'entry.value must be a finite number (got NaN)');
  assert.equal(decodeEntry(['name', 'a', 'type', 'gauge', 'value', '1', 'ts', '1.5', 'labels', '{}']), 'entry.timestamp must be a 64-bit integer (got "1.5")');
  assert.equal(decodeEntry(['name']), 'entry has an odd number (1) of field names and values');
  assert.equal(decodeEntry(null), 'entry has no fields (deleted)');
});
