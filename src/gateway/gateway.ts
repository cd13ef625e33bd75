/**
 * Gateway: devices <-> engine.
 *
 * Reads: gRPC streams and calls from devices (DeviceGateway), delivery frames on this instance's
 * Redis channel. Writes: the events topic (key = device id), presence and cursors in Redis,
 * Downlinks to devices.
 * Guarantee: an event is acknowledged (acked_seq, IngestSummary, BatchAck) only after Kafka's
 * delivery report says it is durable on every in-sync replica.
 */
import { hostname } from 'node:os';
import { Metadata, Server, status, type sendUnaryData, type ServerDuplexStream, type ServerReadableStream, type ServerUnaryCall } from '@grpc/grpc-js';
import { join } from 'node:path';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import { grpcServerCredentials, tlsFiles } from '../auth/tls.js';
import { PROJECT_ROOT, type Config } from '../config.js';
import { KafkaProducer } from '../kafka/producer.js';
import { metrics } from '../http/metrics.js';
import { PROCESSORS } from '../processor/registry.js';
import { topology } from '../topology.js';
import { encodeEvent } from '../wire/event-codec.js';
import type { FrameEntry } from '../wire/delivery-frame.js';
import { DeliveryLink } from './delivery.js';
import { processEvent } from './nimbus.js';
import { DeviceGatewayService, NimbusService, type BatchAck, type Downlink, type Event, type EventBatch, type EventRequest, type EventResponse, type IngestSummary, type Reject, type Uplink } from './protocol.js';
import { authenticatedDevice, authInterceptor } from './auth.js';
import { FlushScheduler } from './flush-scheduler.js';
import { RateLimiter } from './rate-limit.js';
import { GATEWAY_SERVICES, type GatewayService } from './services.js';
import { DeviceSession, type SessionHost } from './session.js';
import { OVERLOADED_MESSAGE, rateLimitedMessage, validateEvent } from './validate.js';

export const DEVICE_ID_KEY = 'x-device-id';
export const CURSOR_KEY = 'x-last-result-seq';
const DEVICE_ID_BYTES_MAX = 256;
const BATCH_EVENTS_MAX = 10_000;

/** What a delivery report settles: a Connect session's event, or a unary/client-stream call's. */
type Pending = { session: DeviceSession; seq: number; receivedAtUs: number } | Waiter;
interface Waiter {
  /** Reports still to come, plus one while the call may still add events. */
  pending: number;
  failed: Error | null;
  settle: () => void;
  /** Called after each report, for flow control. */
  progress?: () => void;
}

export function defaultInstanceId(config: Config): string {
  return config.instanceId !== '' ? config.instanceId : `${hostname()}-${process.pid}`;
}

export class Gateway implements SessionHost {
  readonly types: ReadonlySet<string> = new Set(PROCESSORS.keys());
  readonly sessions = new Map<string, DeviceSession>();
  private readonly flushes = new FlushScheduler();
  private server: Server | null = null;
  private readonly health: HealthImplementation;
  private readonly serviceNames: string[];
  private renewTimer: NodeJS.Timeout | null = null;
  private readonly eventsTopic: string;
  /** null: gateway.deviceRatePerS is 0 (no limit). */
  private readonly rates: RateLimiter | null;
  port = 0;

  private constructor(
    readonly config: Config,
    readonly instanceId: string,
    readonly link: DeliveryLink,
    private readonly producer: KafkaProducer,
    private readonly extraServices: readonly GatewayService[],
  ) {
    this.eventsTopic = topology(config).topics.events;
    const g = config.gateway;
    this.rates = g.deviceRatePerS === 0 ? null : new RateLimiter(g.deviceRatePerS, g.deviceBurstMax, g.devicesMax);
    this.serviceNames = ['', 'stratus.v1.DeviceGateway', 'nimbus.NimbusService', ...extraServices.flatMap((s) => s.names)];
    this.health = new HealthImplementation(Object.fromEntries(this.serviceNames.map((n) => [n, 'SERVING' as const])));
  }

  static async start(config: Config, instanceId = defaultInstanceId(config), port = config.grpc.port): Promise<Gateway> {
    let gateway: Gateway | null = null;
    const producer = await KafkaProducer.connect(config, `${instanceId}-gateway`, (err, opaque) => gateway!.onDelivery(err, opaque as Pending));
    const link = await DeliveryLink.connect(config, instanceId, {
      onEntries: (entries) => gateway!.onEntries(entries),
      onTakeover: (deviceId) => gateway!.sessions.get(deviceId)?.end({ code: status.ABORTED, details: `device ${deviceId} connected to another gateway instance; this stream is superseded` }),
    });
    const extra: GatewayService[] = [];
    for (const start of GATEWAY_SERVICES) extra.push(await start(config, instanceId));
    gateway = new Gateway(config, instanceId, link, producer, extra);
    await gateway.listen(port);
    gateway.renewTimer = setInterval(() => void link.renew(gateway!.sessions.keys()).catch(() => {}), Math.floor(config.gateway.presenceLeaseMs / 3));
    gateway.renewTimer.unref();
    return gateway;
  }

