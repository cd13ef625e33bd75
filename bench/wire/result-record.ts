/**
 * src/wire/result-record.ts: the results topic's value (stratus.v1.kafka.ResultRecord). The
 * forwarder reads only each result's device and seq and passes the result's bytes on as a view
 * (splitResultRecord); compared with decoding every result whole, with protobufjs, and with JSON.
 *
 *   node dist/bench/wire/result-record.js [--quick]
 */
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { PROJECT_ROOT } from '../../src/config.js';
import { decodeResult, encodeResult, encodeResultRecord, splitResultRecord, type DeviceResult } from '../../src/wire/result-record.js';
import { microBench } from '../micro-bench.js';

const N = 50;
const results: DeviceResult[] = Array.from({ length: N }, (_, i) => ({ deviceId: `device-${100_000 + i}`, seq: 99_001 + i, type: 'sq', value: 1764, payload: Buffer.alloc(32, 1), sentAtUs: 1_790_000_000_000_000, receivedAtUs: 1_790_000_000_000_900, processedAtUs: 1_790_000_000_004_000 }));
const root = await protobuf.load(join(PROJECT_ROOT, 'proto', 'stratus', 'v1', 'kafka.proto'));
const ResultRecord = root.lookupType('stratus.v1.kafka.ResultRecord');
const rec = encodeResultRecord(results.map(encodeResult));
const json = Buffer.from(JSON.stringify(results.map((r) => ({ ...r, payload: Buffer.from(r.payload).toString('base64') }))));

await microBench(`wire/result-record: the forwarder's read of a record of ${N}`, [
  { name: 'splitResultRecord (device, seq, a view of each result)', fn: () => splitResultRecord(rec, null) },
  { name: 'split, then decodeResult of each', fn: () => splitResultRecord(rec, null).map((s) => decodeResult(s.bytes)) },
  { name: 'protobufjs ResultRecord.decode', fn: () => ResultRecord.decode(rec) },
  { name: 'JSON.parse', fn: () => JSON.parse(json.toString()) as unknown },
]);
await microBench(`wire/result-record: encode ${N} results into a record`, [
  { name: 'encodeResult each, then encodeResultRecord', fn: () => encodeResultRecord(results.map(encodeResult)) },
  { name: 'protobufjs ResultRecord.encode', fn: () => ResultRecord.encode({ results }).finish() },
]);
