/**
 * The Kafka producer of the gateway threads (`run --shard threads`), across the thread boundary.
 *
 * Why not one producer per thread: the native client (@confluentinc/kafka-javascript) registers
 * with NODE_MODULE (src/binding.cc), not as a context-aware addon, so Node refuses to load it in a
 * worker thread ("Module did not self-register"). So the main thread owns one real producer and
 * every gateway thread gets a PortProducer, an EngineProducer that forwards over its own
 * MessagePort:
 *
 *   thread                                   main thread
 *   produce() -> pending[id] = opaque        ProducerHost: producer.produce(..., {port, id})
 *             -> out batch, posted per turn  ->
 *                                            delivery report (err, {port, id})
 *   onDelivery(err, pending[id])          <- reports batched per turn
 *
 * Guarantee: the same as the real producer's: each message produced gets exactly one delivery
 * report; an acknowledgement to a device still waits for Kafka's. Limit: a thread refuses
 * (produce() false, the gateway sheds with OVERLOADED) past kafka.producerQueueMax / threads
 * messages without a report, so the threads together stay within the real producer's queue.
 */
import type { MessagePort } from 'node:worker_threads';
import type { Config } from '../../config.js';
import { ErrorCode, StratusError } from '../../errors.js';
import type { DeliveryHandler, EngineProducer, KafkaClients } from '../../kafka/types.js';

interface Produce { id: number; topic: string; partition: number | null; key: string | null; value: Uint8Array; events: number }
interface Report { id: number; err: { message: string; code?: string; retryable?: boolean } | null }
type ToHost =
  | { type: 'produce'; batch: Produce[] }
  | { type: 'partitions'; req: number; topic: string; timeoutMs: number }
  | { type: 'flush'; req: number; timeoutMs: number };
type ToThread =
  | { type: 'reports'; batch: Report[] }
  | { type: 'answer'; req: number; value?: number; err?: { message: string; code?: string; retryable?: boolean } };

function errorOf(e: { message: string; code?: string; retryable?: boolean }): Error {
  return e.code?.startsWith('STRATUS_') === true ? new StratusError(e.code as ErrorCode, e.message, { retryable: e.retryable ?? false }) : Object.assign(new Error(e.message), e.code === undefined ? {} : { code: e.code });
}
function plain(err: unknown): { message: string; code?: string; retryable?: boolean } {
  const e = err as { message?: string; code?: unknown; retryable?: boolean };
  return { message: e?.message ?? String(err), ...(typeof e?.code === 'string' ? { code: e.code } : {}), ...(typeof e?.retryable === 'boolean' ? { retryable: e.retryable } : {}) };
}

/**
 * In the main thread: serves every gateway thread's port with one real producer. Returns the
 * producer (run-command's stop disconnects it after the threads stopped).
 */
export async function hostProducer(config: Config, clients: KafkaClients, clientId: string, ports: readonly MessagePort[]): Promise<EngineProducer> {
  /** Reports waiting for the next turn, per port. */
  const out = new Map<MessagePort, Report[]>();
  let scheduled = false;
  const send = () => {
    scheduled = false;
    for (const [port, batch] of out) port.postMessage({ type: 'reports', batch } satisfies ToThread);
    out.clear();
  };
  const producer = await clients.producer(config, clientId, (err, opaque) => {
    const { port, id } = opaque as { port: MessagePort; id: number };
    let batch = out.get(port);
    if (batch === undefined) out.set(port, (batch = []));
    batch.push({ id, err: err === null ? null : plain(err) });
    if (!scheduled) {
      scheduled = true;
      setImmediate(send);
    }
  }, (opaque) => (opaque as { events: number }).events);
  for (const port of ports) {
    port.on('message', (m: ToHost) => {
      switch (m.type) {
        case 'produce':
          for (const p of m.batch) {
            const opaque = { port, id: p.id, events: p.events };
            // The thread's share of producerQueueMax keeps this from refusing; if it does (a race
            // at the edge), the message gets its one report now, as a retryable refusal.
            if (!producer.produce(p.topic, p.partition, p.key, Buffer.from(p.value.buffer, p.value.byteOffset, p.value.byteLength), opaque)) {
              let batch = out.get(port);
              if (batch === undefined) out.set(port, (batch = []));
              batch.push({ id: p.id, err: { message: 'the gateway threads\' shared Kafka producer queue is full (kafka.producerQueueMax)', code: ErrorCode.KAFKA_UNAVAILABLE, retryable: true } });
              if (!scheduled) {
                scheduled = true;
                setImmediate(send);
              }
            }
          }
          break;
        case 'partitions':
          producer.partitionsOf(m.topic, m.timeoutMs).then(
            (value) => port.postMessage({ type: 'answer', req: m.req, value } satisfies ToThread),
            (err: unknown) => port.postMessage({ type: 'answer', req: m.req, err: plain(err) } satisfies ToThread),
          );
          break;
        case 'flush':
          producer.flush(m.timeoutMs).then(
            () => port.postMessage({ type: 'answer', req: m.req } satisfies ToThread),
            (err: unknown) => port.postMessage({ type: 'answer', req: m.req, err: plain(err) } satisfies ToThread),
          );
          break;
      }
    });
  }
  return producer;
}