  private async listen(port: number): Promise<void> {
    const server = new Server({
      // Explicit limits (grpc-js defaults, read and kept): 4 MiB per message each way.
      'grpc.max_receive_message_length': 4 * 1024 * 1024,
      'grpc.max_send_message_length': 4 * 1024 * 1024,
      // Detect dead devices: ping an idle connection every grpc.keepaliveTimeMs (30 s), drop it if
      // no answer in grpc.keepaliveTimeoutMs (10 s).
      'grpc.keepalive_time_ms': this.config.grpc.keepaliveTimeMs,
      'grpc.keepalive_timeout_ms': this.config.grpc.keepaliveTimeoutMs,
      'grpc.keepalive_permit_without_calls': 1,
      // Device tokens (auth.tokenSecret): checked before any handler runs; see auth.ts.
      interceptors: this.config.auth.tokenSecret === '' ? [] : [authInterceptor(this.config.auth.tokenSecret)],
    });
    server.addService(DeviceGatewayService, {
      Connect: (call: ServerDuplexStream<Uplink, Downlink>) => this.connect(call),
      Ingest: (call: ServerReadableStream<Event, IngestSummary>, cb: sendUnaryData<IngestSummary>) => this.ingest(call, cb),
      IngestBatch: (call: ServerUnaryCall<EventBatch, BatchAck>, cb: sendUnaryData<BatchAck>) => void this.ingestBatch(call, cb),
    });
    server.addService(NimbusService, {
      ProcessEvent: (call: ServerDuplexStream<EventRequest, EventResponse>) => processEvent(this, call),
    });
    for (const s of this.extraServices) s.addTo(server);
    // grpc.health.v1 ('' and each service) and server reflection, so grpcurl, ghz and Postman
    // work without the .proto files.
    this.health.addToServer(server);
    const described = loadSync(['stratus/v1/gateway.proto', 'nimbus/nimbus.proto', ...this.extraServices.flatMap((s) => s.protoFiles), healthProtoPath], { includeDirs: [join(PROJECT_ROOT, 'proto')] });
    new ReflectionService(described).addToServer(server);
    this.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${this.config.grpc.host.includes(':') ? `[${this.config.grpc.host}]` : this.config.grpc.host}:${port}`, grpcServerCredentials(tlsFiles(this.config)), (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.server = server;
  }

  // --- SessionHost ---------------------------------------------------------------------------

  admit(deviceId: string): boolean {
    return this.rates === null || this.rates.take(deviceId);
  }

  produce(session: DeviceSession | Waiter, deviceId: string, event: Event, receivedAtUs: number): boolean {
    // Shed rather than queue: an event taken now would wait behind events already waiting too long
    // (an overload, or Kafka away), and its device would learn nothing for seconds.
    if (this.producer.oldestWaitMs() > this.config.gateway.ackWaitMaxMs) return false;
    const value = encodeEvent({ seq: event.seq, value: event.value ?? 0, sentAtUs: event.sentAtUs ?? 0, receivedAtUs, type: event.type, payload: event.payload ?? EMPTY });
    const opaque: Pending = session instanceof DeviceSession ? { session, seq: event.seq, receivedAtUs } : session;
    return this.producer.produce(this.eventsTopic, deviceId, value, opaque);
  }

  markDirty(session: DeviceSession): void {
    this.flushes.mark(session);
  }

  closed(session: DeviceSession): void {
    this.flushes.forget(session);
    // A newer session for the same device may already be registered: never deregister it.
    if (this.sessions.get(session.deviceId) === session) {
      this.sessions.delete(session.deviceId);
      metrics.devicesConnected.set(this.sessions.size);
      void this.link.release(session.deviceId, session.sentSeq).catch(() => {});
    }
  }

  // --- inputs ----------------------------------------------------------------------------------

  private onDelivery(err: Error | null, p: Pending): void {
    if ('session' in p) {
      if (err === null) metrics.stageSeconds.observe({ stage: 'ack' }, (Date.now() * 1000 - p.receivedAtUs) / 1e6);
      p.session.onDurable(p.seq, err);
    } else {
      if (err !== null) p.failed = err;
      if (--p.pending === 0) p.settle();
      else p.progress?.();
    }
  }

  private onEntries(entries: FrameEntry[]): void {
    for (const e of entries) this.sessions.get(e.deviceId)?.onLive(e.n, e.result);
  }

  private connect(call: ServerDuplexStream<Uplink, Downlink>): void {
    const authed = authenticatedDevice(call.metadata);
    const named = metadataString(call.metadata, DEVICE_ID_KEY);
    if (authed !== null && named !== null && named !== authed) {
      call.emit('error', { code: status.PERMISSION_DENIED, details: `metadata "${DEVICE_ID_KEY}" names another device than the token; a device can only connect as itself (leave "${DEVICE_ID_KEY}" out or send the token's device id)` });
      return;
    }
    const deviceId = authed ?? named;
    if (deviceId === null || deviceId === '' || Buffer.byteLength(deviceId) > DEVICE_ID_BYTES_MAX) {
      call.emit('error', { code: status.INVALID_ARGUMENT, details: `metadata "${DEVICE_ID_KEY}" must name the device (1..${DEVICE_ID_BYTES_MAX} bytes)` });
      return;
    }
    const cursorText = metadataString(call.metadata, CURSOR_KEY);
    const cursor = cursorText === null ? null : Number(cursorText);
    if (cursor !== null && !(Number.isSafeInteger(cursor) && cursor >= 0)) {
      call.emit('error', { code: status.INVALID_ARGUMENT, details: `metadata "${CURSOR_KEY}" must be a whole number from 0 to 2^53-1 (got "${cursorText!.slice(0, 32)}")` });
      return;
    }
    const session = new DeviceSession(this, deviceId, {
      write: (msg) => call.write(msg),
      pause: () => call.pause(),
      resume: () => call.resume(),
      end: (st) => (st === null ? call.end() : call.emit('error', st)),
    });
    call.on('data', (uplink: Uplink) => session.onUplink(uplink));
    call.on('end', () => session.onHalfClose());
    call.on('error', () => session.peerGone());
    call.on('cancelled', () => session.peerGone());
    call.on('drain', () => session.onDrain());
    this.register(session, cursor);
    // Response headers now, not with the first Downlink: the device learns at once that the
    // stream was accepted (and a load generator can count connected devices).
    call.sendMetadata(new Metadata());
  }

