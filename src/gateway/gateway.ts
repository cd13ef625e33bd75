/**
 * Gateway: devices <-> engine.
 *
 * Reads: gRPC streams and calls from devices (DeviceGateway), delivery frames on this instance's
 * Redis channel. Writes: the events topic (one record per partition per turn of the event loop,
 * record-batcher.ts; a device's partition from partitioner.ts), presence and cursors in Redis,
 * Downlinks to devices.
 * Guarantee: an event is acknowledged (acked_seq, IngestSummary, BatchAck) only after it was taken
 * into its device's one order (admission.ts) and Kafka's delivery report says it is durable on every
 * in-sync replica, while this instance held the device's admission lease (README "Delivery contract").
 */
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { Metadata, Server, type sendUnaryData, type ServerDuplexStream, type ServerReadableStream, type ServerUnaryCall } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { grpcServerCredentials, tlsFiles } from '../auth/tls.js';
import type { Config } from '../config.js';
import { ErrorCode } from '../errors.js';
import { kafkaClients } from '../kafka/factory.js';
import type { EngineProducer, KafkaClients } from '../kafka/types.js';
import { inflightBytesSources, metrics } from '../http/metrics.js';
import { PROCESSORS } from '../processor/registry.js';
import { topology } from '../topology.js';
import type { FrameEntry } from '../wire/delivery-frame.js';
import { refuseEvictingPolicy } from '../redis/eviction-policy.js';
import { MemoryBudget } from '../memory-budget.js';
import { boundAddress } from '../net/port-owner.js';
import { drainTally, errorText, RateLimitedLog, roleLog } from '../log.js';
import { Admission } from './admission.js';
import { CallLimits, callGroups } from './call-limits.js';
import { ConnectionGuard } from './connection-guard.js';
import { DeliveryLink } from './delivery.js';
import { processEvent } from './nimbus.js';
import { DeviceGatewayService, NimbusService, type BatchAck, type Downlink, type Event, type EventBatch, type EventRequest, type EventResponse, type IngestSummary, type Reject, type Uplink } from './protocol.js';
import { authenticatedDevice, authInterceptor, guardAuthorizationHeaders } from './auth.js';
import { FlushScheduler } from './flush-scheduler.js';
import { RecordBatcher } from './record-batcher.js';
import { grpcHttp2Servers } from './http2-servers.js';
import { listenReusePort, type ReusePortAcceptor } from './threads/reuse-port-acceptor.js';
import { grpcError } from './grpc-status.js';
import { RateLimiter } from './rate-limit.js';
import { HEALTH_PROTO, projectProto, reflectionService } from './reflection.js';
import { GATEWAY_SERVICES, type GatewayService } from './services.js';
import { DeviceSession, type SessionHost } from './session.js';
import { UplinkSession, type EventSink, type UplinkHost } from './uplink-session.js';
import { OVERLOADED_MESSAGE, rateLimitedMessage, RejectCode, validateEvent } from './validate.js';

export const DEVICE_ID_KEY = 'x-device-id';
export const CURSOR_KEY = 'x-last-result-seq';
/** Connect response header: the device's last seq when the stream started (README "Delivery contract"). */
export const LAST_SEQ_KEY = 'x-last-seq';
const DEVICE_ID_BYTES_MAX = 256;
const BATCH_EVENTS_MAX = 10_000;
const log = roleLog('gateway');
/** Lines a client can cause (its stream closing while Redis is away), at a bounded rate. */
const clientLog = new RateLimitedLog(log);
/** How often a stop checks whether every event taken has its outcome (the drain's condition). */
const DRAIN_POLL_MS = 5;
const SHUTTING_DOWN_MESSAGE = 'this gateway instance is shutting down; send this event again on your next stream (after the end of this one)';

/** What a delivery report settles: one event of a stream or a call. */
interface Pending {
  sink: EventSink;
  deviceId: string;
  seq: number;
  receivedAtUs: number;
  /** What the event counts in Gateway.inflightBytes until its delivery report. */
  bytes: number;
}

/** The outcome sink of an Ingest or IngestBatch call: answers once every event has its outcome. */
class CallSink implements EventSink {
  /** Events without an outcome yet, plus one while the call may still add events. */
  pending = 1;
  durable = 0;
  readonly rejects: Reject[] = [];
  readonly eventIds: string[] = [];
  failed: Error | null = null;
  constructor(
    private readonly settle: () => void,
    /** Called after each outcome, for flow control. */
    private readonly progress?: () => void,
  ) {}

  add(): void {
    this.pending++;
  }

