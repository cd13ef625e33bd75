/**
 * src/wire/result-codec.ts: the results topic's value. The forwarder reads only a result's seq to
 * dedupe (resultSeq), never the whole thing; compared here with a full decode, and the full
 * encode/decode with JSON.
 *
 *   node dist/bench/wire/result-codec.js [--quick]
 */
import { decodeResult, encodeResult, resultSeq, type WireResult } from '../../src/wire/result-codec.js';
import { microBench } from '../micro-bench.js';

const r0: WireResult = { seq: 99_001, type: 'sq', value: 1764, payload: Buffer.alloc(32, 1), sentAtUs: 1_790_000_000_000_000, receivedAtUs: 1_790_000_000_000_900, processedAtUs: 1_790_000_000_004_000 };
const buf = encodeResult(r0);
const json = Buffer.from(JSON.stringify({ ...r0, payload: Buffer.from(r0.payload).toString('base64') }));

await microBench('wire/result-codec: the forwarder\'s dedupe read', [
  { name: 'resultSeq (one f64 at a fixed offset)', fn: () => resultSeq(buf) },
  { name: 'decodeResult then .seq', fn: () => decodeResult(buf).seq },
  { name: 'JSON.parse then .seq', fn: () => JSON.parse(json.toString()).seq },
]);
await microBench('wire/result-codec: encode', [
  { name: 'encodeResult (fixed binary layout)', fn: () => encodeResult(r0) },
  { name: 'JSON.stringify + base64 payload', fn: () => Buffer.from(JSON.stringify({ ...r0, payload: Buffer.from(r0.payload).toString('base64') })) },
]);