  /** Makes the session the device's one session here (ending an older one), then starts it. */
  register(session: DeviceSession, cursor: number | null = null): void {
    const previous = this.sessions.get(session.deviceId);
    if (previous === undefined && this.sessions.size >= this.config.gateway.devicesMax) {
      session.end({ code: status.RESOURCE_EXHAUSTED, details: `this gateway instance holds ${this.config.gateway.devicesMax} streams (gateway.devicesMax); connect to another instance or later` });
      return;
    }
    this.sessions.set(session.deviceId, session);
    metrics.devicesConnected.set(this.sessions.size);
    previous?.end({ code: status.ABORTED, details: `a newer stream for device ${session.deviceId} took over this one` });
    session.start(cursor).catch(() => session.end({ code: status.UNAVAILABLE, details: 'Redis did not answer while this stream was starting; reconnect' }));
  }

  /** Client stream: answers once every accepted event is durable. */
  private ingest(call: ServerReadableStream<Event, IngestSummary>, cb: sendUnaryData<IngestSummary>): void {
    const lastSeq = new Map<string, number>();
    let accepted = 0;
    let rejected = 0;
    let paused = false;
    const inflightMax = this.config.gateway.inflightMax;
    const waiter: Waiter = {
      pending: 1,
      failed: null,
      settle: () => {
        if (refused) return;
        if (waiter.failed !== null) cb({ code: status.UNAVAILABLE, details: `Kafka did not take every event (${waiter.failed.message}); send them again` });
        else cb(null, { accepted, rejected });
      },
      progress: () => {
        if (paused && waiter.pending <= inflightMax / 2) {
          paused = false;
          call.resume();
        }
      },
    };
    let refused = false;
    // Auth on: every event is the token's device (an event naming another is rejected).
    const authed = authenticatedDevice(call.metadata);
    call.on('data', (e: Event) => {
      if (refused) return;
      const deviceId = authed ?? e.deviceId;
      const reject = validateEvent(e, { streamDeviceId: authed, lastSeq: lastSeq.get(deviceId) ?? 0, payloadBytesMax: this.config.gateway.payloadBytesMax, types: this.types });
      if (reject !== null || !this.admit(deviceId) || !this.produce(waiter, deviceId, e, Date.now() * 1000)) {
        rejected++;
        return;
      }
      if (lastSeq.size >= this.config.gateway.devicesMax && !lastSeq.has(deviceId)) {
        refused = true;
        cb({ code: status.RESOURCE_EXHAUSTED, details: `one Ingest call may name at most ${this.config.gateway.devicesMax} devices (gateway.devicesMax); split the stream` });
        call.destroy();
        return;
      }
      lastSeq.set(deviceId, e.seq);
      accepted++;
      waiter.pending++;
      if (waiter.pending > inflightMax && !paused) {
        // Stop reading: HTTP/2 flow control holds the client until reports come back.
        paused = true;
        call.pause();
      }
    });
    call.on('end', () => {
      if (--waiter.pending === 0) waiter.settle();
    });
    call.on('error', () => {});
  }