  onRejected(reject: Reject): void {
    metrics.eventsRejected.inc({ code: reject.code });
    // Not ordered in time (Redis): not a refusal (it may still be taken and produced); the call
    // fails instead, so its events are unacknowledged and the client sends them again.
    if (reject.code === RejectCode.UNAVAILABLE) this.failed ??= new Error(reject.message);
    else this.rejects.push(reject);
    this.one();
  }

  onDurable(_seq: number, err: Error | null): void {
    if (err !== null) {
      this.failed = err;
      metrics.produceFailures.inc();
    } else {
      this.durable++;
      metrics.eventsDurable.inc();
    }
    this.one();
  }

  /** The call will add no more events. */
  close(): void {
    this.one();
  }

  private one(): void {
    if (--this.pending === 0) this.settle();
    else this.progress?.();
  }
}

export function defaultInstanceId(config: Config): string {
  return config.instanceId !== '' ? config.instanceId : `${hostname()}-${process.pid}`;
}

export class Gateway implements SessionHost, UplinkHost {
  readonly types: ReadonlySet<string> = new Set(PROCESSORS.keys());
  readonly sessions = new Map<string, DeviceSession>();
  private readonly flushes = new FlushScheduler();
  private server: Server | null = null;
  private readonly health: HealthImplementation;
  private readonly serviceNames: string[];
  private readonly eventsTopic: string;
  readonly admission: Admission;
  /**
   * Taken events, gathered into one record per partition per turn (record-batcher.ts). null while
   * the events topic's partition count is unknown (the topic did not exist at start): device events
   * are refused with UNAVAILABLE meanwhile, and the count is asked for again every few seconds.
   */
  private records: RecordBatcher<Pending> | null = null;
  private partitionsTimer: NodeJS.Timeout | null = null;
  /** Records the producer's full queue refused, in order (see produceTaken). */
  private readonly unproduced: { partition: number; value: Buffer; pendings: Pending[] }[] = [];
  private unproducedTimer: NodeJS.Timeout | null = null;
  /** null: gateway.deviceRatePerS is 0 (no limit). */
  private readonly rates: RateLimiter | null;
  /** The process's RSS budget (rssMaxMb): past it, new calls and events are refused. */
  readonly memory: MemoryBudget;
  private readonly calls: CallLimits;
  private readonly guard: ConnectionGuard;
  /**
   * Payload bytes (plus EVENT_OVERHEAD_BYTES each) of events submitted and not yet settled.
   * Invariant: <= gateway.inflightBytesMax + one event's bytes; submit refuses beyond.
   */
  private inflightBytes = 0;
  /** For stratus_gateway_inflight_bytes, read at scrape time. */
  private readonly inflightBytesNow = (): number => this.inflightBytes;
  /** Ingest and IngestBatch calls not answered yet: a stop waits for them (they end by themselves). */
  private callsOpen = 0;
  /** Invariant: true once stop() began; from then on events of device streams are refused (SHUTTING_DOWN_MESSAGE). */
  private draining = false;
  port = 0;
  /** Set iff the gRPC port is a reusePort listener feeding grpc-js's connection injector (GatewayListen.reusePort). */
  private acceptor: ReusePortAcceptor | null = null;

  private constructor(
    readonly config: Config,
    readonly instanceId: string,
    readonly link: DeliveryLink,
    private readonly producer: EngineProducer,
    private readonly extraServices: readonly GatewayService[],
    eventsPartitions: number | null,
  ) {
    this.eventsTopic = topology(config).topics.events;
    if (eventsPartitions !== null) this.useEventsPartitions(eventsPartitions);
    else this.askEventsPartitions();
    this.admission = new Admission(config, instanceId, link.commands);
    const g = config.gateway;
    this.rates = g.deviceRatePerS === 0 ? null : new RateLimiter(g.deviceRatePerS, g.deviceBurstMax, g.devicesMax);
    this.serviceNames = ['', 'stratus.v1.DeviceGateway', 'nimbus.NimbusService', ...extraServices.flatMap((s) => s.names)];
    this.health = new HealthImplementation(Object.fromEntries(this.serviceNames.map((n) => [n, 'SERVING' as const])));
    this.memory = new MemoryBudget(config.rssMaxMb).start();
    this.calls = new CallLimits(callGroups(config), this.memory);
    for (const svc of extraServices) if (svc.callBudget !== undefined) this.calls.limitRate(svc.callBudget.group, svc.callBudget.budget, svc.callBudget.option);
    this.guard = new ConnectionGuard(config.grpc);
    inflightBytesSources.add(this.inflightBytesNow);
  }

