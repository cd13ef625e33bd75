/**
 * The abuse suite's canary: one well-behaved device on DeviceGateway.Connect sending one event
 * every intervalMs (default 100 ms: 10/s) and timing each event's ack: from its write to the first Downlink whose
 * acked_seq covers it. Runs in the test process, beside an attack run in another process.
 *
 * A window's figures cover the events SENT in it; an event not acked by the time the window is
 * evaluated counts with the latency it had so far (at least that long), so a stalled engine shows
 * as a long p99, not as a short one over the few events that made it.
 * A stream that ends is opened again after 500 ms, continuing above the last seq sent (seq gaps
 * are allowed; the events of the dead stream that were never acked stay unacked).
 */
import { Client, credentials, Metadata, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { codecs, type Downlink, type Uplink } from '../../../src/gateway/protocol.js';

interface Sent {
  seq: number;
  atMs: number;
  ackMs: number | null;
  rejected: string | null;
}

export interface CanaryWindow {
  sent: number;
  acked: number;
  unacked: number;
  rejected: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export class Canary {
  private readonly sent: Sent[] = [];
  /** Index into `sent` of the first event not yet acked (acks are cumulative). */
  private firstUnacked = 0;
  private seq = 0;
  private client: Client;
  private call: ClientDuplexStream<Uplink, Downlink> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private reconnect: NodeJS.Timeout | null = null;
  /** Streams that ended (status code name or 'end'), in order. */
  readonly streamEnds: string[] = [];

  constructor(
    address: string,
    readonly deviceId: string,
    /** One event every intervalMs (100: 10/s). */
    private readonly intervalMs = 100,
  ) {
    this.client = new Client(address, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  }

  start(): this {
    this.open();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    return this;
  }

  private open(): void {
    const md = new Metadata();
    md.set('x-device-id', this.deviceId);
    const call = this.client.makeBidiStreamRequest('/stratus.v1.DeviceGateway/Connect', codecs.Uplink.serialize, codecs.Downlink.deserialize, md);
    this.call = call;
    call.on('data', (d: Downlink) => this.onDownlink(d));
    const ended = (why: string) => {
      if (this.call !== call) return;
      this.call = null;
      this.streamEnds.push(why);
      if (this.timer !== null) this.reconnect = setTimeout(() => this.open(), 500);
    };
    call.on('error', (err: ServiceError) => ended(String(err.code)));
    call.on('end', () => ended('end'));
  }

  private tick(): void {
    if (this.call === null) return;
    const seq = ++this.seq;
    this.sent.push({ seq, atMs: performance.now(), ackMs: null, rejected: null });
    this.call.write({ events: [{ deviceId: this.deviceId, seq, type: 'sq', value: seq, payload: new Uint8Array(0), sentAtUs: 0 }] });
  }

  private onDownlink(d: Downlink): void {
    const now = performance.now();
    for (const r of d.rejects ?? []) {
      const s = this.find(r.seq);
      if (s !== undefined && s.ackMs === null) s.rejected = r.code;
    }
    const acked = d.ackedSeq ?? 0;
    while (this.firstUnacked < this.sent.length && this.sent[this.firstUnacked]!.seq <= acked) {
      const s = this.sent[this.firstUnacked++]!;
      if (s.ackMs === null && s.rejected === null) s.ackMs = now - s.atMs;
    }
  }

  private find(seq: number): Sent | undefined {
    // seqs are consecutive from 1 in `sent`.
    return this.sent[seq - 1];
  }

  /** Marks for windows: performance.now(). */
  now(): number {
    return performance.now();
  }

  /** Whether every event sent in [fromMs, toMs) is acked or rejected. */
  settled(fromMs: number, toMs: number): boolean {
    return this.inWindow(fromMs, toMs).every((s) => s.ackMs !== null || s.rejected !== null);
  }

  private inWindow(fromMs: number, toMs: number): Sent[] {
    return this.sent.filter((s) => s.atMs >= fromMs && s.atMs < toMs);
  }

  /** Figures over the events sent in [fromMs, toMs); unacked ones count with the latency they have so far. */
  window(fromMs: number, toMs: number): CanaryWindow {
    const now = performance.now();
    const w = this.inWindow(fromMs, toMs);
    const lat = w.filter((s) => s.rejected === null).map((s) => s.ackMs ?? now - s.atMs).sort((a, b) => a - b);
    const q = (p: number) => (lat.length === 0 ? 0 : lat[Math.min(lat.length - 1, Math.ceil(p * lat.length) - 1)]!);
    return {
      sent: w.length,
      acked: w.filter((s) => s.ackMs !== null).length,
      unacked: w.filter((s) => s.ackMs === null && s.rejected === null).length,
      rejected: w.filter((s) => s.rejected !== null).length,
      p50Ms: q(0.5),
      p99Ms: q(0.99),
      maxMs: lat.at(-1) ?? 0,
    };
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    if (this.reconnect !== null) clearTimeout(this.reconnect);
    this.call?.cancel();
    this.call = null;
    this.client.close();
  }
}
