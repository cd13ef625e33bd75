/**
 * The model test's clients: Connect streams, Ingest and IngestBatch calls, Nimbus streams and SSE
 * readers, each writing what it sees into the model's Observations (model.ts).
 *
 * They speak the wire contract through src/gateway/protocol.ts's codecs and work with or without
 * the contract's new pieces: the `x-last-seq` response header (read from call.on('metadata')) and
 * Reject.last_seq (`lastSeq`, read when the proto has it).
 */
import { Client, credentials, Metadata, status as grpcStatus, type ClientDuplexStream, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { codecs, type BatchAck, type Downlink, type Event, type EventRequest, type EventResponse, type IngestSummary, type Uplink } from '../../src/gateway/protocol.js';
import { SseClient } from '../helpers/sse-client.js';
import type { Attempt, Channel, NimbusChannel, Observations } from './model.js';

const CALL_DEADLINE_MS = 20_000;

let clock = 0;
/** The harness's logical clock: orders channel opens and result arrivals. */
export function tick(): number {
  return ++clock;
}

export function statusName(code: number): string {
  return grpcStatus[code] ?? String(code);
}

/** Something to wait on: waiters are woken on every change, and polled every 100 ms. */
export class Waitable {
  private waiters: (() => void)[] = [];
  protected wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** true once pred holds, false at the deadline. */
  async until(pred: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() >= deadline) return false;
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, Math.min(100, Math.max(1, deadline - Date.now())));
      });
    }
    return true;
  }
}

export function sqEvent(deviceId: string, seq: number, value: number): Event {
  return { deviceId, seq, type: 'sq', value, payload: Buffer.alloc(0), sentAtUs: Date.now() * 1000 };
}

/** Reject.last_seq once the proto has field 4; undefined before. */
function rejectLastSeq(r: object): number | undefined {
  const v = (r as { lastSeq?: unknown }).lastSeq;
  return typeof v === 'number' && v > 0 ? v : undefined;
}

function newAttempt(obs: Observations, device: string, seq: number, value: number, via: Attempt['via'], channel: string, op: number): Attempt {
  const a: Attempt = { id: obs.attempts.length, device, seq, value, via, channel, op, outcome: null };
  obs.attempts.push(a);
  return a;
}

function setOutcome(a: Attempt, outcome: NonNullable<Attempt['outcome']>): void {
  if (a.outcome === null) a.outcome = outcome;
  else if (a.outcome.kind !== outcome.kind) a.conflict = `${outcome.kind}${outcome.kind === 'rejected' ? ` ${outcome.code}` : ''} after ${a.outcome.kind}`;
}

/** One Connect stream of a device. */
export class ConnectChannel extends Waitable {
  readonly record: Channel;
  readonly attempts: { a: Attempt; ackBase: number }[] = [];
  ackedSeq = 0;
  state: 'open' | 'ended' | 'failed' | 'cancelled' = 'open';
  statusText = '';
  /** The x-last-seq response header, once headers came and if the engine sends it. */
  lastSeqHeader: number | null = null;
  headersSeen = false;
  /** Highest Reject.last_seq seen on this stream. */
  rejectLastSeq = 0;
  private readonly call: ClientDuplexStream<Uplink, Downlink>;

  constructor(
    private readonly obs: Observations,
    readonly deviceId: string,
    client: Client,
    readonly instance: string,
    cursor: number | null,
    op: number,
  ) {
    super();
    this.record = { id: `connect#${obs.channels.length}@${instance}`, device: deviceId, kind: 'connect', cursor, op, openedAt: tick(), results: [] };
    obs.channels.push(this.record);
    const md = new Metadata();
    md.set('x-device-id', deviceId);
    if (cursor !== null) md.set('x-last-result-seq', String(cursor));
    this.call = client.makeBidiStreamRequest('/stratus.v1.DeviceGateway/Connect', codecs.Uplink.serialize, codecs.Downlink.deserialize, md);
    this.call.on('metadata', (m: Metadata) => {
      const v = m.get('x-last-seq');
      if (v.length > 0 && /^\d+$/.test(String(v[0]))) this.lastSeqHeader = Number(v[0]);
      this.headersSeen = true;
      this.wake();
    });
    this.call.on('data', (d: Downlink) => this.onDownlink(d));
    this.call.on('error', (_e: ServiceError) => {});
    this.call.on('status', (s: StatusObject) => this.onStatus(s));
  }

  get id(): string {
    return this.record.id;
  }