  static async start(config: Config, instanceId = defaultInstanceId(config), port = config.grpc.port, how: GatewayListen = {}): Promise<Gateway> {
    let gateway: Gateway | null = null;
    const producer = await (how.kafka ?? (await kafkaClients(config))).producer(config, `${instanceId}-gateway`, (err, opaque) => {
      for (const p of opaque as Pending[]) gateway!.onDelivery(err, p);
    }, (opaque) => (opaque as Pending[]).length);
    let link: DeliveryLink | null = null;
    const extra: GatewayService[] = [];
    let binding = false;
    try {
      // Records carry many devices and name their partition: the partition count is read once. A
      // topic missing now (created by a step that races this start) does not stop the gateway: its
      // other services work, and device events wait for the topic (askEventsPartitions).
      const eventsPartitions = await producer.partitionsOf(topology(config).topics.events, 5000).catch((err: unknown) => {
        log.warn({ instance: instanceId, err: errorText(err) }, `events topic ${topology(config).topics.events} not found; device events are refused with UNAVAILABLE until it exists (\`stratus stack up\` or \`stratus run\` create it)`);
        return null;
      });
      link = await DeliveryLink.connect(config, instanceId, {
        onEntries: (entries) => gateway!.onEntries(entries),
        onTakeover: (deviceId) => gateway!.sessions.get(deviceId)?.end(grpcError(ErrorCode.STREAM_SUPERSEDED, `device ${deviceId} connected to another gateway instance; this stream is superseded`)),
      });
      const warning = await refuseEvictingPolicy(link.commands, config);
      if (warning !== null) log.warn({ instance: instanceId }, warning);
      for (const start of GATEWAY_SERVICES) extra.push(await start(config, instanceId));
      gateway = new Gateway(config, instanceId, link, producer, extra, eventsPartitions);
      binding = true;
      await gateway.listen(port, how.reusePort === true);
    } catch (err) {
      // Nothing of a gateway that did not start is left running: its Kafka producer, Redis
      // connections and admission timer would keep the process alive after the caller gave up.
      // Nothing was acknowledged yet, so nothing is lost by closing them without a drain.
      gateway?.admission.stop();
      gateway?.stopAskingPartitions();
      // The start's own error is what the caller gets; a service that also fails to stop is logged.
      for (const s of extra.reverse()) await s.stop().catch((e: unknown) => log.warn({ instance: instanceId, err: errorText(e) }, 'a gateway service failed to stop after a failed start'));
      await link?.close();
      await producer.disconnect(1000);
      // A failed bind (the port taken, naming its holder, or not ours to bind) becomes one line;
      // imported here, on the failure path only. Anything else (a bad TLS file is already a
      // StratusError) goes up as it is.
      const [{ isStratusError }, { listenError }] = await Promise.all([import('../errors.js'), import('../net/port-owner.js')]);
      if (!binding || isStratusError(err)) throw err;
      throw listenError({ what: 'gRPC', host: config.grpc.host, port, flag: '--grpc-port' }, err);
    }
    link.startRenewing(() => gateway!.sessions.values());
    return gateway;
  }

  private async listen(port: number, reusePort: boolean): Promise<void> {
    const server = new Server({
      // Explicit limits (grpc-js defaults, read and kept): 4 MiB per message each way.
      'grpc.max_receive_message_length': 4 * 1024 * 1024,
      'grpc.max_send_message_length': 4 * 1024 * 1024,
      // Detect dead devices: ping an idle connection every grpc.keepaliveTimeMs (30 s), drop it if
      // no answer in grpc.keepaliveTimeoutMs (10 s).
      'grpc.keepalive_time_ms': this.config.grpc.keepaliveTimeMs,
      'grpc.keepalive_timeout_ms': this.config.grpc.keepaliveTimeoutMs,
      'grpc.keepalive_permit_without_calls': 1,
      // HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: calls at once on one connection (grpc-js sends no
      // limit by default).
      'grpc.max_concurrent_streams': this.config.grpc.streamsPerConnectionMax,
      // Device tokens (auth.tokenSecret) first: an unauthenticated call is refused before it counts
      // against a limit. Then the limits on calls in progress (call-limits.ts).
      interceptors: [...(this.config.auth.tokenSecret === '' ? [] : [authInterceptor(this.config.auth.tokenSecret)]), this.calls.interceptor()],
    });
    server.addService(DeviceGatewayService, {
      Connect: (call: ServerDuplexStream<Uplink, Downlink>) => this.connect(call),
      Ingest: (call: ServerReadableStream<Event, IngestSummary>, cb: sendUnaryData<IngestSummary>) => this.ingest(call, cb),
      IngestBatch: (call: ServerUnaryCall<EventBatch, BatchAck>, cb: sendUnaryData<BatchAck>) => void this.ingestBatch(call, cb),
    });
    server.addService(NimbusService, {
      // A turn later, like Connect: a stream reset at once starts no session.
      ProcessEvent: (call: ServerDuplexStream<EventRequest, EventResponse>) => setImmediate(() => !call.cancelled && processEvent(this, call)),
    });
    for (const s of this.extraServices) s.addTo(server);
    // grpc.health.v1 ('' and each service) and server reflection, so grpcurl, ghz and Postman
    // work without the .proto files.
    this.health.addToServer(server);
    // reflection.ts builds the descriptors itself: proto-loader's are refused by Go clients.
    // kafka.proto has no service: served so that `grpcurl describe stratus.v1.kafka.EventRecord`
    // gives a Kafka consumer the records' schema from a running gateway.
    const described = ['stratus/v1/gateway.proto', 'stratus/v1/kafka.proto', 'nimbus/nimbus.proto', ...this.extraServices.flatMap((s) => s.protoFiles)].map(projectProto);
    reflectionService([...described, HEALTH_PROTO]).addToServer(server);
    if (reusePort) {
      this.acceptor = await listenReusePort(server, this.config.grpc.host, port, grpcServerCredentials(tlsFiles(this.config)));
      this.port = this.acceptor.port;
    } else {
      this.port = await new Promise<number>((resolve, reject) =>
        server.bindAsync(`${this.config.grpc.host.includes(':') ? `[${this.config.grpc.host}]` : this.config.grpc.host}:${port}`, grpcServerCredentials(tlsFiles(this.config)), (err, p) => (err ? reject(err) : resolve(p))),
      );
    }
    this.guard.attach(server, this.acceptor === null ? undefined : [this.acceptor.listener]);
    // Every authorization header of a call reaches the auth interceptor, so two are refused.
    if (this.config.auth.tokenSecret !== '') guardAuthorizationHeaders(server);
    this.server = server;
  }

