/**
 * A simulated device for tests: a real grpc-js client speaking DeviceGateway.Connect, keeping
 * every ack, result and reject it receives so tests can account for each (device, seq).
 */
import { Client, credentials, Metadata, type ChannelCredentials, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { codecs, type Downlink, type Event, type Reject, type Result, type Uplink } from '../../src/gateway/protocol.js';

export class TestDevice {
  ackedSeq = 0;
  readonly results: Result[] = [];
  readonly rejects: Reject[] = [];
  status: ServiceError | null = null;
  /** The response headers of the current stream (x-last-seq), once they came. */
  headers: Metadata | null = null;
  ended = false;
  private call: ClientDuplexStream<Uplink, Downlink> | null = null;
  private client: Client | null = null;
  private waiters: (() => void)[] = [];

  constructor(readonly deviceId: string) {}

  /**
   * `token`: sent as `authorization: Bearer`; `deviceHeader: false` leaves x-device-id out (the
   * token names the device); `creds`: TLS credentials (default plaintext); `ownConnection`: see below.
   */
  connect(address: string, opts: { cursor?: number; read?: boolean; token?: string; deviceHeader?: string | false; creds?: ChannelCredentials; ownConnection?: boolean } = {}): this {
    // ownConnection: a connection of its own rather than grpc-js's shared subchannel for the address
    // (a test of how connections spread over gateway shards).
    this.client = new Client(address, opts.creds ?? credentials.createInsecure(), opts.ownConnection === true ? { 'grpc.use_local_subchannel_pool': 1 } : {});
    const md = new Metadata();
    if (opts.deviceHeader !== false) md.set('x-device-id', opts.deviceHeader ?? this.deviceId);
    if (opts.token !== undefined) md.set('authorization', `Bearer ${opts.token}`);
    if (opts.cursor !== undefined) md.set('x-last-result-seq', String(opts.cursor));
    this.ended = false;
    this.status = null;
    const call = this.client.makeBidiStreamRequest('/stratus.v1.DeviceGateway/Connect', codecs.Uplink.serialize, codecs.Downlink.deserialize, md);
    this.call = call;
    this.headers = null;
    call.on('metadata', (md: Metadata) => {
      this.headers = md;
      this.wake();
    });
    if (opts.read !== false) this.startReading();
    call.on('error', (err: ServiceError) => {
      this.status = err;
      this.ended = true;
      this.wake();
    });
    call.on('end', () => {
      this.ended = true;
      this.wake();
    });
    return this;
  }

  /** Reads downlinks (a device connected with read: false starts reading late). */
  startReading(): void {
    this.call!.on('data', (d: Downlink) => {
      if (d.ackedSeq && d.ackedSeq > this.ackedSeq) this.ackedSeq = d.ackedSeq;
      for (const r of d.results ?? []) this.results.push(r);
      for (const r of d.rejects ?? []) this.rejects.push(r);
      this.wake();
    });
  }

  send(events: Partial<Event>[]): boolean {
    return this.call!.write({ events: events as Event[] });
  }

  /** The seq of the last result received: the cursor a reconnect sends. */
  get lastResultSeq(): number {
    return this.results.length === 0 ? 0 : this.results[this.results.length - 1]!.seq;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  async until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`${this.deviceId}: timed out waiting for ${what} (acked ${this.ackedSeq}, results ${this.results.length}, status ${this.status?.code})`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }

  close(): void {
    this.call?.cancel();
    this.client?.close();
    this.call = null;
  }
}
