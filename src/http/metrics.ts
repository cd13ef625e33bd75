/**
 * The engine's own Prometheus metrics (prom-client), one registry per process. Names follow
 * Prometheus conventions: `stratus_` prefix, `_total` for counters, base units (`_seconds`,
 * `_bytes`). A device id is never a label: label sets stay bounded whatever the fleet size.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { AUTH_FAILURE_REASONS } from '../auth/token.js';
import { RejectCode } from '../gateway/validate.js';
import { DEPENDENCIES, dependencyUp, healthChecksRegistered, healthProblem } from './health.js';

export const registry = new Registry();
// prom-client's process and Node metrics under stratus_: stratus_process_resident_memory_bytes,
// stratus_process_cpu_seconds_total, stratus_nodejs_eventloop_lag_p99_seconds, ... Event-loop lag
// is sampled by a 10 ms timer, and its samples include that interval: an idle loop reads ~10 ms.
collectDefaultMetrics({ register: registry, prefix: 'stratus_', eventLoopMonitoringPrecision: 10 });
// prom-client exports these three totals as gauges named _total, which promtool (rightly) flags: a
// _total is a counter. The same counts, by type, stay in stratus_nodejs_active_{handles,requests,
// resources}; sum() over them gives the totals.
for (const name of ['active_handles', 'active_requests', 'active_resources']) registry.removeSingleMetric(`stratus_nodejs_${name}_total`);

/**
 * Buckets of every latency histogram, in seconds: from 0.5 ms, in steps of at most 1.5x between
 * 1 ms and 500 ms, where the p99s of this engine live, so histogram_quantile() reads a p99 to within
 * a bucket's width instead of jumping 0.1 -> 0.25 -> 0.5 s; then coarse up to 10 s.
 */
export const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5,
  1, 2.5, 5, 10,
];
export const STAGES = ['ack', 'process', 'route', 'deliver'] as const;

/** What stratus_gateway_inflight_bytes sums at a scrape: one source per Gateway of the process. */
export const inflightBytesSources = new Set<() => number>();

/** The archiver's consumer group, once an archiver runs in this process (stratus_archive_lag_messages). */
let archiverGroup: string | null = null;
export function setArchiverGroup(group: string | null): void {
  archiverGroup = group;
}

