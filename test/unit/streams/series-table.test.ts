import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkMetric, type Metric, type MetricMessage } from '../../../src/streams/metric-entry.js';
import { escapeLabelValue, SeriesTable } from '../../../src/streams/series-table.js';

const m = (x: MetricMessage): Metric => {
  const r = checkMetric({ timestamp: '0', labels: {}, ...x }, '');
  assert.equal(typeof r, 'object', String(r));
  return r as Metric;
};

test('the exposition text, exactly: HELP/TYPE, sums, latest gauge, buckets, escaped label values, sorted', () => {
  const t = new SeriesTable(100);
  for (const x of [
    m({ name: 'req_total', type: 'counter', value: 2, labels: { path: 'a"b\\c\nd', code: '200' } }),
    m({ name: 'req_total', type: 'counter', value: 3, labels: { code: '200', path: 'a"b\\c\nd' } }),
    m({ name: 'req_total', type: 'counter', value: 1 }),
    m({ name: 'temp', type: 'gauge', value: 20, timestamp: '9007199254740993' }),
    m({ name: 'temp', type: 'gauge', value: 10, timestamp: '9007199254740992' }),
    m({ name: 'lat', type: 'histogram', value: 0.05 }),
    m({ name: 'lat', type: 'histogram', value: 7 }),
    m({ name: 'lat', type: 'histogram', value: 100 }),
    m({ name: 'size', type: 'summary', value: 1.5, labels: { k: 'v' } }),
    m({ name: 'size', type: 'summary', value: 2, labels: { k: 'v' } }),
  ]) assert.equal(t.apply(x), null);
  assert.equal(t.size, 5);
  assert.equal(
    t.render(),
    [
      '# HELP lat Ingested through data_nexus.MetricsService: the observations received.',
      '# TYPE lat histogram',
      'lat_bucket{le="0.005"} 0',
      'lat_bucket{le="0.01"} 0',
      'lat_bucket{le="0.025"} 0',
      'lat_bucket{le="0.05"} 1',
      'lat_bucket{le="0.1"} 1',
      'lat_bucket{le="0.25"} 1',
      'lat_bucket{le="0.5"} 1',
      'lat_bucket{le="1"} 1',
      'lat_bucket{le="2.5"} 1',
      'lat_bucket{le="5"} 1',
      'lat_bucket{le="10"} 2',
      'lat_bucket{le="+Inf"} 3',
      'lat_sum 107.05',
      'lat_count 3',
      '# HELP req_total Ingested through data_nexus.MetricsService: the sum of the values received.',
      '# TYPE req_total counter',
      'req_total 1',
      'req_total{code="200",path="a\\"b\\\\c\\nd"} 5',
      '# HELP size Ingested through data_nexus.MetricsService: the sum and count of the observations received.',
      '# TYPE size summary',
      'size_sum{k="v"} 3.5',
      'size_count{k="v"} 2',
      '# HELP temp Ingested through data_nexus.MetricsService: the value with the latest timestamp.',
      '# TYPE temp gauge',
      'temp 20',
      '',
    ].join('\n'),
  );
});

test('escaping: backslash, double quote, line feed; nothing else', () => {
  assert.equal(escapeLabelValue('a\\b"c\nd\te'), 'a\\\\b\\"c\\nd\te');
});

test('refused: a type conflict, a name clash with _sum/_count/_bucket lines, a new series beyond seriesMax; nothing changes', () => {
  const t = new SeriesTable(2);
  assert.equal(t.apply(m({ name: 'x', type: 'counter', value: 1 })), null);
  assert.equal(t.apply(m({ name: 'x', type: 'gauge', value: 1 })), 'type conflict: x is a counter here, the entry says gauge');
  assert.equal(t.apply(m({ name: 'h', type: 'histogram', value: 1 })), null);
  assert.equal(t.apply(m({ name: 'h_count', type: 'counter', value: 1 })), 'name clash: h_count is a line of the histogram h');
  assert.equal(t.apply(m({ name: 'x_sum', type: 'counter', value: 1 })), 'series limit: 2 series (streams.seriesMax) are held; x_sum{} would be a new one');
  assert.equal(t.apply(m({ name: 'x', type: 'counter', value: 1, labels: { a: '1' } })), 'series limit: 2 series (streams.seriesMax) are held; x{"a":"1"} would be a new one');
  assert.equal(t.apply(m({ name: 'x', type: 'counter', value: 1 })), null);
  const u = new SeriesTable(10);
  assert.equal(u.apply(m({ name: 'y_bucket', type: 'gauge', value: 1 })), null);
  assert.equal(u.apply(m({ name: 'y', type: 'histogram', value: 1 })), 'name clash: the histogram y would write y_bucket, which is a gauge here');
  assert.match(t.render(), /^x 2$/m);
});