  private async ingestBatch(call: ServerUnaryCall<EventBatch, BatchAck>, cb: sendUnaryData<BatchAck>): Promise<void> {
    const events = call.request.events ?? [];
    if (events.length > BATCH_EVENTS_MAX) {
      cb({ code: status.INVALID_ARGUMENT, details: `events has ${events.length} entries; at most ${BATCH_EVENTS_MAX} per IngestBatch` });
      return;
    }
    const rejects: Reject[] = [];
    const eventIds: string[] = [];
    const lastSeq = new Map<string, number>();
    const now = Date.now() * 1000;
    let settle!: () => void;
    const done = new Promise<void>((r) => (settle = r));
    const waiter: Waiter = { pending: 1, failed: null, settle: () => settle() };
    const authed = authenticatedDevice(call.metadata);
    for (const e of events) {
      const deviceId = authed ?? e.deviceId;
      const reject = validateEvent(e, { streamDeviceId: authed, lastSeq: lastSeq.get(deviceId) ?? 0, payloadBytesMax: this.config.gateway.payloadBytesMax, types: this.types });
      if (reject !== null) {
        rejects.push(reject);
        continue;
      }
      if (!this.admit(deviceId)) {
        rejects.push({ seq: e.seq, code: 'RATE_LIMITED', message: rateLimitedMessage(this.config.gateway.deviceRatePerS) });
        continue;
      }
      if (!this.produce(waiter, deviceId, e, now)) {
        rejects.push({ seq: e.seq, code: 'OVERLOADED', message: OVERLOADED_MESSAGE });
        continue;
      }
      waiter.pending++;
      lastSeq.set(deviceId, e.seq);
      eventIds.push(`${deviceId}/${e.seq}`);
    }
    if (--waiter.pending === 0) settle();
    await done;
    if (waiter.failed !== null) cb({ code: status.UNAVAILABLE, details: `Kafka did not take every event (${waiter.failed.message}); send the batch again` });
    else cb(null, { accepted: eventIds.length, rejects, eventIds });
  }

  /**
   * Graceful stop: no new calls; open streams get gateway.drainGraceMs to finish, then end with
   * UNAVAILABLE; the producer is flushed so every event already acknowledged stays durable.
   */
  async stop(): Promise<void> {
    if (this.renewTimer) clearInterval(this.renewTimer);
    for (const name of this.serviceNames) this.health.setStatus(name, 'NOT_SERVING');
    const server = this.server;
    if (server !== null) {
      await new Promise<void>((resolve) => {
        let last: NodeJS.Timeout | undefined;
        // Grace over: end the streams with a status (tryShutdown then completes once they are
        // finished); a call that still hangs a second later is cut.
        const grace = setTimeout(() => {
          for (const s of [...this.sessions.values()]) s.end({ code: status.UNAVAILABLE, details: 'gateway shutting down; reconnect (to another instance) and resend unacked events' });
          last = setTimeout(() => server.forceShutdown(), 1000);
        }, this.config.gateway.drainGraceMs);
        server.tryShutdown(() => {
          clearTimeout(grace);
          clearTimeout(last);
          resolve();
        });
      });
    }
    await this.producer.disconnect();
    for (const s of [...this.sessions.values()]) s.end({ code: status.UNAVAILABLE, details: 'gateway shutting down' });
    await this.link.close();
    for (const s of this.extraServices) await s.stop();
  }
}

const EMPTY = new Uint8Array(0);

function metadataString(md: Metadata, key: string): string | null {
  const v = md.get(key);
  if (v.length === 0) return null;
  return typeof v[0] === 'string' ? v[0] : v[0]!.toString('utf8');
}
