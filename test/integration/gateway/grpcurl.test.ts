/**
 * The real grpcurl (test/helpers/go-tools.ts builds it at a pinned version) against a real gateway,
 * with no .proto files on its side: everything it knows comes from server reflection
 * (src/gateway/reflection.ts). What a newcomer types from README works: list, describe every
 * service and message, IngestBatch with the .proto's field names, a health check, and a nimbus
 * stream whose responses carry a google.protobuf.Timestamp and a map.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import protobuf from 'protobufjs';
import { issueToken } from '../../../src/auth/token.js';
import { PROJECT_ROOT } from '../../../src/config.js';
import { buildFileDescriptors, HEALTH_PROTO, projectProto, type FileDescriptor } from '../../../src/gateway/reflection.js';
import { testConfig } from '../../helpers/config.js';
import { grpcurlPath } from '../../helpers/go-tools.js';
import { writeShapesProto } from '../../helpers/shapes-proto.js';
import { startPipeline, type TestPipeline } from '../../helpers/pipeline.js';

const SERVICES = ['data_nexus.MetricsService', 'event.EventService', 'grpc.health.v1.Health', 'nimbus.NimbusService', 'stratus.v1.DeviceGateway'];

const config = testConfig({ 'kafka-partitions': '1' });
let pipeline: TestPipeline;
let address: string;
let grpcurl: string;

// A cold build (empty Go caches) took 52-78 s on a shared 2-core machine; later runs find it built.
before(async () => {
  grpcurl = await grpcurlPath();
  pipeline = await startPipeline(config, ['gw-grpcurl']);
  address = `127.0.0.1:${pipeline.gateways[0]!.port}`;
}, { timeout: 300_000 });
after(() => pipeline?.stop(), { timeout: 60_000 });

type Message = FileDescriptor['message_type'][number];

interface Run { code: number | null; stdout: string; stderr: string }

/** grpcurl with `args` before the address and `call` (a verb or a method) after it. */
function run(args: string[], ...call: string[]): Promise<Run> {
  return runGrpcurl(['-plaintext', '-connect-timeout', '10', ...args, address, ...call]);
}

function runGrpcurl(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(grpcurl, args, { timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr }));
  });
}

