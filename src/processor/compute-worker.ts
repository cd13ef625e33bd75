/**
 * Runs in a piscina worker thread (or inline): turns event records (stratus.v1.kafka.EventRecord,
 * or the earlier one-event layout) into encoded results (DeviceResult), in order. Only bytes and
 * device ids cross the thread boundary.
 */
import { decodeEventRecord, type AcceptedEvent } from '../wire/event-record.js';
import { encodeResult } from '../wire/result-record.js';
import { PROCESSORS } from './registry.js';

export interface ComputeInput {
  value: Uint8Array;
  key: Uint8Array | null;
}

export interface ComputedResult {
  deviceId: string;
  /** One DeviceResult message. */
  bytes: Uint8Array;
}

export interface ComputeOutput {
  results: ComputedResult[];
  /** Records that could not be decoded, and events whose type no processor has: skipped. */
  skipped: number;
}

const asBuffer = (v: Uint8Array) => (Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength));

export function compute(records: readonly ComputeInput[]): ComputeOutput {
  const results: ComputedResult[] = [];
  let skipped = 0;
  const processedAtUs = Date.now() * 1000;
  for (const rec of records) {
    let events: AcceptedEvent[];
    try {
      events = decodeEventRecord(asBuffer(rec.value), rec.key === null ? null : asBuffer(rec.key));
    } catch {
      // Undecodable: the processor counts it as skipped (stats.skipped).
      skipped++;
      continue;
    }
    for (const event of events) {
      const processor = PROCESSORS.get(event.type);
      if (processor === undefined || event.deviceId === '') {
        skipped++;
        continue;
      }
      const out = processor.run(event);
      results.push({
        deviceId: event.deviceId,
        bytes: encodeResult({ deviceId: event.deviceId, seq: event.seq, type: event.type, value: out.value, payload: out.payload, sentAtUs: event.sentAtUs, receivedAtUs: event.receivedAtUs, processedAtUs }),
      });
    }
  }
  return { results, skipped };
}

export default function run(task: { records: ComputeInput[] }): ComputeOutput {
  return compute(task.records);
}