  // --- SessionHost ---------------------------------------------------------------------------

  admit(deviceId: string): boolean {
    return this.rates === null || this.rates.take(deviceId);
  }

  /**
   * Orders the event into its device's sequence (admission.ts), then produces it; the outcome goes to
   * the sink. Shed first rather than queue: an event taken now would wait behind events already
   * waiting too long (an overload, or Kafka away), and its device would learn nothing for seconds.
   */
  submit(sink: EventSink, deviceId: string, event: Event, receivedAtUs: number): void {
    if (this.draining && sink instanceof UplinkSession) {
      // A device stream never ends by itself: while stopping, its new events are refused so that
      // the ones taken get their outcomes, and the stream can end without waiting out the grace.
      sink.onRejected({ seq: event.seq, code: RejectCode.OVERLOADED, message: SHUTTING_DOWN_MESSAGE });
      return;
    }
    if (this.records === null) {
      sink.onRejected({ seq: event.seq, code: RejectCode.UNAVAILABLE, message: `the events topic ${this.eventsTopic} does not exist (yet); send this event again later` });
      return;
    }
    const records = this.records;
    if (this.unproduced.length > 0 || this.producer.oldestWaitMs() > this.config.gateway.ackWaitMaxMs || this.memory.refusing || this.inflightBytes > this.config.gateway.inflightBytesMax) {
      sink.onRejected({ seq: event.seq, code: RejectCode.OVERLOADED, message: OVERLOADED_MESSAGE });
      return;
    }
    const bytes = (event.payload?.length ?? 0) + EVENT_OVERHEAD_BYTES;
    this.inflightBytes += bytes;
    const produce = (seq: number, to: EventSink, counted: number) => {
      records.add(
        { deviceId, seq, type: event.type, value: event.value ?? 0, payload: event.payload ?? EMPTY, sentAtUs: event.sentAtUs ?? 0, receivedAtUs },
        { sink: to, deviceId, seq, receivedAtUs, bytes: counted },
      );
    };
    this.admission.submit({
      deviceId,
      seq: event.seq,
      done: (o) => {
        if (o.taken) return produce(o.seq, sink, bytes);
        this.settleBytes(bytes);
        sink.onRejected(o.reject);
      },
      // Taken after its device was told UNAVAILABLE (Redis answered late): its bytes were settled
      // with that answer, so its delivery report settles none (the fault suite's kill -9 Redis
      // drove the count below zero when both did).
      orphaned: (seq) => produce(seq, NO_SINK, 0),
    });
  }

  /** For a gateway that failed to start: no more metadata requests. */
  stopAskingPartitions(): void {
    this.draining = true;
    if (this.partitionsTimer !== null) clearTimeout(this.partitionsTimer);
    this.partitionsTimer = null;
  }

  private useEventsPartitions(partitions: number): void {
    this.records = new RecordBatcher<Pending>(partitions, this.config.kafka.recordEventsMax, this.config.kafka.recordBytesMax, (partition, value, pendings) => this.produceTaken(partition, value, pendings));
  }