  private onDownlink(d: Downlink): void {
    // Rejects first: a Downlink's acked_seq covers only the non-rejected events.
    for (const r of d.rejects ?? []) {
      const last = rejectLastSeq(r);
      if (last !== undefined) this.rejectLastSeq = Math.max(this.rejectLastSeq, last);
      const mine = this.attempts.find((x) => x.a.seq === r.seq && x.a.outcome === null) ?? this.attempts.find((x) => x.a.seq === r.seq);
      if (mine !== undefined) setOutcome(mine.a, { kind: 'rejected', code: r.code, ...(last !== undefined ? { lastSeq: last } : {}) });
    }
    const acked = d.ackedSeq ?? 0;
    if (acked > this.ackedSeq) {
      // Cumulative, but only an ack that advanced after an attempt was sent can be its ack (a
      // restarted device resends low seqs on a stream whose acked_seq may already be higher).
      for (const x of this.attempts) {
        if (x.a.outcome === null && x.a.seq <= acked && acked > x.ackBase) setOutcome(x.a, { kind: 'acked' });
      }
      this.ackedSeq = acked;
    }
    for (const r of d.results ?? []) this.record.results.push({ seq: r.seq, value: r.value, at: tick(), atMs: Date.now() });
    this.wake();
  }

  private onStatus(s: StatusObject): void {
    if (this.state === 'cancelled') return;
    this.state = s.code === grpcStatus.OK ? 'ended' : 'failed';
    this.statusText = `${statusName(s.code)}: ${s.details}`;
    if (s.code !== grpcStatus.OK) {
      for (const x of this.attempts) if (x.a.outcome === null) x.a.outcome = { kind: 'failed', status: statusName(s.code) };
    }
    // Ended OK with attempts still open: check() reports them (no outcome).
    this.wake();
  }

  /** Sends events, in one Uplink or one per event. */
  send(events: { seq: number; value: number }[], op: number, oneUplink: boolean): Attempt[] {
    const made = events.map((e) => {
      const a = newAttempt(this.obs, this.deviceId, e.seq, e.value, 'connect', this.id, op);
      this.attempts.push({ a, ackBase: this.ackedSeq });
      return a;
    });
    if (this.state !== 'open') {
      // Written into a stream that is already over: never reached the engine.
      for (const a of made) a.outcome = { kind: 'failed', status: `stream already ${this.state}` };
      return made;
    }
    const evs = events.map((e) => sqEvent(this.deviceId, e.seq, e.value));
    if (oneUplink) this.call.write({ events: evs });
    else for (const e of evs) this.call.write({ events: [e] });
    return made;
  }

  outstanding(): number {
    return this.attempts.filter((x) => x.a.outcome === null).length;
  }

  /** The device is done sending: the engine ends the stream (OK) once everything is acked. */
  halfClose(): void {
    if (this.state === 'open') this.call.end();
  }

  /** The device cuts the stream: what it sent without an ack is unacked (abandoned). */
  cancel(): void {
    if (this.state === 'open') {
      this.state = 'cancelled';
      for (const x of this.attempts) if (x.a.outcome === null) x.a.outcome = { kind: 'abandoned' };
      this.call.cancel();
    }
    this.wake();
  }
}

/** An SSE reader of a device; its results are copied into the model's channel by sync(). */
export class SseChannel {
  readonly record: Channel;
  readonly client = new SseClient();
  constructor(obs: Observations, readonly deviceId: string, readonly instance: string, cursor: number | null, op: number) {
    this.record = { id: `sse#${obs.channels.length}@${instance}`, device: deviceId, kind: 'sse', cursor, op, openedAt: tick(), results: [] };
    obs.channels.push(this.record);
  }

  private closed = false;

  async open(httpPort: number): Promise<void> {
    const headers: Record<string, string> = this.record.cursor !== null ? { 'last-event-id': String(this.record.cursor) } : {};
    await this.client.open(`http://127.0.0.1:${httpPort}/v1/devices/${encodeURIComponent(this.deviceId)}/events`, headers);
    // SseClient wakes its waiters on every parsed chunk: a waiter that syncs stamps each result's
    // arrival on the logical clock.
    void this.client.until(() => {
      this.sync();
      return this.closed || this.client.ended;
    }, 24 * 3600_000, "the end of the stream").catch(() => {});
  }

  /** Copies new results from the reader, stamping their arrival. */
  sync(): void {
    const all = this.client.results();
    for (let k = this.record.results.length; k < all.length; k++) this.record.results.push({ seq: all[k]!.seq, value: all[k]!.value, at: tick(), atMs: Date.now() });
  }

  close(): void {
    this.sync();
    this.closed = true;
    this.client.close();
  }
}

