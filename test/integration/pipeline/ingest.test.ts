/** Ingest (client stream), IngestBatch and the Nimbus-compatible service, through the real pipeline. */
import assert from 'node:assert/strict';
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { after, before, test } from 'node:test';
import { codecs, type BatchAck, type IngestSummary } from '../../../src/gateway/protocol.js';
import type { Gateway } from '../../../src/gateway/gateway.js';
import { testConfig } from '../../helpers/config.js';
import { TestDevice } from '../../helpers/device.js';
import { startPipeline, type TestPipeline } from '../../helpers/pipeline.js';

const config = testConfig({ 'kafka-partitions': '2' });
let pipeline: TestPipeline;
let gateway: Gateway;
before(async () => {
  pipeline = await startPipeline(config, ['gw-ingest']);
  gateway = pipeline.gateways[0]!;
});
after(() => pipeline.stop());

test('IngestBatch answers after the accepted events are durable, with ids and per-event rejects; the results reach the device later', { timeout: 60_000 }, async () => {
  const client = new Client(`127.0.0.1:${gateway.port}`, credentials.createInsecure());
  const ack = await new Promise<BatchAck>((resolve, reject) =>
    client.makeUnaryRequest('/stratus.v1.DeviceGateway/IngestBatch', codecs.EventBatch.serialize, codecs.BatchAck.deserialize, {
      events: [
        { deviceId: 'batch-1', seq: 1, type: 'sq', value: 3, payload: Buffer.alloc(0), sentAtUs: 1 },
        { deviceId: 'batch-1', seq: 2, type: 'sq', value: 4, payload: Buffer.alloc(0), sentAtUs: 2 },
        { deviceId: 'batch-2', seq: 1, type: 'nope', value: 1, payload: Buffer.alloc(0), sentAtUs: 3 },
        { deviceId: '', seq: 1, type: 'sq', value: 1, payload: Buffer.alloc(0), sentAtUs: 4 },
      ],
    }, (err: ServiceError | null, res?: BatchAck) => (err ? reject(err) : resolve(res!))),
  );
  assert.equal(ack.accepted, 2);
  assert.deepEqual(ack.eventIds, ['batch-1/1', 'batch-1/2']);
  assert.deepEqual(ack.rejects.map((r) => r.code), ['UNKNOWN_TYPE', 'DEVICE_MISMATCH']);
  client.close();
  // The device picks its results up from its buffer when it connects.
  const d = new TestDevice('batch-1').connect(`127.0.0.1:${gateway.port}`);
  await d.until(() => d.results.length === 2, 30_000, 'buffered results');
  assert.deepEqual(d.results.map((r) => [r.seq, r.value]), [[1, 9], [2, 16]]);
  d.close();
});

test('Ingest (client stream) counts accepted and rejected and answers when all are durable', { timeout: 60_000 }, async () => {
  const client = new Client(`127.0.0.1:${gateway.port}`, credentials.createInsecure());
  let done!: (v: IngestSummary) => void;
  let fail!: (e: Error) => void;
  const summary = new Promise<IngestSummary>((res, rej) => ((done = res), (fail = rej)));
  const call = client.makeClientStreamRequest('/stratus.v1.DeviceGateway/Ingest', codecs.Event.serialize, codecs.IngestSummary.deserialize, (err: ServiceError | null, res?: IngestSummary) => (err ? fail(err) : done(res!)));
  for (let seq = 1; seq <= 2000; seq++) call.write({ deviceId: `ing-${seq % 10}`, seq: Math.ceil(seq / 10), type: 'echo', value: seq, payload: Buffer.alloc(0), sentAtUs: 0 });
  call.write({ deviceId: 'ing-0', seq: 1, type: 'echo', value: 0, payload: Buffer.alloc(0), sentAtUs: 0 }); // backwards
  call.write({ deviceId: 'ing-0', seq: 9999, type: 'echo', value: Number.NaN, payload: Buffer.alloc(0), sentAtUs: 0 });
  call.end();
  assert.deepEqual(await summary, { accepted: 2000, rejected: 2 });
  client.close();
});

// A Nimbus client built only from the seed's field list (no result_wide), as an old client has it.
const seed = protobuf.Root.fromJSON(({
  nested: {
    nimbus: {
      nested: {
        EventRequest: { fields: { event_name: { type: 'string', id: 1 }, number: { type: 'int32', id: 2 } } },
        EventResponse: { fields: { event_name: { type: 'string', id: 1 }, number: { type: 'int32', id: 2 }, result: { type: 'int32', id: 3 }, log: { type: 'LogEntry', id: 4 } } },
        LogEntry: { fields: { steps: { rule: 'repeated', type: 'TraceStep', id: 1 } } },
        TraceStep: {
          fields: {
            timestamp: { type: 'Timestamp', id: 1 },
            service_name: { type: 'string', id: 2 },
            instance_id: { type: 'string', id: 3 },
            method_name: { type: 'string', id: 4 },
            message: { type: 'string', id: 5 },
            metadata: { keyType: 'string', type: 'string', id: 6 },
          },
        },
        Timestamp: { fields: { seconds: { type: 'int64', id: 1 }, nanos: { type: 'int32', id: 2 } } },
      },
    },
  },
}) as unknown as protobuf.INamespace);
const Req = seed.lookupType('nimbus.EventRequest');
const Res = seed.lookupType('nimbus.EventResponse');