  /** Asks Kafka for the events topic's partitions every 5 s until it answers (the topic exists). */
  private askEventsPartitions(): void {
    this.partitionsTimer = setTimeout(() => {
      this.partitionsTimer = null;
      if (this.draining) return;
      this.producer.partitionsOf(this.eventsTopic, 5000).then(
        (n) => {
          if (this.draining || this.records !== null) return;
          this.useEventsPartitions(n);
          log.info({ instance: this.instanceId, partitions: n }, `events topic ${this.eventsTopic} found; device events are taken`);
        },
        () => {
          if (!this.draining) this.askEventsPartitions();
        },
      );
    }, 5000);
    // Never what keeps a process alive.
    this.partitionsTimer.unref();
  }

  private settleBytes(bytes: number): void {
    this.inflightBytes -= bytes;
    assert.ok(this.inflightBytes >= 0, 'inflightBytes went negative');
  }

  /**
   * Every taken event reaches Kafka, in the order taken: a record the producer's full queue refused
   * waits here (and every later one behind it) until there is room; meanwhile new events are shed.
   */
  private produceTaken(partition: number, value: Buffer, pendings: Pending[]): void {
    metrics.kafkaRecordEvents.observe({ topic: 'events' }, pendings.length);
    if (this.unproduced.length === 0 && this.producer.produce(this.eventsTopic, partition, null, value, pendings)) {
      metrics.eventsAccepted.inc(pendings.length);
      return;
    }
    this.unproduced.push({ partition, value, pendings });
    if (this.unproducedTimer === null) this.unproducedTimer = setTimeout(() => this.produceWaiting(), UNPRODUCED_RETRY_MS);
  }

  private produceWaiting(): void {
    this.unproducedTimer = null;
    while (this.unproduced.length > 0) {
      const { partition, value, pendings } = this.unproduced[0]!;
      if (!this.producer.produce(this.eventsTopic, partition, null, value, pendings)) break;
      metrics.eventsAccepted.inc(pendings.length);
      this.unproduced.shift();
    }
    if (this.unproduced.length > 0) this.unproducedTimer = setTimeout(() => this.produceWaiting(), UNPRODUCED_RETRY_MS);
  }

  markDirty(session: DeviceSession): void {
    this.flushes.mark(session);
  }

  closed(session: DeviceSession): void {
    this.flushes.forget(session);
    // A newer session for the same device may already be registered: never deregister it, and keep
    // its presence. What this one wrote is recorded either way, before the newer one reads it.
    const current = this.sessions.get(session.deviceId) === session;
    if (current) {
      this.sessions.delete(session.deviceId);
      metrics.devicesConnected.set(this.sessions.size);
    }
    // Presence and cursor are leased: a release Redis did not answer expires with its lease
    // (redis.deviceStateTtlMs), so nothing is lost; many streams can close at once while Redis is
    // away, so the line is rate-limited.
    void this.link.release(session.deviceId, session.sentSeq, current).catch((err: unknown) => clientLog.warn('release', { err: errorText(err) }, 'releasing a closed stream in Redis failed (its lease expires instead)'));
  }

  // --- inputs ----------------------------------------------------------------------------------

  private onDelivery(err: Error | null, p: Pending): void {
    this.settleBytes(p.bytes);
    const ackable = this.admission.settled(p.deviceId, p.seq, err === null);
    if (ackable) metrics.stageSeconds.observe({ stage: 'ack' }, (Date.now() * 1000 - p.receivedAtUs) / 1e6);
    p.sink.onDurable(p.seq, ackable ? null : err ?? new Error(LEASE_LOST_MESSAGE));
  }

  private onEntries(entries: FrameEntry[]): void {
    for (const e of entries) this.sessions.get(e.deviceId)?.onLive(e.n, e.result);
  }

  private connect(call: ServerDuplexStream<Uplink, Downlink>): void {
    // A turn later: a stream the client reset at once (an HTTP/2 rapid reset sends HEADERS and
    // RST_STREAM in one packet) is cancelled by then and costs no Redis work. grpc-js buffers what
    // arrives meanwhile.
    setImmediate(() => {
      if (!call.cancelled) this.connectNow(call);
    });
  }