/** An Ingest client stream: all its events are acked iff the summary says every one was accepted. */
export function ingest(obs: Observations, client: Client, deviceId: string, instance: string, events: { seq: number; value: number }[], op: number): Promise<void> {
  const id = `ingest#${obs.attempts.length}@${instance}`;
  const made = events.map((e) => newAttempt(obs, deviceId, e.seq, e.value, 'ingest', id, op));
  return new Promise<void>((resolve) => {
    const call = client.makeClientStreamRequest('/stratus.v1.DeviceGateway/Ingest', codecs.Event.serialize, codecs.IngestSummary.deserialize, new Metadata(), { deadline: Date.now() + CALL_DEADLINE_MS }, (err: ServiceError | null, s?: IngestSummary) => {
      if (err !== null) for (const a of made) setOutcome(a, { kind: 'failed', status: statusName(err.code) });
      else if (s!.accepted === made.length && s!.rejected === 0) for (const a of made) setOutcome(a, { kind: 'acked' });
      else for (const a of made) setOutcome(a, { kind: 'partial', accepted: s!.accepted, rejected: s!.rejected });
      resolve();
    });
    for (const e of events) call.write(sqEvent(deviceId, e.seq, e.value));
    call.end();
  });
}

/** An IngestBatch call: acked = listed in event_ids, rejected = listed in rejects. */
export function ingestBatch(obs: Observations, client: Client, deviceId: string, instance: string, events: { seq: number; value: number }[], op: number): Promise<void> {
  const id = `batch#${obs.attempts.length}@${instance}`;
  const made = events.map((e) => newAttempt(obs, deviceId, e.seq, e.value, 'batch', id, op));
  return new Promise<void>((resolve) => {
    client.makeUnaryRequest('/stratus.v1.DeviceGateway/IngestBatch', codecs.EventBatch.serialize, codecs.BatchAck.deserialize, { events: events.map((e) => sqEvent(deviceId, e.seq, e.value)) }, new Metadata(), { deadline: Date.now() + CALL_DEADLINE_MS }, (err: ServiceError | null, ack?: BatchAck) => {
      if (err !== null) for (const a of made) setOutcome(a, { kind: 'failed', status: statusName(err.code) });
      else {
        const ids = new Set(ack!.eventIds);
        for (const a of made) {
          const rej = ack!.rejects.find((r) => r.seq === a.seq);
          if (rej !== undefined) {
            const last = rejectLastSeq(rej);
            setOutcome(a, { kind: 'rejected', code: rej.code, ...(last !== undefined ? { lastSeq: last } : {}) });
          } else if (ids.has(`${deviceId}/${a.seq}`)) setOutcome(a, { kind: 'acked' });
          // Neither: no outcome, check() reports it.
        }
      }
      resolve();
    });
  });
}

/** A Nimbus ProcessEvent stream of one client. */
export class NimbusStream extends Waitable {
  readonly record: NimbusChannel;
  private readonly call: ClientDuplexStream<EventRequest, EventResponse>;
  private sent = 0;
  constructor(private readonly obs: Observations, readonly clientId: string, client: Client, readonly instance: string, op: number) {
    super();
    this.record = { id: `nimbus#${obs.nimbusChannels.length}@${instance}`, client: clientId, op, responses: [], rejects: [], failed: null, settled: false };
    obs.nimbusChannels.push(this.record);
    const md = new Metadata();
    md.set('client_id', clientId);
    this.call = client.makeBidiStreamRequest('/nimbus.NimbusService/ProcessEvent', codecs.EventRequest.serialize, codecs.EventResponse.deserialize, md);
    this.call.on('data', (r: EventResponse) => {
      if (r.number !== 0) this.record.responses.push({ number: r.number, result: r.result, resultWide: r.resultWide, at: tick(), atMs: Date.now() });
      else this.record.rejects.push(r.log?.steps?.[0]?.metadata?.error ?? 'UNKNOWN');
      this.wake();
    });
    this.call.on('error', () => {});
    this.call.on('status', (s: StatusObject) => {
      if (s.code !== grpcStatus.OK && this.record.failed === null) this.record.failed = statusName(s.code);
      else if (s.code === grpcStatus.OK) this.record.settled = true;
      this.wake();
    });
  }

  get open(): boolean {
    return this.record.failed === null && !this.record.settled;
  }

  send(numbers: number[], op: number): void {
    for (const n of numbers) {
      this.obs.nimbusRequests.push({ client: this.clientId, number: n, channel: this.record.id, op });
      this.sent++;
      if (this.open) this.call.write({ eventName: `n${n}`, number: n });
    }
  }

  /** Every request sent here has a response (anywhere in `answered`) or a rejected response here. */
  allAnswered(answered: ReadonlySet<number>): boolean {
    const mine = this.obs.nimbusRequests.filter((r) => r.channel === this.record.id && !answered.has(r.number));
    return mine.length <= this.record.rejects.length;
  }

  halfClose(): void {
    if (this.open) this.call.end();
  }

  cancel(): void {
    if (this.open) this.record.failed ??= 'CANCELLED (by the client)';
    this.call.cancel();
  }
}

export function grpcClient(address: string): Client {
  return new Client(address, credentials.createInsecure());
}
