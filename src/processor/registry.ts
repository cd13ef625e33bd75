/**
 * The processors: what an event's `type` turns into. Each is a pure function of the event.
 * The gateway rejects types not named here (UNKNOWN_TYPE), so the processor never sees them.
 */
import { createHash } from 'node:crypto';
import type { AcceptedEvent as WireEvent } from '../wire/event-record.js';

export interface ProcessorOutput {
  value: number;
  payload: Uint8Array;
}

export interface Processor {
  readonly name: string;
  readonly doc: string;
  run(event: WireEvent): ProcessorOutput;
}

export const SHA_ROUNDS_MAX = 100_000;

export const PROCESSORS: ReadonlyMap<string, Processor> = new Map(
  [
    {
      name: 'sq',
      doc: 'value squared, as a double (exact while the square is below 2^53; never wraps around); payload returned unchanged.',
      run: (e: WireEvent) => ({ value: e.value * e.value, payload: e.payload }),
    },
    {
      name: 'echo',
      doc: 'value and payload returned unchanged.',
      run: (e: WireEvent) => ({ value: e.value, payload: e.payload }),
    },
    {
      name: 'sha256',
      doc: `CPU-heavy: SHA-256 applied to the payload value rounds (1..${SHA_ROUNDS_MAX}); result payload is the digest, value the rounds done.`,
      run: (e: WireEvent) => {
        const rounds = Math.min(SHA_ROUNDS_MAX, Math.max(1, Math.trunc(e.value)));
        let digest: Uint8Array = e.payload;
        for (let i = 0; i < rounds; i++) digest = createHash('sha256').update(digest).digest();
        return { value: rounds, payload: digest };
      },
    },
  ].map((p) => [p.name, p] as const),
);