  private connectNow(call: ServerDuplexStream<Uplink, Downlink>): void {
    const authed = authenticatedDevice(call.metadata);
    const named = metadataString(call.metadata, DEVICE_ID_KEY);
    if (authed !== null && named !== null && named !== authed) {
      call.emit('error', grpcError(ErrorCode.DEVICE_FORBIDDEN, `metadata "${DEVICE_ID_KEY}" names another device than the token; a device can only connect as itself (leave "${DEVICE_ID_KEY}" out or send the token's device id)`));
      return;
    }
    const deviceId = authed ?? named;
    if (deviceId === null || deviceId === '' || Buffer.byteLength(deviceId) > DEVICE_ID_BYTES_MAX) {
      call.emit('error', grpcError(ErrorCode.METADATA_INVALID, `metadata "${DEVICE_ID_KEY}" must name the device (1..${DEVICE_ID_BYTES_MAX} bytes)`));
      return;
    }
    const cursorText = metadataString(call.metadata, CURSOR_KEY);
    const cursor = cursorText === null ? null : Number(cursorText);
    if (cursor !== null && !(Number.isSafeInteger(cursor) && cursor >= 0)) {
      call.emit('error', grpcError(ErrorCode.METADATA_INVALID, `metadata "${CURSOR_KEY}" must be a whole number from 0 to 2^53-1 (got "${cursorText!.slice(0, 32)}")`));
      return;
    }
    const session = new DeviceSession(this, deviceId, {
      write: (msg) => call.write(msg),
      end: (st) => (st === null ? call.end() : call.emit('error', st)),
    });
    const uplink = (session.uplink = new UplinkSession(this, session, { pause: () => call.pause(), resume: () => call.resume() }));
    call.on('data', (u: Uplink) => uplink.onUplink(u));
    call.on('end', () => uplink.onHalfClose());
    call.on('error', () => session.peerGone());
    call.on('cancelled', () => session.peerGone());
    call.on('drain', () => session.onDrain());
    // Read before any of this stream's events is ordered (one Redis connection runs commands in
    // order), so x-last-seq is the device's last seq before this stream.
    const lastSeq = this.link.lastSeq(deviceId);
    this.register(session, cursor);
    // Response headers as soon as the last seq is known, not with the first Downlink: the device
    // learns at once that the stream was accepted and where its seqs continue.
    const headers = (last: number | null) => {
      if (session.closed) return;
      const md = new Metadata();
      if (last !== null) md.set(LAST_SEQ_KEY, String(last));
      call.sendMetadata(md);
    };
    lastSeq.then(headers, () => headers(null));
  }

  /** Makes the session the device's one session here (ending an older one), then starts it. */
  register(session: DeviceSession, cursor: number | null = null): void {
    const previous = this.sessions.get(session.deviceId);
    if (previous === undefined && this.sessions.size >= this.config.gateway.devicesMax) {
      session.end(grpcError(ErrorCode.INSTANCE_FULL, `this gateway instance holds ${this.config.gateway.devicesMax} streams (gateway.devicesMax); connect to another instance or later`));
      return;
    }
    this.sessions.set(session.deviceId, session);
    metrics.devicesConnected.set(this.sessions.size);
    previous?.end(grpcError(ErrorCode.STREAM_SUPERSEDED, `a newer stream for device ${session.deviceId} took over this one`));
    session.start(cursor).catch(() => session.end(grpcError(ErrorCode.REDIS_UNAVAILABLE, 'Redis did not answer while this stream was starting; reconnect')));
  }

  /**
   * Client stream: answers once every event has its outcome: accepted = acknowledged (durable),
   * rejected = refused (validation, rate, order: DUPLICATE, BUSY, ...). Any event Kafka did not take
   * fails the call with UNAVAILABLE.
   */
  private ingest(call: ServerReadableStream<Event, IngestSummary>, cb: sendUnaryData<IngestSummary>): void {
    const devices = new Set<string>();
    let rejected = 0;
    let paused = false;
    let refused = false;
    const inflightMax = this.config.gateway.inflightMax;
    this.callsOpen++;
    let open = true;
    const closeCall = () => {
      if (open) this.callsOpen--;
      open = false;
    };
    // A call the client cancelled never ends with 'end': it stops counting when it is cancelled.
    call.once('cancelled', closeCall);
    call.once('close', closeCall);
    const sink: CallSink = new CallSink(
      () => {
        closeCall();
        if (refused) return;
        if (sink.failed !== null) cb(grpcError(ErrorCode.KAFKA_UNAVAILABLE, `not every event was made durable (${sink.failed.message}); send the events again (one refused as DUPLICATE is in)`));
        else cb(null, { accepted: sink.durable, rejected: rejected + sink.rejects.length });
      },
      () => {
        if (paused && sink.pending <= inflightMax / 2) {
          paused = false;
          call.resume();
        }
      },
    );
    // Auth on: every event is the token's device (an event naming another is rejected).
    const authed = authenticatedDevice(call.metadata);
    call.on('data', (e: Event) => {
      if (refused) return;
      metrics.eventsReceived.inc();
      const deviceId = authed ?? e.deviceId;
      const invalid = validateEvent(e, { streamDeviceId: authed, payloadBytesMax: this.config.gateway.payloadBytesMax, types: this.types });
      if (invalid !== null) {
        metrics.eventsRejected.inc({ code: invalid.code });
        rejected++;
        return;
      }
      // Before anything of this event is taken or produced: a refused call leaves nothing behind.
      if (!devices.has(deviceId) && devices.size >= this.config.gateway.devicesMax) {
        refused = true;
        cb(grpcError(ErrorCode.CALL_DEVICES_MAX, `one Ingest call may name at most ${this.config.gateway.devicesMax} devices (gateway.devicesMax); split the stream`));
        call.destroy();
        return;
      }
      if (!this.admit(deviceId)) {
        metrics.eventsRejected.inc({ code: RejectCode.RATE_LIMITED });
        rejected++;
        return;
      }
      devices.add(deviceId);
      sink.add();
      this.submit(sink, deviceId, e, Date.now() * 1000);
      if (sink.pending > inflightMax && !paused) {
        // Stop reading: HTTP/2 flow control holds the client until outcomes come back.
        paused = true;
        call.pause();
      }
    });
    call.on('end', () => sink.close());
    // A client that went away mid-call (cancel, reset): grpc-js ends the call itself and the
    // events taken so far are settled with the sink; the callback's answer then goes nowhere.
    // Nothing of the engine's is lost, so this is counted by grpc-js's own close, not logged.
    call.on('error', () => {});
  }

