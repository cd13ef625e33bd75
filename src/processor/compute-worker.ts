/**
 * Runs in a piscina worker thread: processes a chunk of encoded events and returns encoded results
 * (or null for a value it had to skip), in the same order. Only bytes cross the thread boundary.
 */
import { decodeEvent } from '../wire/event-codec.js';
import { encodeResult } from '../wire/result-codec.js';
import { PROCESSORS } from './registry.js';

export interface ComputeTask {
  values: Uint8Array[];
}

export function compute(values: readonly Uint8Array[]): (Buffer | null)[] {
  return values.map((v) => {
    let event;
    try {
      event = decodeEvent(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
    } catch {
      // Undecodable: the processor counts the null as skipped (stats.skipped).
      return null;
    }
    const processor = PROCESSORS.get(event.type);
    if (processor === undefined) return null;
    const out = processor.run(event);
    return encodeResult({ seq: event.seq, value: out.value, payload: out.payload, sentAtUs: event.sentAtUs, receivedAtUs: event.receivedAtUs, processedAtUs: Date.now() * 1000, type: event.type });
  });
}

export default function run(task: ComputeTask): (Buffer | null)[] {
  return compute(task.values);
}
