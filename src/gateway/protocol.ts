/**
 * The gRPC services' message types and grpc-js service definitions, built from proto/ with
 * protobufjs at start-up. Serialization is protobufjs's generated encode/decode straight to and from
 * plain objects: no intermediate conversion on the hot path.
 *
 * 64-bit integers are JS numbers. protobufjs is told not to use Long, so a uint64 decodes to the
 * nearest double: every value up to 2^53-1 is exact, and anything larger decodes to >= 2^53, which
 * validation rejects (INVALID_SEQ) instead of silently rounding.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { ServiceDefinition } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { PROJECT_ROOT } from '../config.js';

// Numbers, not Long objects, for int64/uint64 (see above). Our protobufjs instance is ours alone:
// grpc-js's own proto-loader brings its own copy.
protobuf.util.Long = undefined as unknown as typeof protobuf.util.Long;
protobuf.configure();

export interface Event { deviceId: string; seq: number; type: string; value: number; payload: Uint8Array; sentAtUs: number }
export interface Uplink { events: Event[] }
export interface Result { seq: number; type: string; value: number; payload: Uint8Array; sentAtUs: number; processedAtUs: number }
export interface Reject { seq: number; code: string; message: string; lastSeq?: number }
export interface Downlink { ackedSeq?: number; results?: Result[]; rejects?: Reject[] }
export interface EventBatch { events: Event[] }
export interface BatchAck { accepted: number; rejects: Reject[]; eventIds: string[] }
export interface IngestSummary { accepted: number; rejected: number }

export interface EventRequest { eventName: string; number: number }
export interface TraceStep {
  timestamp: { seconds: number; nanos: number };
  serviceName: string;
  instanceId: string;
  methodName: string;
  message: string;
  metadata: Record<string, string>;
}
export interface EventResponse { eventName: string; number: number; result: number; log: { steps: TraceStep[] }; resultWide: number }

const require = createRequire(import.meta.url);

function loadRoot(): protobuf.Root {
  const root = new protobuf.Root();
  const protoDir = join(PROJECT_ROOT, 'proto');
  const common = join(require.resolve('protobufjs/package.json'), '..');
  root.resolvePath = (_origin, target) => (target.startsWith('google/protobuf/') ? join(common, target) : join(protoDir, target));
  root.loadSync(['stratus/v1/gateway.proto', 'nimbus/nimbus.proto'], { keepCase: false });
  root.resolveAll();
  return root;
}

export const root = loadRoot();

function codec<T>(name: string) {
  const type = root.lookupType(name);
  return {
    serialize: (value: T): Buffer => {
      const bytes = type.encode(value as object).finish();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
    // Defaults are materialised (empty strings, zeros, empty arrays) so callers never see undefined.
    deserialize: (bytes: Buffer): T => type.toObject(type.decode(bytes), { defaults: true, arrays: true, longs: Number, bytes: Buffer }) as T,
    /** Decodes without materialising defaults: the hot path; absent fields are undefined. */
    decodeRaw: (bytes: Buffer): T => type.decode(bytes) as unknown as T,
  };
}

export const codecs = {
  Event: codec<Event>('stratus.v1.Event'),
  Uplink: codec<Uplink>('stratus.v1.Uplink'),
  Downlink: codec<Downlink>('stratus.v1.Downlink'),
  EventBatch: codec<EventBatch>('stratus.v1.EventBatch'),
  BatchAck: codec<BatchAck>('stratus.v1.BatchAck'),
  IngestSummary: codec<IngestSummary>('stratus.v1.IngestSummary'),
  EventRequest: codec<EventRequest>('nimbus.EventRequest'),
  EventResponse: codec<EventResponse>('nimbus.EventResponse'),
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Codec = ReturnType<typeof codec<any>>;

function method(path: string, req: Codec, res: Codec, requestStream: boolean, responseStream: boolean) {
  return {
    path,
    requestStream,
    responseStream,
    requestSerialize: req.serialize,
    requestDeserialize: req.deserialize,
    responseSerialize: res.serialize,
    responseDeserialize: res.deserialize,
    originalName: path.slice(path.lastIndexOf('/') + 1),
  };
}

export const DeviceGatewayService = {
  Connect: method('/stratus.v1.DeviceGateway/Connect', codecs.Uplink, codecs.Downlink, true, true),
  Ingest: method('/stratus.v1.DeviceGateway/Ingest', codecs.Event, codecs.IngestSummary, true, false),
  IngestBatch: method('/stratus.v1.DeviceGateway/IngestBatch', codecs.EventBatch, codecs.BatchAck, false, false),
} as unknown as ServiceDefinition;

export const NimbusService = {
  ProcessEvent: method('/nimbus.NimbusService/ProcessEvent', codecs.EventRequest, codecs.EventResponse, true, true),
} as unknown as ServiceDefinition;