  /** Unary: answers once every event has its outcome; event_ids lists the acknowledged ones. */
  private ingestBatch(call: ServerUnaryCall<EventBatch, BatchAck>, cb: sendUnaryData<BatchAck>): void {
    const events = call.request.events ?? [];
    if (events.length > BATCH_EVENTS_MAX) {
      cb(grpcError(ErrorCode.REQUEST_INVALID, `events has ${events.length} entries; at most ${BATCH_EVENTS_MAX} per IngestBatch`));
      return;
    }
    metrics.eventsReceived.inc(events.length);
    const authed = authenticatedDevice(call.metadata);
    const now = Date.now() * 1000;
    this.callsOpen++;
    const sink: CallSink = new CallSink(() => {
      this.callsOpen--;
      if (sink.failed !== null) cb(grpcError(ErrorCode.KAFKA_UNAVAILABLE, `not every event was made durable (${sink.failed.message}); send the batch again (events refused as DUPLICATE are in)`));
      else cb(null, { accepted: sink.eventIds.length, rejects: sink.rejects, eventIds: sink.eventIds });
    });
    for (const e of events) {
      const deviceId = authed ?? e.deviceId;
      const reject = validateEvent(e, { streamDeviceId: authed, payloadBytesMax: this.config.gateway.payloadBytesMax, types: this.types });
      if (reject !== null) {
        metrics.eventsRejected.inc({ code: reject.code });
        sink.rejects.push(reject);
        continue;
      }
      if (!this.admit(deviceId)) {
        metrics.eventsRejected.inc({ code: RejectCode.RATE_LIMITED });
        sink.rejects.push({ seq: e.seq, code: RejectCode.RATE_LIMITED, message: rateLimitedMessage(this.config.gateway.deviceRatePerS) });
        continue;
      }
      sink.add();
      this.submit(deviceSink(sink, deviceId), deviceId, e, now);
    }
    sink.close();
  }

  /** The addresses the gRPC server is bound to (host:port, [v6]:port), as the sockets report them. */
  addresses(): string[] {
    if (this.server === null) return [];
    // The injector's http2 server never listens (address() is null): the listener is the port.
    if (this.acceptor !== null) return [boundAddress(this.acceptor.listener.address())];
    return grpcHttp2Servers(this.server, 'the start line').map((s) => boundAddress(s.address()));
  }

  /** Every event taken has its outcome, and no Ingest or IngestBatch call is still open. */
  private quiet(): boolean {
    return this.inflightBytes === 0 && (this.records?.waiting ?? 0) === 0 && this.unproduced.length === 0 && this.admission.pending === 0 && this.callsOpen === 0;
  }

