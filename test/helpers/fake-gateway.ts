/**
 * A stand-in DeviceGateway for load-generator tests: a real grpc-js server speaking the Stratus
 * Connect contract, with no Kafka behind it, that misbehaves on purpose and counts exactly what it
 * did, so the load generator's report can be checked against the truth:
 * - pause(ms): holds every uplink for ms, then answers them all (a stalled server);
 * - stopReading(ms): stops reading every open stream for ms (HTTP/2 flow control pushes back on
 *   the client), then reads again;
 * - dropEvery / repeatEvery / wrongEvery: for seqs divisible by N, never send the result / send
 *   it twice / send a wrong value (each counted, drops win over the others);
 * - tls: serves TLS with the given key and certificate;
 * - tokenSecret: checks `authorization: Bearer` on every stream (UNAUTHENTICATED otherwise) and
 *   that the token's device is the stream's device.
 * Results are `sq` results (value squared), in seq order per device, sent with the ack.
 */
import { Metadata, Server, ServerCredentials, status, type ServerDuplexStream } from '@grpc/grpc-js';
import { verifyToken } from '../../src/auth/token.js';
import { DeviceGatewayService, type Downlink, type Result, type Uplink } from '../../src/gateway/protocol.js';

export interface FakeGatewayOptions {
  dropEvery?: number;
  repeatEvery?: number;
  wrongEvery?: number;
  tls?: { key: Buffer; cert: Buffer };
  tokenSecret?: string;
}

export interface FakeGateway {
  address: string;
  port: number;
  counts: { streams: number; events: number; dropped: number; repeated: number; wrong: number; authRejected: number; tokensOk: number };
  pause(ms: number): void;
  stopReading(ms: number): void;
  stop(): Promise<void>;
}

const divides = (n: number | undefined, seq: number) => n !== undefined && seq % n === 0;

export async function startFakeGateway(opts: FakeGatewayOptions = {}): Promise<FakeGateway> {
  const counts = { streams: 0, events: 0, dropped: 0, repeated: 0, wrong: 0, authRejected: 0, tokensOk: 0 };
  let pausedUntil = 0;
  const held: (() => void)[] = [];
  const open = new Set<ServerDuplexStream<Uplink, Downlink>>();
  const server = new Server();
  // Ingest and IngestBatch are left out: grpc-js answers them UNIMPLEMENTED.
  server.addService(DeviceGatewayService, {
    Connect(call: ServerDuplexStream<Uplink, Downlink>) {
      const deviceId = String(call.metadata.get('x-device-id')[0] ?? '');
      if (opts.tokenSecret !== undefined) {
        const auth = String(call.metadata.get('authorization')[0] ?? '');
        const check = auth.startsWith('Bearer ') ? verifyToken(opts.tokenSecret, auth.slice(7)) : null;
        if (check === null || !check.ok || check.deviceId !== deviceId) {
          counts.authRejected++;
          call.emit('error', { code: status.UNAUTHENTICATED, details: 'bad token' });
          return;
        }
        counts.tokensOk++;
      }
      counts.streams++;
      open.add(call);
      call.on('close', () => open.delete(call));
      call.sendMetadata(new Metadata());
      const answer = (u: Uplink) => {
        let acked = 0;
        const results: Result[] = [];
        for (const e of u.events) {
          counts.events++;
          acked = Math.max(acked, e.seq);
          if (divides(opts.dropEvery, e.seq)) {
            counts.dropped++;
            continue;
          }
          let value = e.value * e.value;
          if (divides(opts.wrongEvery, e.seq)) {
            counts.wrong++;
            value += 1;
          }
          const r: Result = { seq: e.seq, type: e.type, value, payload: Buffer.alloc(0), sentAtUs: 0, processedAtUs: 0 };
          results.push(r);
          if (divides(opts.repeatEvery, e.seq)) {
            counts.repeated++;
            results.push(r);
          }
        }
        call.write({ ackedSeq: acked, results });
      };
      call.on('data', (u: Uplink) => {
        if (Date.now() < pausedUntil) held.push(() => answer(u));
        else answer(u);
      });
      call.on('end', () => call.end());
      call.on('error', () => {});
    },
  });
  const creds = opts.tls === undefined ? ServerCredentials.createInsecure() : ServerCredentials.createSsl(null, [{ private_key: opts.tls.key, cert_chain: opts.tls.cert }]);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
  return {
    address: `127.0.0.1:${port}`,
    port,
    counts,
    pause(ms) {
      pausedUntil = Date.now() + ms;
      setTimeout(() => {
        for (const f of held.splice(0)) f();
      }, ms);
    },
    stopReading(ms) {
      const stopped = [...open];
      for (const c of stopped) c.pause();
      setTimeout(() => {
        for (const c of stopped) c.resume();
      }, ms);
    },
    stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}
