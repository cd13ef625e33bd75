/**
 * src/gateway/session.ts flush(): what a device gets per event-loop turn is one Downlink carrying
 * the cumulative ack and every result that came for it that turn (result grouping). Compared with
 * one Downlink per result, as a gateway that writes each result as it comes would send. Both
 * serialize with the service's own codec; per 64 results. (grpc-js adds a frame and a write per
 * message on top, not counted here, so the real gap is wider.)
 *
 *   node dist/bench/gateway/session-flush.js [--quick]
 */
import { codecs, type Result } from '../../src/gateway/protocol.js';
import { microBench } from '../micro-bench.js';

const results: Result[] = Array.from({ length: 64 }, (_, i) => ({ seq: 1000 + i, type: 'sq', value: i * i, payload: Buffer.alloc(16, i), sentAtUs: 1_790_000_000_000_000, processedAtUs: 1_790_000_000_001_000 }));
const acked = 1063;
if (codecs.Downlink.decodeRaw(codecs.Downlink.serialize({ ackedSeq: acked, results })).results!.length !== 64) throw new Error('the grouped Downlink does not round-trip');

await microBench('gateway/session-flush: 64 results to one device', [
  { name: 'one Downlink: ack + 64 results (flush)', fn: () => codecs.Downlink.serialize({ ackedSeq: acked, results }) },
  {
    name: 'one Downlink per result (64 messages)',
    fn: () => {
      for (const r of results) codecs.Downlink.serialize({ ackedSeq: r.seq, results: [r] });
    },
  },
]);