  /**
   * Graceful stop: no new calls, and events on open device streams are refused (OVERLOADED, "shutting
   * down"); once every event taken has its outcome (acknowledged, or refused) and every Ingest and
   * IngestBatch call has answered, the device streams end with UNAVAILABLE (reconnect, resend after
   * acked_seq). That wait is bounded by gateway.drainGraceMs: past it the streams end anyway. The
   * producer is flushed so every event already acknowledged stays durable. Each step is logged.
   */
  async stop(): Promise<void> {
    const startedAt = Date.now();
    this.draining = true;
    for (const name of this.serviceNames) this.health.setStatus(name, 'NOT_SERVING');
    const server = this.server;
    // tryShutdown closes the http2 servers grpc-js bound, not a listener of ours: stop accepting first.
    this.acceptor?.close();
    const streams = this.sessions.size;
    let quietInGrace = true;
    if (server !== null) {
      await new Promise<void>((resolve) => {
        let done = false;
        let last: NodeJS.Timeout | undefined;
        const finish = () => {
          if (done) return;
          done = true;
          clearTimeout(grace);
          clearInterval(poll);
          clearTimeout(last);
          resolve();
        };
        const endStreams = (why: string) => {
          clearInterval(poll);
          if (done) return;
          for (const s of [...this.sessions.values()]) s.end(grpcError(ErrorCode.SHUTTING_DOWN, `gateway shutting down (${why}); reconnect (to another instance) and resend unacked events`));
          // tryShutdown completes once the ended streams are finished; a call that still hangs a
          // second later is cut.
          last = setTimeout(() => server.forceShutdown(), 1000);
        };
        // Grace over: end the streams whatever is still in flight.
        const grace = setTimeout(() => {
          quietInGrace = false;
          endStreams('drain grace over');
        }, this.config.gateway.drainGraceMs);
        // Every event taken has its outcome: its acknowledgement goes out with the next flush (a
        // turn later, FlushScheduler), then the streams end.
        const poll = setInterval(() => {
          if (!this.quiet()) return;
          clearInterval(poll);
          setImmediate(() => setImmediate(() => endStreams('drained')));
        }, DRAIN_POLL_MS);
        server.tryShutdown(finish);
      });
    }
    drainTally.streamsEnded += streams;
    log.info({ instance: this.instanceId, streams, inGrace: quietInGrace, ms: Date.now() - startedAt }, quietInGrace ? 'every taken event answered, device streams ended' : 'drain grace over, device streams ended with events in flight');
    this.admission.stop();
    // Taken events still waiting for room go out before the producer flushes and disconnects (for
    // at most gateway.drainGraceMs: Kafka may be gone; they were never acknowledged).
    const deadline = Date.now() + this.config.gateway.drainGraceMs;
    this.records?.flush();
    if (this.partitionsTimer !== null) clearTimeout(this.partitionsTimer);
    while (this.unproduced.length > 0 && Date.now() < deadline) {
      this.produceWaiting();
      if (this.unproduced.length > 0) await new Promise((r) => setTimeout(r, UNPRODUCED_RETRY_MS));
    }
    if (this.unproducedTimer !== null) clearTimeout(this.unproducedTimer);
    await this.producer.disconnect();
    for (const s of [...this.sessions.values()]) s.end(grpcError(ErrorCode.SHUTTING_DOWN, 'gateway shutting down'));
    await this.link.close();
    for (const s of this.extraServices) await s.stop();
    this.memory.stop();
    this.guard.stop();
    inflightBytesSources.delete(this.inflightBytesNow);
  }
}

/** How Gateway.start listens on the gRPC port. */
export interface GatewayListen {
  /**
   * A net listener with reusePort feeding grpc-js's connection injector instead of bindAsync: for
   * gateways on worker threads that share the port (src/gateway/threads/). Default false.
   */
  readonly reusePort?: boolean;
  /** Where the producer comes from; default the kafka.client library's (a gateway thread's forwards to the main thread, threads/port-producer.ts). */
  readonly kafka?: Pick<KafkaClients, 'producer'>;
}

const EMPTY = new Uint8Array(0);
/** What an event costs beyond its payload while in flight (its Pending, its encoded record's header): counted in gateway.inflightBytesMax. */
const EVENT_OVERHEAD_BYTES = 256;
const UNPRODUCED_RETRY_MS = 10;
/** The outcome of an event nobody waits for any more (its device was told UNAVAILABLE). */
// Not a swallowed error: the device of such an event already got its answer (UNAVAILABLE), and its
// delivery report is counted in the stage metrics like any other.
const NO_SINK: EventSink = { onRejected: () => {}, onDurable: () => {} };

/** IngestBatch names each acknowledged event `device/seq`: a sink per event that knows its device. */
function deviceSink(sink: CallSink, deviceId: string): EventSink {
  return {
    onRejected: (r) => sink.onRejected(r),
    onDurable: (seq, err) => {
      if (err === null) sink.eventIds.push(`${deviceId}/${seq}`);
      sink.onDurable(seq, err);
    },
  };
}
const LEASE_LOST_MESSAGE = "durable, but reported after this instance's admission lease on the device ran out (Redis did not answer its renewals), so it cannot be acknowledged here";

function metadataString(md: Metadata, key: string): string | null {
  const v = md.get(key);
  if (v.length === 0) return null;
  return typeof v[0] === 'string' ? v[0] : v[0]!.toString('utf8');
}
