/**
 * event.EventService/StreamEvents (proto/event/event.proto), seed-compatible: a client stream of
 * events into a Redis list queue, consumed by `stratus worker`.
 *
 * Reads: a client stream of Event; metadata `x-queue` names the queue (default queue.name).
 * Writes: one JSON item per event, in arrival order, in flushes of up to queue.flushEventsMax
 * events (a flush is one script call: one variadic LPUSH; list-queue.ts), one flush in flight per
 * call so the call's events stay in order. A flush starts when flushEventsMax events are buffered,
 * FLUSH_DELAY_MS after the first buffered event, or at the end of the stream; while a flush is in
 * flight and the next one is full, the call stops reading (HTTP/2 flow control holds the client).
 *
 * Guarantee: the StreamSummary is sent once every event of the call is in Redis. What a call stored
 * is always a prefix of what it sent, and `events_received` (or the trailer `x-events-received`
 * when the call ends with an error) says how long:
 *   - a Redis error: summary { success: false, events_received: stored so far }; the failed flush
 *     wrote nothing, unless the connection dropped after Redis ran it (then a resend duplicates it).
 *   - the queue full (queue.lengthMax): the events that fit are stored, the call ends with
 *     RESOURCE_EXHAUSTED, and its details say how many of the call's events were stored.
 *   - a bad event (or a bad x-queue): INVALID_ARGUMENT naming the field and the event's index; the
 *     events before it are stored, it and the ones after it are not.
 *
 * The item keeps the int64 timestamp exact as a decimal string: proto-loader's own protobufjs (not
 * src/gateway/protocol.ts, which has Long disabled) decodes it with `longs: String`.
 *   {"event_id":"e-1","type":"click","timestamp":"9007199254740993"}
 */
import { Metadata, status, type sendUnaryData, type Server, type ServerReadableStream, type ServiceDefinition } from '@grpc/grpc-js';
import type { Config } from '../config.js';
import { ErrorCode } from '../errors.js';
import { grpcError, statusName } from '../gateway/grpc-status.js';
import type { GatewayService } from '../gateway/services.js';
import { metrics } from '../http/metrics.js';
import { connectRedis, createRedis, disconnectRedis, redisUnavailable } from '../redis/client.js';
import { RateBudget } from '../rate-budget.js';
import { ListQueue, queueNameProblem } from './list-queue.js';
import { loadSeedService } from '../gateway/seed-service.js';

export const EVENT_SERVICE_NAME = 'event.EventService';
export const EVENT_PROTO_FILE = 'event/event.proto';
export const QUEUE_METADATA_KEY = 'x-queue';
export const EVENTS_RECEIVED_TRAILER = 'x-events-received';
export const EVENT_ID_BYTES_MAX = 256;
export const TYPE_BYTES_MAX = 128;
/** A partly filled flush waits at most this long for more events (latency vs. fewer, larger pushes). */
const FLUSH_DELAY_MS = 2;

/** An Event as proto-loader hands it over (keepCase, longs: String, defaults: true). */
export interface EventMessage {
  event_id: string;
  type: string;
  timestamp: string;
}

export interface StreamSummary {
  success: boolean;
  events_received: number;
}

/** The service definition, decoded as described above (also what tests' and the bench's servers add). */
export function eventServiceDefinition(): ServiceDefinition {
  return loadSeedService(EVENT_PROTO_FILE, 'event.EventService');
}

/** What is wrong with an event, naming the field, or null. */
export function eventProblem(e: EventMessage): string | null {
  const idBytes = Buffer.byteLength(e.event_id, 'utf8');
  if (idBytes === 0 || idBytes > EVENT_ID_BYTES_MAX) return `event_id must be 1..${EVENT_ID_BYTES_MAX} bytes (got ${idBytes})`;
  const typeBytes = Buffer.byteLength(e.type, 'utf8');
  if (typeBytes === 0 || typeBytes > TYPE_BYTES_MAX) return `type must be 1..${TYPE_BYTES_MAX} bytes (got ${typeBytes})`;
  return null;
}

