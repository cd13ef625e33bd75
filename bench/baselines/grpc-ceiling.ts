/**
 * The ceiling for the gateway's durable ack: a bare grpc-js server speaking the same
 * stratus.v1.DeviceGateway/Connect contract, with the same codecs, that acknowledges every uplink
 * the moment it is decoded (acked_seq = its highest seq) and does nothing else: no validation, no
 * Kafka, no Redis. What Stratus adds on top of gRPC itself is the distance to this server.
 *
 *   node dist/bench/baselines/grpc-ceiling.js [--port N]    prints "listening on 127.0.0.1:PORT"
 */
import { parseArgs } from 'node:util';
import { Metadata, Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { DeviceGatewayService, type Downlink, type Uplink } from '../../src/gateway/protocol.js';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' } } });
// The same server options as the gateway where they bear on throughput (message size limits).
const server = new Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });
server.addService(DeviceGatewayService, {
  Connect(call: ServerDuplexStream<Uplink, Downlink>) {
    call.sendMetadata(new Metadata());
    call.on('data', (u: Uplink) => {
      let top = 0;
      for (const e of u.events) if (e.seq > top) top = e.seq;
      call.write({ ackedSeq: top });
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
