/**
 * src/wire/delivery-frame.ts: what a gateway decodes for every PUBLISH the forwarder sends it
 * (many devices' results back to back). Compared with the same entries as one JSON array.
 *
 *   node dist/bench/wire/delivery-frame.js [--quick]
 */
import { decodeFrame } from '../../src/wire/delivery-frame.js';
import { encodeResult } from '../../src/wire/result-record.js';
import { microBench } from '../micro-bench.js';

// A frame of 64 entries, as the forwarder packs them (deliver-script.ts: struct.pack '<s2 d s4').
const entries = Array.from({ length: 64 }, (_, i) => ({
  deviceId: `device-${i}`,
  n: 1000 + i,
  result: encodeResult({ deviceId: `device-${i}`, seq: i + 1, type: 'sq', value: i * i, payload: Buffer.alloc(16), sentAtUs: 1, receivedAtUs: 2, processedAtUs: 3 }),
}));
const frame = Buffer.concat(
  entries.flatMap((e) => {
    const id = Buffer.from(e.deviceId);
    const head = Buffer.alloc(2 + id.length + 8 + 4);
    head.writeUInt16LE(id.length, 0);
    id.copy(head, 2);
    head.writeDoubleLE(e.n, 2 + id.length);
    head.writeUInt32LE(e.result.length, 10 + id.length);
    return [head, e.result];
  }),
);
const json = Buffer.from(JSON.stringify(entries.map((e) => ({ d: e.deviceId, n: e.n, r: e.result.toString('base64') }))));
if (decodeFrame(frame).length !== 64) throw new Error('the frame built here does not decode to 64 entries');

await microBench('wire/delivery-frame: decode a 64-entry frame', [
  { name: 'decodeFrame (length-prefixed, results as views)', fn: () => decodeFrame(frame) },
  { name: 'JSON.parse + base64 results', fn: () => JSON.parse(json.toString()).map((e: { d: string; n: number; r: string }) => ({ deviceId: e.d, n: e.n, result: Buffer.from(e.r, 'base64') })) },
]);
