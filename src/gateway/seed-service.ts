/**
 * Service definitions of the seed-compatible services that carry int64 fields (event.EventService,
 * data_nexus.MetricsService). They are loaded with @grpc/proto-loader, whose protobufjs copy has
 * `long`, not with ours (protocol.ts, Long disabled for the hot path), so that:
 * - field names stay as in the .proto (keepCase: event_id, eventIds);
 * - int64 arrives as an exact decimal string (longs: String), never a rounded double;
 * - absent fields arrive as their defaults ('' / '0' / {}), so validation sees every field.
 */
import { join } from 'node:path';
import { loadPackageDefinition, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { PROJECT_ROOT } from '../config.js';

/** `file` relative to proto/; `serviceName` fully qualified, e.g. `event.EventService`. */
export function loadSeedService(file: string, serviceName: string): ServiceDefinition {
  const definition = loadSync(file, { includeDirs: [join(PROJECT_ROOT, 'proto')], keepCase: true, longs: String, defaults: true });
  const ctor = serviceName.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], loadPackageDefinition(definition)) as { service: ServiceDefinition };
  return ctor.service;
}