interface SeedResponse { event_name: string; number: number; result: number; log?: { steps: { service_name: string; message: string; metadata?: Record<string, string> }[] } }

function nimbusStream(clientId: string | null) {
  const client = new Client(`127.0.0.1:${gateway.port}`, credentials.createInsecure());
  const md = new Metadata();
  if (clientId !== null) md.set('client_id', clientId);
  const call = client.makeBidiStreamRequest(
    '/nimbus.NimbusService/ProcessEvent',
    (v: object) => Buffer.from(Req.encode(Req.fromObject(v)).finish()),
    (b: Buffer) => Res.toObject(Res.decode(b), { defaults: true, longs: Number }) as SeedResponse,
    md,
  );
  const responses: SeedResponse[] = [];
  let status: ServiceError | null = null;
  call.on('data', (r: SeedResponse) => responses.push(r));
  call.on('error', (e: ServiceError) => (status = e));
  return { client, call, responses, status: () => status };
}

async function waitFor(pred: () => boolean, ms: number, what: string) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('Nimbus-compatible ProcessEvent: a seed client gets squares with a trace of the hops; overflow is explicit, not wrapped', { timeout: 60_000 }, async () => {
  const s = nimbusStream('legacy-1');
  const numbers = [0, 1, -7, 46340, 46341, 2147483647];
  for (const n of numbers) s.call.write({ event_name: `e${n}`, number: n });
  await waitFor(() => s.responses.length === numbers.length, 30_000, 'responses');
  assert.deepEqual(s.responses.map((r) => [r.event_name, r.number, r.result]), [
    ['e0', 0, 0], ['e1', 1, 1], ['e-7', -7, 49], ['e46340', 46340, 2147395600], ['e46341', 46341, 0], ['e2147483647', 2147483647, 0],
  ]);
  const steps = s.responses[2]!.log!.steps;
  assert.equal(steps.length, 3);
  assert.ok(steps.every((st) => st.service_name === 'stratus-gateway'));
  const overflow = s.responses[4]!.log!.steps.at(-1)!;
  assert.equal(overflow.metadata?.error, 'RESULT_OUT_OF_RANGE');
  assert.match(overflow.message, /2147488281 does not fit int32/);
  s.call.end();
  s.client.close();

  const anonymous = nimbusStream(null);
  await waitFor(() => anonymous.status() !== null, 10_000, 'refusal');
  assert.equal(anonymous.status()!.code, 3);
  assert.match(anonymous.status()!.details, /client_id/);
  anonymous.client.close();
});

test('Nimbus: results produced while the client reconnects reach its next stream (the Go system dropped them)', { timeout: 60_000 }, async () => {
  const first = nimbusStream('legacy-2');
  for (let n = 1; n <= 50; n++) first.call.write({ event_name: 'x', number: n });
  // Half-close at once: the gateway ends the call when the 50 are durable, usually before their
  // results exist, so most results are produced while the client is away.
  first.call.end();
  await new Promise<void>((r) => first.call.on('status', () => r()));
  first.client.close();
  const second = nimbusStream('legacy-2');
  for (let n = 51; n <= 60; n++) second.call.write({ event_name: 'y', number: n });
  await waitFor(() => second.responses.length + first.responses.length >= 60, 30_000, 'every result');
  const all = [...first.responses, ...second.responses].map((r) => r.number).sort((a, b) => a - b);
  assert.deepEqual(all, Array.from({ length: 60 }, (_, i) => i + 1));
  second.call.end();
  second.client.close();
});

test('malformed protobuf ends that call with a status; the server and other calls carry on', { timeout: 30_000 }, async () => {
  const client = new Client(`127.0.0.1:${gateway.port}`, credentials.createInsecure());
  const err = await new Promise<ServiceError>((resolve) => {
    client.makeUnaryRequest('/stratus.v1.DeviceGateway/IngestBatch', (b: Buffer) => b, codecs.BatchAck.deserialize, Buffer.from([0x0a, 0xff, 0xff, 0x01]), (e: ServiceError | null) => resolve(e!));
  });
  assert.ok(err !== null);
  assert.equal(err.code, 13 /* INTERNAL: grpc-js's answer to a request it cannot deserialize */);
  client.close();
  const d = new TestDevice('after-garbage').connect(`127.0.0.1:${gateway.port}`);
  d.send([{ seq: 1, type: 'sq', value: 12 }]);
  await d.until(() => d.results.length === 1, 20_000, 'a result');
  assert.equal(d.results[0]!.value, 144);
  d.close();
});