/** The list item of an event: JSON, keys in this order, timestamp as its exact decimal string. */
export function encodeItem(e: EventMessage): string {
  return JSON.stringify({ event_id: e.event_id, type: e.type, timestamp: String(e.timestamp) });
}

/** How long a queue found full refuses new calls before one is read again to look. */
const FULL_RECHECK_MS = 1000;

export async function startEventService(config: Config, instanceId: string): Promise<GatewayService> {
  // No offline queue: while Redis is unreachable a flush fails at once and the call's summary says
  // so (success: false), instead of commands piling up in ioredis's unbounded queue.
  const redis = createRedis(config, `${instanceId}-queue`, { offlineQueue: false });
  try {
    await connectRedis(redis);
  } catch (err) {
    disconnectRedis(redis);
    throw redisUnavailable(config, 'refused the event service connection', err);
  }
  const service = eventServiceDefinition();
  const flushMax = config.queue.flushEventsMax;
  // Events per second all calls together (queue.eventsPerSecondMax): beyond it calls are not read.
  const budget = new RateBudget(config.queue.eventsPerSecondMax);
  /** One ListQueue per name in use (the scripts are defined once on the client). */
  const queues = new Map<string, ListQueue>();
  /** Queue name -> until when new calls to it are refused: it was found full (bounded like queues). */
  const fullUntil = new Map<string, number>();

  function streamEvents(call: ServerReadableStream<EventMessage, StreamSummary>, cb: sendUnaryData<StreamSummary>): void {
    const md = call.metadata.get(QUEUE_METADATA_KEY);
    const name = md.length === 0 ? config.queue.name : String(md[0]);
    const problem = queueNameProblem(name);
    if (problem !== null) {
      const st = grpcError(ErrorCode.METADATA_INVALID, `metadata ${QUEUE_METADATA_KEY} ${problem}`);
      metrics.queueCallsRefused.inc({ status: statusName(st.code) });
      cb(st);
      call.destroy();
      return;
    }
    if ((fullUntil.get(name) ?? 0) > Date.now()) {
      // Found full within the last FULL_RECHECK_MS: refused before a message is read, instead of
      // reading and decoding a flush's worth only to refuse it then.
      const st = grpcError(ErrorCode.QUEUE_FULL, `queue ${name} is full (queue.lengthMax ${config.queue.lengthMax}); none of this call's events were stored; send them again later`);
      metrics.queueCallsRefused.inc({ status: statusName(st.code) });
      const m = new Metadata();
      m.set(EVENTS_RECEIVED_TRAILER, '0');
      cb({ ...st, metadata: m });
      call.destroy();
      return;
    }
    let queue = queues.get(name);
    if (queue === undefined) {
      // Bounded by the names that pass queueNameProblem; one small object each. Cleared at 1000.
      if (queues.size >= 1000) {
        queues.clear();
        fullUntil.clear();
      }
      queue = new ListQueue(redis, config, name);
      queues.set(name, queue);
    }
    const q = queue;
    /** Items received and not yet handed to a flush. Invariant: length <= 2 * flushMax. */
    let buffer: string[] = [];
    /** Events of this call received so far (the index of the next one). */
    let index = 0;
    /** Events of this call stored in Redis. */
    let stored = 0;
    let ended = false;
    /** A bad event: what the call ends with once the events before it are flushed. */
    let refusal: string | null = null;
    /** Invariant: true once cb was called; nothing is read or written after that. */
    let finished = false;
    let flushing = false;
    /** A full flush is in flight and the next one is full too. */
    let paused = false;
    /** The instance's events-per-second budget (queue.eventsPerSecondMax) is spent. */
    let throttled = false;
    /** Invariant: the call is read (resumed) iff reading. */
    let reading = true;
    let timer: NodeJS.Timeout | null = null;
    /** Reads the call exactly when nothing holds it: a flush, the budget, a refusal, the end. */
    const sync = () => {
      const want = !finished && refusal === null && !paused && !throttled;
      if (want === reading) return;
      reading = want;
      if (want) call.resume();
      else call.pause();
    };

    const trailer = () => {
      const m = new Metadata();
      m.set(EVENTS_RECEIVED_TRAILER, String(stored));
      return m;
    };
    const finish = (err: { code: status; details: string } | null, success = true) => {
      if (finished) return;
      finished = true;
      if (timer !== null) clearTimeout(timer);
      buffer = [];
      if (err === null) {
        cb(null, { success, events_received: stored }, trailer());
      } else {
        metrics.queueCallsRefused.inc({ status: status[err.code] });
        cb({ ...err, metadata: trailer() });
      }
      // Whatever the client still sends is not read.
      if (!ended) call.destroy();
    };

    const flush = async () => {
      if (flushing || finished) return;
      flushing = true;
      if (timer !== null) clearTimeout(timer);
      timer = null;
      try {
        while (!finished && buffer.length > 0) {
          const items = buffer.length <= flushMax ? buffer : buffer.slice(0, flushMax);
          buffer = buffer.length <= flushMax ? [] : buffer.slice(flushMax);
          if (paused) {
            paused = false;
            sync();
          }
          let n: number;
          try {
            n = await q.push(items);
          } catch {
            // Redis did not take them: the caller is told (success false) and sends them again.
            finish(null, false);
            return;
          }
          stored += n;
          metrics.queueEventsPushed.inc(n);
          metrics.redisPipelineDepth.observe({ path: 'queue' }, items.length);
          if (n < items.length) {
            fullUntil.set(name, Date.now() + FULL_RECHECK_MS);
            finish(grpcError(ErrorCode.QUEUE_FULL, `queue ${name} is full (queue.lengthMax ${config.queue.lengthMax}); ${stored} events of this call were stored, the ones after them were not; send those again later`));
            return;
          }
        }
      } finally {
        flushing = false;
      }
      if (finished) return;
      if (refusal !== null) finish(grpcError(ErrorCode.REQUEST_INVALID, refusal));
      else if (ended) finish(null);
    };
    const schedule = () => {
      if (timer === null && !flushing) timer = setTimeout(() => void flush(), FLUSH_DELAY_MS);
    };

    call.on('data', (e: EventMessage) => {
      if (finished || refusal !== null) return;
      const p = eventProblem(e);
      if (p !== null) {
        // The events before it are stored (the buffer is flushed first), so events_received in the
        // trailer is exactly its index, and the client knows where to resume.
        refusal = `event ${index}: ${p}; the ${index} events before it were stored, it and the ones after it were not`;
        sync();
        void flush();
        return;
      }
      index++;
      buffer.push(encodeItem(e));
      budget.take(1);
      if (!throttled && !budget.available) {
        throttled = true;
        sync();
        void budget.whenAvailable().then(() => {
          throttled = false;
          sync();
        });
      }
      if (buffer.length >= flushMax) {
        void flush();
        // A full flush is in flight and the next one is full too: stop reading until it is done.
        if (buffer.length >= flushMax && flushing && !paused) {
          paused = true;
          sync();
        }
      } else {
        schedule();
      }
    });
    call.on('end', () => {
      ended = true;
      void flush();
    });
    call.on('cancelled', () => {
      finished = true;
      if (timer !== null) clearTimeout(timer);
      buffer = [];
    });
    // The client went away (handled by 'cancelled' above): nothing it sent is acknowledged, so
    // nothing is lost that it does not send again.
    call.on('error', () => {});
  }

  return {
    names: [EVENT_SERVICE_NAME],
    protoFiles: [EVENT_PROTO_FILE],
    addTo(server: Server) {
      server.addService(service, { StreamEvents: streamEvents });
    },
    async stop() {
      disconnectRedis(redis);
    },
  };
}