export const metrics = {
  eventsReceived: new Counter({ name: 'stratus_events_received_total', help: 'Events received from devices, before validation.', registers: [registry] }),
  eventsAccepted: new Counter({ name: 'stratus_events_accepted_total', help: 'Events validated and handed to the Kafka producer.', registers: [registry] }),
  eventsRejected: new Counter({ name: 'stratus_events_rejected_total', help: 'Events refused, by reject code.', labelNames: ['code'] as const, registers: [registry] }),
  eventsDurable: new Counter({ name: 'stratus_events_durable_total', help: 'Events Kafka reported durable (acknowledged to devices).', registers: [registry] }),
  produceFailures: new Counter({ name: 'stratus_kafka_produce_failures_total', help: 'Delivery reports with an error.', registers: [registry] }),
  resultsDelivered: new Counter({ name: 'stratus_results_delivered_total', help: 'Results written to device streams.', registers: [registry] }),
  downlinks: new Counter({ name: 'stratus_downlinks_total', help: 'Downlink messages written (acks, results and rejects together).', registers: [registry] }),
  deliveryMessagesCorrupt: new Counter({ name: 'stratus_gateway_delivery_messages_corrupt_total', help: 'Messages on the instance channel that could not be decoded (dropped; the results stay buffered).', registers: [registry] }),
  devicesConnected: new Gauge({ name: 'stratus_devices_connected', help: 'Device streams this process holds.', registers: [registry] }),
  streamsEnded: new Counter({ name: 'stratus_streams_ended_total', help: 'Device streams this side ended, by gRPC status.', labelNames: ['status'] as const, registers: [registry] }),
  processorBatch: new Histogram({ name: 'stratus_processor_batch_size', help: 'Events per processor batch.', buckets: [1, 10, 100, 500, 1000, 2000, 5000], registers: [registry] }),
  processorEvents: new Counter({ name: 'stratus_processor_events_total', help: 'Events the processor turned into results (a batch counts once its results are durable in Kafka; an event read again after a rebalance counts again).', registers: [registry] }),
  kafkaConsumerLag: new Gauge({ name: 'stratus_kafka_consumer_lag_messages', help: 'Messages behind the committed offset on the partitions this consumer holds, by consumer group and topic (librdkafka statistics every second; @platformatic/kafka: a lag request every 5 s).', labelNames: ['group', 'topic'] as const, aggregator: 'sum', registers: [registry] }),
  dependencyUp: new Gauge({
    name: 'stratus_dependency_up',
    help: 'Per server the process talks to (kafka, redis): 1 when every client of the process for it is connected, 0 when one is not (what /readyz reads). Absent for a server the process has no client for.',
    labelNames: ['dependency'] as const,
    aggregator: 'min',
    registers: [registry],
    collect() {
      for (const d of DEPENDENCIES) {
        const up = dependencyUp(d);
        if (up === null) this.remove({ dependency: d });
        else this.set({ dependency: d }, up);
      }
    },
  }),
  ready: new Gauge({
    name: 'stratus_ready',
    help: '1 when the process\'s roles have started and every Kafka and Redis client of it is up (as /readyz, draining aside), else 0.',
    aggregator: 'min',
    registers: [registry],
    collect() {
      this.set(healthChecksRegistered() > 0 && healthProblem() === null ? 1 : 0);
    },
  }),
  kafkaCommitFailures: new Counter({ name: 'stratus_kafka_commit_failures_total', help: 'Offset commits of the processor and forwarder that failed (retried with the next commit; a batch not committed is read again).', registers: [registry] }),
  kafkaConsumeErrors: new Counter({ name: 'stratus_kafka_consume_errors_total', help: 'Consume calls of the processor and forwarder that returned an error (Kafka away, rebalance); the stage waits and consumes again.', registers: [registry] }),
  forwarderRouted: new Counter({ name: 'stratus_forwarder_results_routed_total', help: 'Results buffered and routed by the forwarder.', registers: [registry] }),
  forwarderDuplicates: new Counter({ name: 'stratus_forwarder_duplicates_total', help: 'Results dropped as duplicates by (device, seq).', registers: [registry] }),
  admissionSeconds: new Histogram({ name: 'stratus_gateway_admission_seconds', help: 'Time of the gateway\'s one Redis call per turn that orders the turn\'s events (admission).', buckets: LATENCY_BUCKETS, registers: [registry] }),
  admissionFailures: new Counter({ name: 'stratus_gateway_admission_failures_total', help: 'Admission calls and lease renewals Redis failed or did not answer in gateway.admitTimeoutMs (their events rejected UNAVAILABLE).', registers: [registry] }),
  admissionLeaseLost: new Counter({ name: 'stratus_gateway_admission_lease_lost_total', help: 'Durable events not acknowledged because their report came after this instance\'s admission lease on the device ran out.', registers: [registry] }),
  presenceLost: new Counter({ name: 'stratus_gateway_presence_lost_total', help: 'Sessions ended because a presence renewal found the device held by another instance.', registers: [registry] }),
  handoffs: new Counter({ name: 'stratus_gateway_handoffs_total', help: 'Takeovers of a device held elsewhere, by outcome (recorded: the old holder recorded its position; timeout: gateway.handoffWaitMs ran out).', labelNames: ['outcome'] as const, registers: [registry] }),
  clusterWorkersScraped: new Gauge({ name: 'stratus_cluster_workers_scraped', help: 'Gateway shards (worker processes or worker threads) whose metrics the last scrape of the primary merged (run --threads N).', aggregator: 'max', registers: [registry] }),
  gatewayShardDevices: new Gauge({ name: 'stratus_gateway_shard_devices_connected', help: 'Device streams each gateway shard held at the last scrape of the primary (run --threads N; shard w<worker id> or t<thread>).', labelNames: ['shard'] as const, aggregator: 'max', registers: [registry] }),
  sseStreams: new Gauge({ name: 'stratus_sse_streams', help: 'SSE device streams this process holds.', registers: [registry] }),
  // Limits at the doors (README "Limits"): what was refused, and why. Labels are fixed sets.
  memoryBudgetBytes: new Gauge({ name: 'stratus_memory_budget_bytes', help: 'The process\'s RSS budget (rssMaxMb); 0: none.', registers: [registry] }),
  memoryRefusing: new Gauge({ name: 'stratus_memory_refusing', help: '1 while RSS is past 85% of rssMaxMb and new ingest work is refused, else 0.', registers: [registry] }),
  grpcCallsRefused: new Counter({ name: 'stratus_grpc_calls_refused_total', help: 'gRPC calls refused with RESOURCE_EXHAUSTED before their first message was read, by service group and reason (calls_max: the group\'s calls-in-progress limit; memory: the RSS budget).', labelNames: ['service', 'reason'] as const, registers: [registry] }),
  grpcCallsInProgress: new Gauge({ name: 'stratus_grpc_calls_in_progress', help: 'gRPC calls in progress, by service group.', labelNames: ['service'] as const, registers: [registry] }),
  grpcConnections: new Gauge({ name: 'stratus_grpc_connections', help: 'Open HTTP/2 connections on the gRPC port.', registers: [registry] }),
  grpcConnectionsClosed: new Counter({ name: 'stratus_grpc_connections_closed_total', help: 'Connections on the gRPC port the gateway closed, by reason: pings, settings (frames per second beyond grpc.controlFramesPerSecondMax), resets (rapid reset: grpc.resetStreamsMax), each with GOAWAY ENHANCE_YOUR_CALM; connections_max (refused at grpc.connectionsMax); penalized (refused from an address cut for abuse within grpc.abusePenaltyMs).', labelNames: ['reason'] as const, registers: [registry] }),
  gatewayInflightBytes: new Gauge({
    name: 'stratus_gateway_inflight_bytes',
    help: 'Payload bytes of device events taken in and not yet settled (bounded by gateway.inflightBytesMax).',
    registers: [registry],
    // Read at scrape time, not set per event on the hot path.
    collect() {
      let n = 0;
      for (const f of inflightBytesSources) n += f();
      this.set(n);
    },
  }),
  stageSeconds: new Histogram({
    name: 'stratus_stage_latency_seconds',
    help: 'Per-stage latency: ack = received -> durable in Kafka; process = received -> processed; route = processed -> buffered and published by the forwarder; deliver = processed -> handed to the device stream.',
    labelNames: ['stage'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  }),
  kafkaRecordEvents: new Histogram({ name: 'stratus_kafka_record_events', help: 'Events (topic events, by the gateway) or results (topic results, by the processor) in one Kafka record (proto/stratus/v1/kafka.proto).', labelNames: ['topic'] as const, buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000], registers: [registry] }),
  redisPipelineDepth: new Histogram({ name: 'stratus_redis_pipeline_depth', help: 'Commands or items sent to Redis in one round trip, by path.', labelNames: ['path'] as const, buckets: [1, 2, 5, 10, 50, 100, 500, 1000, 5000], registers: [registry] }),
  // librdkafka's own statistics (statistics.interval.ms), every second: the avg and p99 of its rolling
  // window, as label stat (a `quantile` label belongs to summaries; promtool flags it on a gauge).
  kafkaBatchBytes: new Gauge({ name: 'stratus_kafka_produce_batch_bytes', help: 'Bytes per produce request batch, by stat (avg, p99) over the Kafka client\'s statistics window (librdkafka\'s statistics; @platformatic/kafka: measured per send over 1 s).', aggregator: 'max', labelNames: ['stat'] as const, registers: [registry] }),
  kafkaBatchMessages: new Gauge({ name: 'stratus_kafka_produce_batch_messages', help: 'Messages per produce request batch, by stat (avg, p99) over the Kafka client\'s statistics window (librdkafka\'s statistics; @platformatic/kafka: measured per send over 1 s).', aggregator: 'max', labelNames: ['stat'] as const, registers: [registry] }),
  kafkaQueueSeconds: new Gauge({ name: 'stratus_kafka_produce_queue_latency_seconds', help: 'Time a message waits in the producer queue before it is sent (librdkafka int_latency; @platformatic/kafka: from produce() to its send), by stat (avg, p99).', aggregator: 'max', labelNames: ['stat'] as const, registers: [registry] }),
  kafkaRttSeconds: new Gauge({ name: 'stratus_kafka_produce_rtt_seconds', help: 'Broker round trip of produce requests (librdkafka rtt; @platformatic/kafka: send to answer), by stat (avg, p99).', aggregator: 'max', labelNames: ['stat'] as const, registers: [registry] }),
  // Metrics on Redis Streams (data_nexus.MetricsService -> exporter). Never an entry id or a user label as a label.
  streamsIngested: new Counter({ name: 'stratus_streams_entries_ingested_total', help: 'Metrics written to the metrics stream by data_nexus.MetricsService.', registers: [registry] }),
  streamsRejected: new Counter({ name: 'stratus_streams_calls_rejected_total', help: 'MetricsService calls refused with INVALID_ARGUMENT (nothing written).', registers: [registry] }),
  streamsAcked: new Counter({ name: 'stratus_streams_entries_acked_total', help: 'Metrics stream entries the exporter acknowledged after a scrape that showed them was written.', registers: [registry] }),
  streamsReclaimed: new Counter({ name: 'stratus_streams_entries_reclaimed_total', help: 'Entries the exporter took over (XAUTOCLAIM) from a consumer idle beyond streams.claimIdleMs.', registers: [registry] }),
  streamsDeadLettered: new Counter({ name: 'stratus_streams_entries_dead_lettered_total', help: 'Entries the exporter could not decode or export, moved to the dead-letter stream.', registers: [registry] }),
  streamsScrapes: new Counter({ name: 'stratus_streams_scrapes_total', help: 'GET /metrics/ingested responses, by outcome (written: acked after; failed: the connection ended first, nothing acked).', labelNames: ['outcome'] as const, registers: [registry] }),
  streamsPending: new Gauge({ name: 'stratus_streams_entries_unacked', help: 'Entries this exporter has read and not yet acknowledged (bounded by streams.pendingMax).', registers: [registry] }),
  // List queue (event.EventService -> `stratus worker`). No queue-name label: x-queue is chosen by clients, so it would be unbounded.
  queueEventsPushed: new Counter({ name: 'stratus_queue_events_pushed_total', help: 'Events event.EventService stored in a list queue.', registers: [registry] }),
  queueCallsRefused: new Counter({ name: 'stratus_queue_calls_refused_total', help: 'StreamEvents calls ended without a summary, by gRPC status (INVALID_ARGUMENT, RESOURCE_EXHAUSTED).', labelNames: ['status'] as const, registers: [registry] }),
  queueItemsProcessed: new Counter({ name: 'stratus_queue_items_processed_total', help: 'Items a worker finished, by outcome (done; duplicate: the record handler had it already; failed: the handler threw).', labelNames: ['outcome'] as const, registers: [registry] }),
  queueItemsDeadLettered: new Counter({ name: 'stratus_queue_items_dead_lettered_total', help: 'Items moved to the dead-letter list after queue.attemptsMax tries.', registers: [registry] }),
  queueItemsReclaimed: new Counter({ name: 'stratus_queue_items_reclaimed_total', help: 'Items moved back to the queue from a worker processing list: of a worker whose lease lapsed, or taken by a take whose answer was lost.', registers: [registry] }),
  forwarderRedisRetries: new Counter({ name: 'stratus_forwarder_redis_retries_total', help: 'Script calls of the forwarder tried again as a whole, by reason (connection: Redis unreachable or timed out; redis: Redis refused the call, e.g. OOM, LOADING, BUSY).', labelNames: ['reason'] as const, registers: [registry] }),
  forwarderDeviceFailures: new Counter({ name: 'stratus_forwarder_device_failures_total', help: 'Results the forwarder\'s script could not write for their device (its later results in the call skipped too); retried up to forwarder.deviceRetriesMax times.', registers: [registry] }),
  forwarderDeadLetters: new Counter({ name: 'stratus_forwarder_dead_letters_total', help: 'Results written to the forwarder\'s dead-letter stream after forwarder.deviceRetriesMax failed retries.', registers: [registry] }),
  redisScriptSeconds: new Histogram({ name: 'stratus_forwarder_redis_script_seconds', help: 'Time of the forwarder\'s one Redis call per batch.', buckets: LATENCY_BUCKETS, registers: [registry] }),
  // Never a device id as a label: a failed token's id is unproven and chosen by the client.
  authFailures: new Counter({ name: 'stratus_auth_failures_total', help: 'Requests refused for their device token (gRPC UNAUTHENTICATED, SSE 401), by surface (grpc, sse) and reason (missing; malformed; forged: not signed by auth.tokenSecret; expired; duplicate: more than one authorization header).', labelNames: ['surface', 'reason'] as const, registers: [registry] }),
  httpConnectionsShed: new Counter({ name: 'stratus_http_connections_shed_total', help: 'HTTP connections and SSE requests turned away on http.port, by reason (evicted: an idle or header-less connection closed to make room for a new one at http.connectionsMax; refused: a new connection closed because every open one had a request in progress; sse_full: an SSE request answered 503 at http.sseStreamsMax; headers_timeout: a connection that sent no complete request headers within http.headersTimeoutMs).', labelNames: ['reason'] as const, registers: [registry] }),
  archiveRowsWritten: new Counter({ name: 'stratus_archive_rows_written_total', help: 'Rows the archiver wrote that were new to the store, by store (sqlite, postgres) and table (events, results).', labelNames: ['store', 'table'] as const, registers: [registry] }),
  archiveDuplicates: new Counter({ name: 'stratus_archive_duplicates_total', help: 'Rows the archiver wrote that the store had already (a batch read again after a crash or rebalance): changed nothing.', labelNames: ['store'] as const, registers: [registry] }),
  archiveDeadLetters: new Counter({ name: 'stratus_archive_dead_letters_total', help: 'Rows the archiver put in the dead_letters table instead of archiving them, by reason (payload: over archive.payloadBytesMax; undecodable: a Kafka record that did not decode; refused: the store refused the row).', labelNames: ['store', 'reason'] as const, registers: [registry] }),
  archiveBatchRows: new Histogram({ name: 'stratus_archive_batch_rows', help: 'Rows (events, results, dead letters) in one store transaction of the archiver.', labelNames: ['store'] as const, buckets: [1, 10, 100, 500, 1000, 2000, 5000, 10000, 50000], registers: [registry] }),
  archiveWriteSeconds: new Histogram({ name: 'stratus_archive_write_seconds', help: 'Time of one store transaction of the archiver (a batch write that succeeded).', labelNames: ['store'] as const, buckets: LATENCY_BUCKETS, registers: [registry] }),
  archiveWriteFailures: new Counter({ name: 'stratus_archive_write_failures_total', help: 'Batch writes the store failed (unreachable, full, timed out); each is tried again, the offsets not committed meanwhile.', labelNames: ['store'] as const, registers: [registry] }),
  archiveRowsExpired: new Counter({ name: 'stratus_archive_rows_expired_total', help: 'Events and results the archiver deleted for being older than archive.retentionDays.', labelNames: ['store'] as const, registers: [registry] }),
  archiveLagSeconds: new Gauge({ name: 'stratus_archive_lag_seconds', help: 'Age of the oldest row the archiver has read from Kafka and not yet written (its receive time for an event, processing time for a result); 0 when it has nothing in hand. Grows while the store is away.', aggregator: 'max', registers: [registry] }),
  archiveLagMessages: new Gauge({
    name: 'stratus_archive_lag_messages',
    help: 'Kafka messages of the events and results topics not yet archived (committed) on the partitions this archiver holds: stratus_kafka_consumer_lag_messages of its consumer group, summed over both topics.',
    aggregator: 'sum',
    registers: [registry],
    async collect() {
      if (archiverGroup === null) return;
      const lag = await metrics.kafkaConsumerLag.get();
      this.set(lag.values.filter((v) => v.labels.group === archiverGroup).reduce((n, v) => n + v.value, 0));
    },
  }),
};

