/**
 * What `stratus worker --handler NAME` does with each item of a list queue: a registry like the
 * processors'. A handler that throws fails the attempt (the item is retried, then dead-lettered
 * after queue.attemptsMax). Handlers must tolerate seeing an item twice (the queue is at least once).
 */
import type { RedisClient } from '../redis/client.js';

/** An item as event.EventService stores it: the timestamp is a decimal string, exact over int64. */
export interface QueueItem {
  event_id: string;
  type: string;
  timestamp: string;
}

export interface HandlerContext {
  readonly redis: RedisClient;
  /** Hash the `record` handler writes: event_id -> item. */
  readonly doneKey: string;
  /** How long the done hash is kept after its last write. */
  readonly doneTtlMs: number;
}

export type HandlerOutcome = 'done' | 'duplicate';

export interface QueueHandler {
  readonly name: string;
  readonly doc: string;
  run(item: string, ctx: HandlerContext): Promise<HandlerOutcome>;
}

/** The item is not what event.EventService writes: no retry will change that. */
export class PoisonItemError extends Error {}

export function parseItem(item: string): QueueItem {
  let v: unknown;
  try {
    v = JSON.parse(item);
  } catch {
    throw new PoisonItemError(`not JSON: ${JSON.stringify(item.slice(0, 64))}`);
  }
  const o = v as Partial<QueueItem> | null;
  if (o === null || typeof o !== 'object' || typeof o.event_id !== 'string' || o.event_id === '' || typeof o.type !== 'string' || typeof o.timestamp !== 'string' || !/^-?\d{1,19}$/.test(o.timestamp)) {
    throw new PoisonItemError(`not an event item: ${JSON.stringify(item.slice(0, 64))}`);
  }
  return o as QueueItem;
}

export const HANDLERS: ReadonlyMap<string, QueueHandler> = new Map(
  [
    {
      name: 'record',
      doc: 'stores the item in the queue\'s done hash under its event_id (HSETNX: a second delivery of the same event is counted as a duplicate, not stored twice).',
      async run(item: string, ctx: HandlerContext): Promise<HandlerOutcome> {
        const e = parseItem(item);
        const res = await ctx.redis.pipeline().hsetnx(ctx.doneKey, e.event_id, item).pexpire(ctx.doneKey, ctx.doneTtlMs).exec();
        if (res === null || res[0]![0] !== null) throw res?.[0]?.[0] ?? new Error('Redis did not answer');
        return res[0]![1] === 1 ? 'done' : 'duplicate';
      },
    },
    {
      name: 'fail',
      doc: 'fails every item (drills: watch items go to the dead-letter list after queue.attemptsMax).',
      async run(): Promise<HandlerOutcome> {
        throw new Error('the fail handler fails every item');
      },
    },
  ].map((h) => [h.name, h] as const),
);
