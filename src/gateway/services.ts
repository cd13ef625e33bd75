/**
 * Further gRPC services served on the gateway's port beside stratus.v1.DeviceGateway and
 * nimbus.NimbusService: the seed-compatible list-queue (event.EventService) and metrics
 * (data_nexus.MetricsService) services. Each gets grpc.health.v1 status and reflection like the
 * built-in ones, and is stopped after the server has stopped taking calls.
 */
import type { Server } from '@grpc/grpc-js';
import type { Config } from '../config.js';
import type { RateBudget } from '../rate-budget.js';
import { startEventService } from '../queue/event-service.js';
import { startMetricsService } from '../streams/metrics-service.js';

export interface GatewayService {
  /** Fully qualified service names (`event.EventService`), for health and reflection. */
  readonly names: readonly string[];
  /** Their .proto files, relative to proto/, for reflection. */
  readonly protoFiles: readonly string[];
  addTo(server: Server): void;
  /**
   * The service's per-instance rate budget, if it refuses calls while it is spent: the call limits
   * (call-limits.ts) check it when a call's headers arrive, for the named call group.
   */
  readonly callBudget?: { readonly group: string; readonly budget: RateBudget; readonly option: string };
  /** Releases what the service holds (Redis connections); called once the server has stopped. */
  stop(): Promise<void>;
}

export type GatewayServiceFactory = (config: Config, instanceId: string) => Promise<GatewayService>;

/** Started by every Gateway, in this order. */
export const GATEWAY_SERVICES: readonly GatewayServiceFactory[] = [
  startMetricsService,
  startEventService,
];
