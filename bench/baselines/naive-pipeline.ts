/**
 * The whole round trip done the naive way, as the systems Stratus replaces did it: one process,
 * the same device contract (stratus.v1.DeviceGateway/Connect, so the load generator drives it
 * unchanged), the same libraries (grpc-js, @confluentinc/kafka-javascript through its
 * KafkaJS-style promise API, ioredis), and every step awaited one at a time:
 * - gateway: each event of a stream is produced and its delivery awaited before the next, then
 *   acknowledged; the device's location and status are SET in Redis on connect;
 * - processor: eachMessage, one event at a time: compute `sq`, await the produce of its result;
 * - forwarder: eachMessage, one result at a time: GET the device's status, GET its location,
 *   await a PUBLISH to that gateway's channel;
 * - the subscriber writes each result down the device's stream.
 * No sleeps and no artificial limits: library defaults, JSON on the wire between stages.
 *
 *   node dist/bench/baselines/naive-pipeline.js --prefix P [--ready joined|listening]
 *
 * Prints "listening on 127.0.0.1:PORT" once both consumers own partitions (--ready joined, the
 * default) or as soon as the gRPC port is bound (--ready listening: the consumers join in the
 * background and read the fresh topics from the beginning). Progress goes to stderr.
 */
import { parseArgs } from 'node:util';
import { Metadata, Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import KafkaJavascript from '@confluentinc/kafka-javascript';
import { Redis } from 'ioredis';
import { DeviceGatewayService, type Downlink, type Uplink } from '../../src/gateway/protocol.js';

const { values } = parseArgs({ options: { ready: { type: 'string', default: 'joined' }, prefix: { type: 'string', default: 'naive.' }, brokers: { type: 'string', default: '127.0.0.1:9092' }, 'redis-port': { type: 'string', default: '6379' } } });
const prefix = values.prefix!;
const eventsTopic = `${prefix}events`;
const resultsTopic = `${prefix}results`;
const instance = `naive-${process.pid}`;
const { Kafka } = KafkaJavascript.KafkaJS;
const kafka = new Kafka({ kafkaJS: { brokers: values.brokers!.split(','), logLevel: 0 } });

const admin = kafka.admin();
await admin.connect();
await admin.createTopics({ topics: [eventsTopic, resultsTopic].map((topic) => ({ topic, numPartitions: 12, replicationFactor: 1 })) });
await admin.disconnect();
process.stderr.write(`naive: topics ${eventsTopic}, ${resultsTopic} created\n`);

const producer = kafka.producer({ kafkaJS: { acks: -1, idempotent: true } });
await producer.connect();
const redis = new Redis({ port: Number(values['redis-port']) });
const sub = new Redis({ port: Number(values['redis-port']) });

interface Wire { deviceId: string; seq: number; value: number }
const calls = new Map<string, ServerDuplexStream<Uplink, Downlink>>();

const server = new Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });
server.addService(DeviceGatewayService, {
  Connect(call: ServerDuplexStream<Uplink, Downlink>) {
    const deviceId = String(call.metadata.get('x-device-id')[0] ?? '');
    calls.set(deviceId, call);
    let chain = Promise.all([redis.set(`${prefix}loc:${deviceId}`, instance), redis.set(`${prefix}status:${deviceId}`, 'online')]).then(() => {
      call.sendMetadata(new Metadata());
    });
    call.on('data', (u: Uplink) => {
      chain = chain.then(async () => {
        for (const e of u.events) {
          const w: Wire = { deviceId, seq: Number(e.seq), value: e.value ?? 0 };
          await producer.send({ topic: eventsTopic, messages: [{ key: deviceId, value: JSON.stringify(w) }] });
          call.write({ ackedSeq: e.seq });
        }
      }).catch(() => {
        call.destroy();
      });
    });
    const gone = () => {
      if (calls.get(deviceId) === call) calls.delete(deviceId);
    };
    call.on('end', () => {
      gone();
      call.end();
    });
    call.on('error', gone);
    call.on('cancelled', gone);
  },
});

const processor = kafka.consumer({ kafkaJS: { groupId: `${prefix}processor`, fromBeginning: true } });
await processor.connect();
await processor.subscribe({ topics: [eventsTopic] });
await processor.run({
  eachMessage: async ({ message }) => {
    const w = JSON.parse(message.value!.toString()) as Wire;
    await producer.send({ topic: resultsTopic, messages: [{ key: w.deviceId, value: JSON.stringify({ ...w, value: w.value * w.value }) }] });
  },
});

const forwarder = kafka.consumer({ kafkaJS: { groupId: `${prefix}forwarder`, fromBeginning: true } });
process.stderr.write('naive: processor running\n');

await forwarder.connect();
await forwarder.subscribe({ topics: [resultsTopic] });
await forwarder.run({
  eachMessage: async ({ message }) => {
    const r = JSON.parse(message.value!.toString()) as Wire;
    const status = await redis.get(`${prefix}status:${r.deviceId}`);
    const location = await redis.get(`${prefix}loc:${r.deviceId}`);
    if (status === null || location === null) return;
    await redis.publish(`${prefix}gw:${location}`, message.value!.toString());
  },
});

process.stderr.write('naive: forwarder running\n');

await sub.subscribe(`${prefix}gw:${instance}`);
sub.on('message', (_channel: string, text: string) => {
  const r = JSON.parse(text) as Wire;
  calls.get(r.deviceId)?.write({ results: [{ seq: r.seq, type: 'sq', value: r.value, payload: Buffer.alloc(0), sentAtUs: 0, processedAtUs: 0 }] });
});

const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
const joined = (async () => {
  while (processor.assignment().length === 0 || forwarder.assignment().length === 0) await new Promise((r) => setTimeout(r, 100));
  process.stderr.write('naive: consumers joined\n');
})();
if (values.ready !== 'listening') await joined;
process.stdout.write(`listening on 127.0.0.1:${port}\n`);

const stop = async () => {
  server.forceShutdown();
  await Promise.allSettled([processor.disconnect(), forwarder.disconnect(), producer.disconnect()]);
  const a = kafka.admin();
  await a.connect();
  await a.deleteTopics({ topics: [eventsTopic, resultsTopic] }).catch(() => {});
  await a.disconnect();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
  redis.disconnect();
  sub.disconnect();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
