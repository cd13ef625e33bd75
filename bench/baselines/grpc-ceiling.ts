/**
 * The ceiling for the gateway's durable ack: a bare grpc-js server speaking the same
 * stratus.v1.DeviceGateway/Connect contract, with the same codecs, that acknowledges every uplink
 * the moment it is decoded (acked_seq = its highest seq) and does nothing else: no validation, no
 * Kafka, no Redis. What Stratus adds on top of gRPC itself is the distance to this server.
 *
 * With --results it also answers each event's result (`sq`: value squared, payload echoed) in the
 * same Downlink, at once: the ceiling of a whole round trip through gRPC, with no pipeline behind.
 *
 *   node dist/bench/baselines/grpc-ceiling.js [--port N] [--results]    prints "listening on 127.0.0.1:PORT"
 */
import { parseArgs } from 'node:util';
import { Metadata, Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { DeviceGatewayService, type Downlink, type Uplink } from '../../src/gateway/protocol.js';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' }, results: { type: 'boolean', default: false } } });
const withResults = values.results === true;
// The same server options as the gateway where they bear on throughput (message size limits).
const server = new Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });
server.addService(DeviceGatewayService, {
  Connect(call: ServerDuplexStream<Uplink, Downlink>) {
    call.sendMetadata(new Metadata());
    call.on('data', (u: Uplink) => {
      let top = 0;
      for (const e of u.events) if (e.seq > top) top = e.seq;
      if (!withResults) {
        call.write({ ackedSeq: top });
        return;
      }
      const processedAtUs = Date.now() * 1000;
      call.write({ ackedSeq: top, results: u.events.map((e) => ({ seq: e.seq, type: e.type, value: (e.value ?? 0) * (e.value ?? 0), payload: e.payload, sentAtUs: e.sentAtUs, processedAtUs })) });
    });
    call.on('end', () => call.end());
    call.on('error', () => {});
  },
});
const port = await new Promise<number>((resolve, reject) =>
  server.bindAsync(`127.0.0.1:${values.port}`, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
);
process.stdout.write(`listening on 127.0.0.1:${port}\n`);
const stop = () => server.tryShutdown(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