/** In a gateway thread: an EngineProducer that forwards to the main thread's (hostProducer). */
export class PortProducer implements EngineProducer {
  readonly kind;
  /** Invariant: holds exactly the messages produced whose report has not come back, oldest first. */
  private readonly pending = new Map<number, { opaque: unknown; atMs: number }>();
  private nextId = 1;
  private nextReq = 1;
  private readonly requests = new Map<number, { resolve: (v: number | undefined) => void; reject: (e: Error) => void }>();
  private batch: Produce[] = [];

  constructor(
    private readonly port: MessagePort,
    kind: KafkaClients['kind'],
    private readonly queueMax: number,
    private readonly onDelivery: DeliveryHandler,
    private readonly eventsOf: (opaque: unknown) => number,
  ) {
    this.kind = kind;
    port.on('message', (m: ToThread) => {
      if (m.type === 'reports') {
        for (const r of m.batch) {
          const p = this.pending.get(r.id);
          // assert-worthy, but a report for an unknown id cannot be acted on: the host sends one per id.
          if (p === undefined) continue;
          this.pending.delete(r.id);
          this.onDelivery(r.err === null ? null : errorOf(r.err), p.opaque);
        }
      } else {
        const req = this.requests.get(m.req);
        if (req === undefined) return;
        this.requests.delete(m.req);
        if (m.err !== undefined) req.reject(errorOf(m.err));
        else req.resolve(m.value);
      }
    });
  }

  get inflight(): number {
    return this.pending.size;
  }

  oldestWaitMs(now: number = performance.now()): number {
    for (const p of this.pending.values()) return now - p.atMs;
    return 0;
  }

  produce(topic: string, partition: number | null, key: string | null, value: Buffer, opaque: unknown): boolean {
    if (this.pending.size >= this.queueMax) return false;
    const id = this.nextId++;
    this.pending.set(id, { opaque, atMs: performance.now() });
    if (this.batch.length === 0) setImmediate(() => this.post());
    this.batch.push({ id, topic, partition, key, value, events: this.eventsOf(opaque) });
    return true;
  }

  private post(): void {
    const batch = this.batch;
    this.batch = [];
    if (batch.length > 0) this.port.postMessage({ type: 'produce', batch } satisfies ToHost);
  }

  private ask(m: { type: 'partitions'; topic: string; timeoutMs: number } | { type: 'flush'; timeoutMs: number }): Promise<number | undefined> {
    const req = this.nextReq++;
    return new Promise((resolve, reject) => {
      this.requests.set(req, { resolve, reject });
      this.port.postMessage({ ...m, req } satisfies ToHost);
    });
  }

  async partitionsOf(topic: string, timeoutMs = 5000): Promise<number> {
    return (await this.ask({ type: 'partitions', topic, timeoutMs }))!;
  }

  /** Every message posted, then the host's flush: resolves once each has its report here too. */
  async flush(timeoutMs: number): Promise<void> {
    this.post();
    const deadline = Date.now() + timeoutMs;
    await this.ask({ type: 'flush', timeoutMs });
    while (this.pending.size > 0) {
      if (Date.now() > deadline) throw new StratusError(ErrorCode.KAFKA_UNAVAILABLE, `${this.pending.size} messages without a delivery report after ${timeoutMs} ms`, { retryable: true });
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Flushes; the real producer is the main thread's, disconnected there once every thread stopped. */
  async disconnect(timeoutMs = 30_000): Promise<void> {
    await this.flush(timeoutMs).catch(() => {
      // Not lost silently: the messages still pending had no report, so their devices were not
      // acknowledged; the host's own disconnect logs what it waited for.
    });
    // Nothing more comes on it: let go of it, or it would keep the thread alive.
    this.port.close();
  }
}

/** The thread's KafkaClients: the kind of the host's, with producer() returning a PortProducer on `port`. */
export function portClients(port: MessagePort, kind: KafkaClients['kind'], queueMax: number): Pick<KafkaClients, 'producer'> {
  return {
    producer: async (_config, _clientId, onDelivery, eventsOf) => new PortProducer(port, kind, queueMax, onDelivery, eventsOf ?? (() => 1)),
  };
}
