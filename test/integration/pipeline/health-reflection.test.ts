/** grpc.health.v1 and server reflection: what grpcurl, ghz and Postman rely on. */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { credentials, loadPackageDefinition, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { after, before, test } from 'node:test';
import { testConfig } from '../../helpers/config.js';
import { startPipeline, type TestPipeline } from '../../helpers/pipeline.js';

const require = createRequire(import.meta.url);
const config = testConfig({ 'kafka-partitions': '1' });
let pipeline: TestPipeline;
let address: string;
before(async () => {
  pipeline = await startPipeline(config, ['gw-health']);
  address = `127.0.0.1:${pipeline.gateways[0]!.port}`;
});
after(() => pipeline.stop());

type Ctor = new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => Client & Record<string, (...a: unknown[]) => unknown>;

test('health: SERVING for the server and each service, NOT_FOUND for an unknown one', { timeout: 20_000 }, async () => {
  const pkg = loadPackageDefinition(loadSync(healthProtoPath, { enums: String })) as unknown as { grpc: { health: { v1: { Health: Ctor } } } };
  const client = new pkg.grpc.health.v1.Health(address, credentials.createInsecure());
  const check = (service: string) =>
    new Promise<{ status: string } | ServiceError>((resolve) => (client.Check as (r: object, cb: (e: ServiceError | null, r: { status: string }) => void) => void)({ service }, (e, r) => resolve(e ?? r)));
  for (const s of ['', 'stratus.v1.DeviceGateway', 'nimbus.NimbusService', 'event.EventService', 'data_nexus.MetricsService']) assert.deepEqual(await check(s), { status: 'SERVING' });
  assert.equal(((await check('nope.Service')) as ServiceError).code, 5 /* NOT_FOUND */);
  client.close();
});

test('reflection lists every service, without proto files on the client', { timeout: 20_000 }, async () => {
  const reflectionProto = join(require.resolve('@grpc/reflection/package.json'), '..', 'build', 'proto', 'grpc', 'reflection', 'v1', 'reflection.proto');
  const pkg = loadPackageDefinition(loadSync(reflectionProto)) as unknown as { grpc: { reflection: { v1: { ServerReflection: Ctor } } } };
  const client = new pkg.grpc.reflection.v1.ServerReflection(address, credentials.createInsecure());
  const call = (client.ServerReflectionInfo as () => NodeJS.ReadWriteStream & { write(o: object): boolean; end(): void })();
  const names = await new Promise<string[]>((resolve, reject) => {
    call.on('data', (r: { listServicesResponse?: { service: { name: string }[] } }) => resolve((r.listServicesResponse?.service ?? []).map((s) => s.name).sort()));
    call.on('error', reject);
    call.write({ listServices: '' });
  });
  call.end();
  assert.deepEqual(names, ['data_nexus.MetricsService', 'event.EventService', 'grpc.health.v1.Health', 'nimbus.NimbusService', 'stratus.v1.DeviceGateway']);
  client.close();
});
