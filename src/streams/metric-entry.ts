/**
 * One ingested metric: its validation (shared by the gRPC service, before anything is written, and
 * by the exporter, on what it reads back) and its encoding as a Redis stream entry.
 *
 * Entry fields, readable with XRANGE:
 *
 *   name    the metric name
 *   type    counter | gauge | histogram | summary
 *   value   the double as JavaScript's shortest round-trip decimal (String(v)): exact
 *   ts      the int64 timestamp as a decimal string, exactly as received (may exceed 2^53)
 *   labels  JSON object, keys sorted: {"host":"a","zone":"b"}
 */

export const METRIC_TYPES = ['counter', 'gauge', 'histogram', 'summary'] as const;
export type MetricType = (typeof METRIC_TYPES)[number];

export interface Metric {
  readonly name: string;
  readonly value: number;
  readonly type: MetricType;
  /** int64 as a decimal string, exact. */
  readonly timestamp: string;
  /** Sorted by name. */
  readonly labels: readonly (readonly [string, string])[];
}

/** What a decoder (proto-loader with `longs: String, defaults: true`) hands the service. */
export interface MetricMessage {
  name?: unknown;
  value?: unknown;
  type?: unknown;
  timestamp?: unknown;
  labels?: unknown;
}

export const NAME_LENGTH_MAX = 200;
export const LABELS_MAX = 32;
export const LABEL_NAME_LENGTH_MAX = 100;
export const LABEL_VALUE_BYTES_MAX = 1024;

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const INT64_RE = /^-?\d{1,19}$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
/** Label names the exposition itself writes for these types. */
const RESERVED_LABEL: Partial<Record<MetricType, string>> = { histogram: 'le', summary: 'quantile' };

/** A value shown in a message: quoted, at most 64 characters. */
function shown(v: unknown): string {
  if (typeof v === 'number') return String(v);
  const s = typeof v === 'string' ? v : String(v);
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}...` : s);
}

/**
 * The metric, or a message naming the bad field under `at` (`metrics[3]`, or '' for a top-level
 * Metric): `metrics[3].value must be a finite number (got NaN)`.
 */
export function checkMetric(m: MetricMessage, at: string): Metric | string {
  const f = (field: string) => (at === '' ? field : `${at}.${field}`);
  const { name, value, type, timestamp, labels } = m;
  if (typeof name !== 'string' || name.length === 0 || name.length > NAME_LENGTH_MAX || !NAME_RE.test(name)) {
    return `${f('name')} must match [a-zA-Z_:][a-zA-Z0-9_:]* with 1..${NAME_LENGTH_MAX} characters (got ${shown(name)})`;
  }
  if (typeof type !== 'string' || !(METRIC_TYPES as readonly string[]).includes(type)) {
    return `${f('type')} must be one of ${METRIC_TYPES.join(', ')} (got ${shown(type)})`;
  }
  if (typeof value !== 'number' || !Number.isFinite(value)) return `${f('value')} must be a finite number (got ${shown(value)})`;
  if (type === 'counter' && value < 0) return `${f('value')} must be >= 0 for a counter, whose value is an increment (got ${value})`;
  const ts = typeof timestamp === 'number' && Number.isSafeInteger(timestamp) ? String(timestamp) : timestamp;
  if (typeof ts !== 'string' || !INT64_RE.test(ts) || BigInt(ts) < INT64_MIN || BigInt(ts) > INT64_MAX) {
    return `${f('timestamp')} must be a 64-bit integer (got ${shown(timestamp)})`;
  }
  if (labels === null || typeof labels !== 'object' || Array.isArray(labels)) return `${f('labels')} must be a map of strings (got ${shown(labels)})`;
  const pairs = Object.entries(labels as Record<string, unknown>);
  if (pairs.length > LABELS_MAX) return `${f('labels')} has ${pairs.length} labels; at most ${LABELS_MAX}`;
  for (const [k, v] of pairs) {
    if (k.length > LABEL_NAME_LENGTH_MAX || !LABEL_NAME_RE.test(k) || k.startsWith('__')) {
      return `${f(`labels[${shown(k)}]`)}: a label name must match [a-zA-Z_][a-zA-Z0-9_]* with at most ${LABEL_NAME_LENGTH_MAX} characters and not start with __`;
    }
    if (k === RESERVED_LABEL[type as MetricType]) return `${f(`labels[${shown(k)}]`)}: "${k}" is reserved in a ${type}`;
    if (typeof v !== 'string') return `${f(`labels[${shown(k)}]`)} must be a string (got ${shown(v)})`;
    if (Buffer.byteLength(v) > LABEL_VALUE_BYTES_MAX) return `${f(`labels[${shown(k)}]`)} has ${Buffer.byteLength(v)} bytes; at most ${LABEL_VALUE_BYTES_MAX}`;
  }
  pairs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return { name, value, type: type as MetricType, timestamp: ts, labels: pairs as [string, string][] };
}

/** The entry's fields, as XADD takes them after the id. */
export function encodeEntry(m: Metric): string[] {
  return ['name', m.name, 'type', m.type, 'value', String(m.value), 'ts', m.timestamp, 'labels', JSON.stringify(Object.fromEntries(m.labels))];
}

/**
 * The metric of an entry's flat field list (XREADGROUP/XAUTOCLAIM reply), or why it is not one.
 * Checked like a call's input: an entry written by anything but this service proves nothing.
 */
export function decodeEntry(fields: readonly string[] | null): Metric | string {
  if (fields === null) return 'entry has no fields (deleted)';
  if (fields.length % 2 !== 0) return `entry has an odd number (${fields.length}) of field names and values`;
  const map = new Map<string, string>();
  for (let i = 0; i < fields.length; i += 2) map.set(fields[i]!, fields[i + 1]!);
  for (const k of ['name', 'type', 'value', 'ts', 'labels']) if (!map.has(k)) return `entry has no field "${k}"`;
  const valueText = map.get('value')!;
  // Number('') is 0 and Number(' 1') is 1: only what String(number) writes is accepted.
  const value = /^-?(\d+\.?\d*(e[+-]\d+)?|Infinity)$/.test(valueText) ? Number(valueText) : NaN;
  let labels: unknown;
  try {
    labels = JSON.parse(map.get('labels')!);
  } catch {
    return `entry field "labels" is not JSON (${shown(map.get('labels'))})`;
  }
  return checkMetric({ name: map.get('name'), type: map.get('type'), value, timestamp: map.get('ts'), labels }, 'entry');
}