// Every (surface, reason) exported from the start at 0: a series that appears only with its first
// failure hides that failure from rate() and from alerts on increase().
for (const surface of ['grpc', 'sse'] as const) for (const reason of AUTH_FAILURE_REASONS) metrics.authFailures.inc({ surface, reason }, 0);
// Every reason shows from the start, at 0, so a rate() over it has a series before the first shed.
for (const reason of ['evicted', 'refused', 'sse_full', 'headers_timeout'] as const) metrics.httpConnectionsShed.inc({ reason }, 0);

// Every labelled series from the start, at 0: a series that appears only with its first increment
// hides that increment from rate() and increase(), and a dashboard shows "no data" instead of 0.
for (const code of Object.values(RejectCode)) metrics.eventsRejected.inc({ code }, 0);
for (const name of Object.keys(GrpcStatus).filter((k) => Number.isNaN(Number(k)) && k !== 'OK')) metrics.streamsEnded.inc({ status: name }, 0);
for (const stage of STAGES) metrics.stageSeconds.zero({ stage });
for (const outcome of ['recorded', 'timeout'] as const) metrics.handoffs.inc({ outcome }, 0);
for (const outcome of ['written', 'failed'] as const) metrics.streamsScrapes.inc({ outcome }, 0);
for (const st of ['INVALID_ARGUMENT', 'RESOURCE_EXHAUSTED'] as const) metrics.queueCallsRefused.inc({ status: st }, 0);
for (const outcome of ['done', 'duplicate', 'failed'] as const) metrics.queueItemsProcessed.inc({ outcome }, 0);
for (const reason of ['connection', 'redis'] as const) metrics.forwarderRedisRetries.inc({ reason }, 0);
for (const path of ['forwarder', 'queue'] as const) metrics.redisPipelineDepth.zero({ path });
for (const stat of ['avg', 'p99'] as const) {
  for (const g of [metrics.kafkaBatchBytes, metrics.kafkaBatchMessages, metrics.kafkaQueueSeconds, metrics.kafkaRttSeconds]) g.set({ stat }, 0);
}