async function ok(args: string[], ...call: string[]): Promise<string> {
  const r = await run(args, ...call);
  assert.equal(r.code, 0, `grpcurl ${[...args, ...call].join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** Every .proto under proto/ (relative names), the files the gateway serves with health.proto. */
function projectProtoFiles(dir = join(PROJECT_ROOT, 'proto')): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.proto'))
    .map((e) => relative(join(PROJECT_ROOT, 'proto'), join(e.parentPath, e.name)));
}

test('list: the five services', { timeout: 30_000 }, async () => {
  assert.deepEqual((await ok([], 'list')).trim().split('\n').sort(), SERVICES);
});

test('describe: each service, with every method', { timeout: 60_000 }, async () => {
  const methods: Record<string, string[]> = {
    'stratus.v1.DeviceGateway': [
      'rpc Connect ( stream .stratus.v1.Uplink ) returns ( stream .stratus.v1.Downlink );',
      'rpc Ingest ( stream .stratus.v1.Event ) returns ( .stratus.v1.IngestSummary );',
      'rpc IngestBatch ( .stratus.v1.EventBatch ) returns ( .stratus.v1.BatchAck );',
    ],
    'nimbus.NimbusService': ['rpc ProcessEvent ( stream .nimbus.EventRequest ) returns ( stream .nimbus.EventResponse );'],
    'event.EventService': ['rpc StreamEvents ( stream .event.Event ) returns ( .event.StreamSummary );'],
    'data_nexus.MetricsService': [
      'rpc IngestMetric ( .data_nexus.Metric ) returns ( .data_nexus.IngestResponse );',
      'rpc IngestMetrics ( .data_nexus.BatchMetrics ) returns ( .data_nexus.BatchIngestResponse );',
    ],
    'grpc.health.v1.Health': [
      'rpc Check ( .grpc.health.v1.HealthCheckRequest ) returns ( .grpc.health.v1.HealthCheckResponse );',
      'rpc List ( .grpc.health.v1.HealthListRequest ) returns ( .grpc.health.v1.HealthListResponse );',
      'rpc Watch ( .grpc.health.v1.HealthCheckRequest ) returns ( stream .grpc.health.v1.HealthCheckResponse );',
    ],
  };
  assert.deepEqual(Object.keys(methods).sort(), SERVICES);
  for (const [service, rpcs] of Object.entries(methods)) {
    const out = await ok([], 'describe', service);
    const shortName = service.slice(service.lastIndexOf('.') + 1);
    assert.equal(out, `${service} is a service:\nservice ${shortName} {\n${rpcs.map((r) => `  ${r}\n`).join('')}}\n`);
  }
});

test('describe: every message of every served file, the well-known types they import too', { timeout: 120_000 }, async () => {
  const files = buildFileDescriptors([...projectProtoFiles().map(projectProto), HEALTH_PROTO]);
  const names: string[] = [];
  const collect = (prefix: string, messages: readonly Message[]) => {
    for (const m of messages) {
      names.push(`${prefix}${m.name}`);
      collect(`${prefix}${m.name}.`, m.nested_type.filter((n) => n.options?.map_entry !== true));
    }
  };
  for (const f of files.values()) collect(`${f.package}.`, f.message_type);
  // Not a check of the builder (the unit test does that): a floor, so an empty list cannot pass.
  for (const expected of ['stratus.v1.Event', 'nimbus.TraceStep', 'google.protobuf.Timestamp', 'data_nexus.Metric', 'event.Event', 'grpc.health.v1.HealthListResponse']) {
    assert.ok(names.includes(expected), expected);
  }
  for (const name of names) assert.match(await ok([], 'describe', name), new RegExp(`^${name.replaceAll('.', '\\.')} is a message:\n`));
});

test('describe: the .proto field names, the Timestamp and the map as written', { timeout: 30_000 }, async () => {
  assert.equal(
    await ok([], 'describe', 'nimbus.TraceStep'),
    `nimbus.TraceStep is a message:
message TraceStep {
  .google.protobuf.Timestamp timestamp = 1;
  string service_name = 2;
  string instance_id = 3;
  string method_name = 4;
  string message = 5;
  map<string, string> metadata = 6;
}
`,
  );
  assert.equal(
    await ok([], 'describe', 'stratus.v1.Event'),
    `stratus.v1.Event is a message:
message Event {
  string device_id = 1;
  uint64 seq = 2;
  string type = 3;
  double value = 4;
  bytes payload = 5;
  int64 sent_at_us = 6;
}
`,
  );
  assert.equal(
    await ok([], 'describe', 'data_nexus.Metric'),
    `data_nexus.Metric is a message:
message Metric {
  string name = 1;
  double value = 2;
  string type = 3;
  int64 timestamp = 4;
  map<string, string> labels = 5;
}
`,
  );
});

test('IngestBatch with the .proto names (device_id) is acknowledged; camelCase (deviceId) too; the answer is in JSON names', { timeout: 60_000 }, async () => {
  const device = `grpcurl-${randomUUID()}`;
  const snake = { events: [{ device_id: device, seq: 1, type: 'sq', value: 3, sent_at_us: '1700000000000000' }] };
  assert.deepEqual(JSON.parse(await ok(['-d', JSON.stringify(snake)], 'stratus.v1.DeviceGateway/IngestBatch')), { accepted: 1, eventIds: [`${device}/1`] });
  const camel = { events: [{ deviceId: device, seq: 2, type: 'sq', value: 4, sentAtUs: '1700000000000001' }] };
  assert.deepEqual(JSON.parse(await ok(['-d', JSON.stringify(camel)], 'stratus.v1.DeviceGateway/IngestBatch')), { accepted: 1, eventIds: [`${device}/2`] });
  // A reject comes back field by field: protojson prints uint64 as a string and the JSON name lastSeq.
  const again = JSON.parse(await ok(['-d', JSON.stringify(snake)], 'stratus.v1.DeviceGateway/IngestBatch')) as { rejects: { seq: string; code: string; lastSeq: string }[] };
  assert.deepEqual(again.rejects.map((r) => [r.seq, r.code, r.lastSeq]), [['1', 'DUPLICATE', '2']]);
  // A name the .proto does not have is refused by grpcurl itself, before any call.
  const wrong = await run(['-d', JSON.stringify({ events: [{ device: device, seq: 3 }] })], 'stratus.v1.DeviceGateway/IngestBatch');
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /message type stratus\.v1\.Event has no known field named device\n/);
});

test('health: SERVING for the server and each service', { timeout: 60_000 }, async () => {
  assert.deepEqual(JSON.parse(await ok([], 'grpc.health.v1.Health/Check')), { status: 'SERVING' });
  for (const service of SERVICES.filter((s) => s !== 'grpc.health.v1.Health')) {
    assert.deepEqual(JSON.parse(await ok(['-d', JSON.stringify({ service })], 'grpc.health.v1.Health/Check')), { status: 'SERVING' });
  }
});

test('nimbus ProcessEvent: the response decodes with its Timestamp and map (stdin held open until it comes)', { timeout: 60_000 }, async (t) => {
  // A nimbus stream ends once its requests are durable when the client half-closes (the results
  // wait for its next stream), so the request goes in on stdin, which stays open until the answer.
  const child = spawn(grpcurl, ['-plaintext', '-connect-timeout', '10', '-H', `client_id: grpcurl-${randomUUID()}`, '-d', '@', address, 'nimbus.NimbusService/ProcessEvent'], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.after(() => child.kill()); // a no-op once it has exited; else the gateway would wait on its stream
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const answered = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
      if (stdout.endsWith('\n}\n')) resolve(); // grpcurl prints each response as indented JSON
    });
    void exited.then((code) => reject(new Error(`grpcurl exited (${code}) before answering: ${stderr}`)));
  });
  child.stdin.write(JSON.stringify({ event_name: 'sq', number: 7 }));
  await answered;
  child.stdin.end();
  assert.equal(await exited, 0, stderr);
  const response = JSON.parse(stdout) as { eventName: string; number: number; result: number; resultWide: string; log: { steps: { timestamp: string; metadata?: Record<string, string> }[] } };
  assert.deepEqual([response.eventName, response.number, response.result, response.resultWide], ['sq', 7, 49, '49']);
  // protojson prints a Timestamp as RFC 3339: it decoded as google.protobuf.Timestamp.
  for (const s of response.log.steps) assert.match(s.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  assert.deepEqual(response.log.steps[0]!.metadata, { seq: '1' });
});

test('auth on: list, describe and health need no token; IngestBatch needs the device\'s bearer token', { timeout: 120_000 }, async (t) => {
  const secret = randomUUID() + randomUUID();
  const authed = await startPipeline(testConfig({ 'kafka-partitions': '1', 'auth-token-secret': secret }), ['gw-grpcurl-auth']);
  t.after(() => authed.stop());
  const at = `127.0.0.1:${authed.gateways[0]!.port}`;
  const grpcurlAt = async (args: string[], ...call: string[]) => runGrpcurl(['-plaintext', '-connect-timeout', '10', ...args, at, ...call]);
  const listed = await grpcurlAt([], 'list');
  assert.deepEqual([listed.code, listed.stdout.trim().split('\n').sort()], [0, SERVICES]);
  assert.equal((await grpcurlAt([], 'describe', 'nimbus.TraceStep')).code, 0);
  assert.equal((await grpcurlAt([], 'grpc.health.v1.Health/Check')).stdout, '{\n  "status": "SERVING"\n}\n');
  const device = `grpcurl-${randomUUID()}`;
  const batch = JSON.stringify({ events: [{ device_id: device, seq: 1, type: 'sq', value: 3 }] });
  const refused = await grpcurlAt(['-d', batch], 'stratus.v1.DeviceGateway/IngestBatch');
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /Code: Unauthenticated\n  Message: no "authorization: Bearer <token>" header; get a token with `stratus token issue --device ID`/);
  const bearer = `authorization: Bearer ${issueToken(secret, device, Math.floor(Date.now() / 1000) + 3600)}`;
  const acked = await grpcurlAt(['-H', bearer, '-d', batch], 'stratus.v1.DeviceGateway/IngestBatch');
  assert.equal(acked.code, 0, acked.stderr);
  assert.deepEqual(JSON.parse(acked.stdout), { accepted: 1, eventIds: [`${device}/1`] });
});

test('what proto/ does not use yet (oneofs, proto3 optional, enums, maps of messages and enums) passes grpcurl too, as a protoset', { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'stratus-grpcurl-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));

  // The descriptors reflection would serve, as a FileDescriptorSet: grpcurl -protoset runs them
  // through the same Go checks (protodesc) as descriptors it gets by reflection.
  const files = buildFileDescriptors(writeShapesProto(dir));
  const descriptorRoot = new protobuf.Root();
  descriptorRoot.loadSync(join(dirname(createRequire(import.meta.url).resolve('protobufjs/package.json')), 'google', 'protobuf', 'descriptor.proto'), { keepCase: true });
  const set = descriptorRoot.resolveAll().lookupType('google.protobuf.FileDescriptorSet');
  writeFileSync(join(dir, 'shapes.protoset'), set.encode(set.fromObject({ file: [...files.values()] })).finish());
  const described = await runGrpcurl(['-protoset', join(dir, 'shapes.protoset'), 'describe', 'shapes.v1.Shape']);
  assert.equal(described.code, 0, described.stderr);
  assert.equal(
    described.stdout,
    `shapes.v1.Shape is a message:
message Shape {
  oneof form {
    .shapes.v1.Shape.Point center = 1;
    string label_text = 2;
  }
  optional uint32 size_hint = 3;
  map<string, .shapes.v1.Shape.Point> points_by_name = 4;
  map<int32, .shapes.v1.Color> colors = 5;
  repeated int32 samples = 6 [packed = false];
  .shapes.v1.Shape.Kind kind = 7;
  .google.protobuf.Duration ttl = 8;
  message Point {
    sint32 x_pos = 1;
    sint32 y_pos = 2;
  }
  enum Kind {
    KIND_UNSET = 0;
    CIRCLE = 1;
  }
}
`,
  );
});
