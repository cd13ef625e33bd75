/**
 * One Config for every role and command, loaded once and frozen.
 *
 * Precedence, lowest first: defaults <- .env file <- STRATUS_* environment <- command-line flags.
 * Every option has one dotted key (`kafka.lingerMs`); its environment name and flag are derived
 * from the key mechanically (`STRATUS_KAFKA_LINGER_MS`, `--kafka-linger-ms`), so the README table,
 * docker-compose.yml and the code can never disagree about a name.
 *
 * A bad value fails at start with the option's name, the value and what is allowed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseEnv } from 'node:util';
import { ErrorCode, StratusError } from './errors.js';

type Kind = 'int' | 'string' | 'hostPortList' | 'enum' | 'bool';

export interface OptionSpec {
  readonly kind: Kind;
  readonly default: string;
  readonly doc: string;
  /** Shown in the README table: ms, bytes, count, path... */
  readonly unit?: string;
  readonly min?: number;
  readonly max?: number;
  readonly values?: readonly string[];
  /** Never printed: `config print` and logs show `***`. */
  readonly secret?: boolean;
  /** For paths: resolved against the project root when relative. */
  readonly path?: boolean;
  /** For paths: empty is allowed and means "not set". */
  readonly optional?: boolean;
  /** For other strings: the whole value must match, and `allowed` says what that means. */
  readonly pattern?: RegExp;
  readonly allowed?: string;
}

const port = (def: number, doc: string): OptionSpec => ({ kind: 'int', default: String(def), doc, unit: 'port', min: 1, max: 65535 });

/** The option table. Keys are `section.name`; order here is the order of `config print` and the README. */
export const OPTIONS = {
  'dataDir': { kind: 'string', default: '.stratus/data', path: true, unit: 'path', doc: 'Local stack state: Kafka and Redis data, logs, pid files. `stack up --fresh` wipes it.' },
  'logLevel': { kind: 'enum', default: 'info', values: ['debug', 'info', 'warn', 'error'], doc: 'Least severe log line printed.' },
  'rssMaxMb': { kind: 'int', default: '2048', min: 0, max: 1048576, unit: 'MiB', doc: 'Memory budget of one engine process (resident set). Past 85% of it, new calls on the ingest services end RESOURCE_EXHAUSTED and device events get Reject OVERLOADED, until it falls below 75%. Set it below the container\'s memory limit. 0: no budget.' },
  'redis.host': { kind: 'string', default: '127.0.0.1', doc: 'Redis host. The local stack binds it, so it must be a loopback address for `stack up`.' },
  'redis.port': port(6379, 'Redis port (the local stack listens here).'),
  'redis.password': { kind: 'string', default: '', secret: true, doc: 'Redis AUTH password; empty for none. The local stack sets it as requirepass.' },
  'redis.keyPrefix': { kind: 'string', default: 'stratus:', pattern: /^[^{}]*$/, allowed: 'text without { or } (braces would change the hash tags that keep a device\'s keys in one Redis Cluster slot)', doc: 'Prefix of every Redis key, channel and stream Stratus uses.' },
  'redis.mode': { kind: 'enum', default: 'single', values: ['single', 'cluster'], doc: 'single: one Redis server (or a primary with replicas behind one address). cluster: Redis Cluster; redis.host and redis.port name any one node (the client finds the others), device keys are hash-tagged per device, scripts run per node, and gateway channels use sharded pub/sub (SPUBLISH, SSUBSCRIBE).' },
  'redis.waitReplicas': { kind: 'int', default: '1', min: 0, max: 5, unit: 'replicas', doc: 'Replicas the forwarder waits for (WAIT) after writing results and before their Kafka offsets are committed, so a failover cannot lose a result Kafka no longer holds. It waits for the smaller of this and the replicas online on that master (INFO replication, read every 5 s); none online: no wait. 0: never waits.' },
  'redis.waitTimeoutMs': { kind: 'int', default: '2000', min: 10, max: 60000, unit: 'ms', doc: 'How long one WAIT may take; fewer replicas than asked by then fails the write, which is retried (the offsets are not committed).' },
  'kafka.brokers': { kind: 'hostPortList', default: '127.0.0.1:9092', doc: 'Comma-separated bootstrap brokers. The local stack listens on the first one.' },
  'kafka.controllerPort': port(9093, 'KRaft controller port of the local stack.'),
  'kafka.client': { kind: 'enum', default: 'auto', values: ['auto', 'native', 'platformatic'], doc: 'The Kafka client library. native: @confluentinc/kafka-javascript (librdkafka). platformatic: @platformatic/kafka, pure TypeScript; needs Node >= 22.22 (or 24.6) or Bun. auto: platformatic on Bun (which cannot load the native addon), native on Node. Both pass the same contract suite (test/contract/kafka-client.test.ts); RESULTS.md \u00a77 compares them.' },
  'kafka.heapMb': { kind: 'int', default: '512', min: 128, max: 16384, unit: 'MiB', doc: 'JVM heap of the local Kafka broker.' },
  'kafka.topicPrefix': { kind: 'string', default: 'stratus.', doc: 'Prefix of the events and results topic names.' },
  'kafka.partitions': { kind: 'int', default: '12', min: 1, max: 10000, unit: 'count', doc: 'Partitions of the events and results topics when Stratus creates them.' },
  'kafka.replicationFactor': { kind: 'int', default: '1', min: 1, max: 16, unit: 'replicas', doc: 'Replicas of each partition of the events and results topics when Stratus creates them. More than the cluster has brokers is refused when the topics are created (KAFKA_UNAVAILABLE naming both counts).' },
  'kafka.minInsyncReplicas': { kind: 'int', default: '1', min: 1, max: 16, unit: 'replicas', doc: 'min.insync.replicas of the topics Stratus creates: an event is acknowledged (acks=all) only once this many replicas, the leader included, have it; with fewer in sync, produce fails and devices get UNAVAILABLE rather than an ack that one broker could lose. At most kafka.replicationFactor.' },
  'kafka.lingerMs': { kind: 'int', default: '5', min: 0, max: 1000, unit: 'ms', doc: 'Producer linger: how long librdkafka waits to fill a batch before sending it.' },
  'kafka.batchSizeMax': { kind: 'int', default: '1000000', min: 1024, max: 100000000, unit: 'bytes', doc: 'Producer batch size limit per partition (librdkafka batch.size).' },
  'kafka.recordEventsMax': { kind: 'int', default: '1000', min: 1, max: 100000, unit: 'events', doc: 'Events (or results) the gateway (or processor) puts in one Kafka record: one record per partition per turn of the event loop (proto/stratus/v1/kafka.proto); beyond it a second record starts. 1: one event per record.' },
  'kafka.recordBytesMax': { kind: 'int', default: '262144', min: 1024, max: 100000000, unit: 'bytes', doc: 'Bytes of one such record; an event larger than it goes alone. Keep it below the broker\'s message.max.bytes (1 MiB by default).' },
  'kafka.producerQueueMax': { kind: 'int', default: '100000', min: 100, max: 10000000, unit: 'messages', doc: 'Messages waiting in the producer; beyond it produce is refused and the gateway sheds load (OVERLOADED).' },
  'kafka.consumeBatchMax': { kind: 'int', default: '2000', min: 1, max: 100000, unit: 'messages', doc: 'Messages the processor and forwarder take from Kafka per batch.' },
  'kafka.fetchWaitMaxMs': { kind: 'int', default: '10', min: 0, max: 10000, unit: 'ms', doc: 'How long the broker may hold a fetch of the processor or forwarder for kafka.fetchMinBytes to arrive (librdkafka fetch.wait.max.ms): at light load each of the two hops adds up to this much to a result\'s latency.' },
  'kafka.fetchMinBytes': { kind: 'int', default: '32768', min: 1, max: 100000000, unit: 'bytes', doc: 'Bytes a fetch of the processor or forwarder waits for, up to kafka.fetchWaitMaxMs (librdkafka fetch.min.bytes): fewer, fuller fetches for the broker to answer (at 6,000 events/s the broker\'s CPU per event fell by a tenth with a 10 ms wait, by a third with 25 ms, against 1 byte). 1 answers every fetch as soon as anything arrived.' },
  'kafka.deliveryTimeoutMs': { kind: 'int', default: '120000', min: 1000, max: 3600000, unit: 'ms', doc: 'How long a produce may wait for Kafka before it fails and the device is told to resend.' },
  'kafka.connectTimeoutMs': { kind: 'int', default: '15000', min: 100, max: 600000, unit: 'ms', doc: 'How long `stratus run` waits at start for a broker of kafka.brokers to answer; then it exits with one line naming the brokers (KAFKA_UNAVAILABLE).' },
  'stack.startTimeoutMs': { kind: 'int', default: '90000', min: 1000, max: 600000, unit: 'ms', doc: 'How long `stack up` waits for Kafka and Redis to answer.' },
  'instanceId': { kind: 'string', default: '', doc: 'Name of this engine instance in the presence registry and its Redis channel; empty: <hostname>-<pid>.' },
  'redis.deviceBufferMax': { kind: 'int', default: '1000', min: 1, max: 1000000, unit: 'results', doc: 'Results kept per device in its Redis Stream buffer until a session reads them; beyond it the oldest are dropped.' },
  'redis.deviceStateTtlMs': { kind: 'int', default: '604800000', min: 1000, max: 31536000000, unit: 'ms', doc: 'How long a silent device\'s dedupe mark and buffer are kept.' },
  'gateway.presenceLeaseMs': { kind: 'int', default: '30000', min: 1000, max: 3600000, unit: 'ms', doc: 'Lease on a device -> gateway entry; the gateway renews it at a third of this.' },
  'gateway.devicesMax': { kind: 'int', default: '200000', min: 1, max: 10000000, unit: 'devices', doc: 'Streams (Connect and ProcessEvent) one gateway instance holds, and distinct devices one Ingest call may name; beyond it: RESOURCE_EXHAUSTED.' },
  'gateway.inflightMax': { kind: 'int', default: '1000', min: 1, max: 1000000, unit: 'events', doc: 'Unacknowledged events per device; beyond it the gateway stops reading that stream (HTTP/2 flow control pushes back).' },
  'gateway.outboundMax': { kind: 'int', default: '2000', min: 1, max: 1000000, unit: 'results', doc: 'Results a session holds for a device that reads slower than they come; beyond it the rest wait in the device\'s Redis buffer and are read from there at its pace. A device that takes nothing for gateway.stallTimeoutMs ends with RESOURCE_EXHAUSTED.' },
  'gateway.stallTimeoutMs': { kind: 'int', default: '10000', min: 100, max: 600000, unit: 'ms', doc: 'How long a device may take nothing while its buffered results are being sent before its stream ends with RESOURCE_EXHAUSTED.' },
  'gateway.payloadBytesMax': { kind: 'int', default: '65536', min: 0, max: 3145728, unit: 'bytes', doc: 'Largest event payload; larger ones are rejected with PAYLOAD_TOO_LARGE.' },
  'gateway.ackWaitMaxMs': { kind: 'int', default: '5000', min: 10, max: 600000, unit: 'ms', doc: 'Load shedding: while the oldest event waiting for Kafka has waited longer than this, new events are rejected with OVERLOADED instead of queued, so a sustained overload or a Kafka outage turns into clear refusals instead of an ever later ack. Long enough to absorb a burst or a Kafka hiccup (the first produce to a topic, a leader move).' },
  'gateway.deviceRatePerS': { kind: 'int', default: '0', min: 0, max: 1000000, unit: 'events/s', doc: 'Per-device rate limit (a token bucket shared by all of a device\'s streams and calls on this instance); events beyond it are rejected with RATE_LIMITED. 0: no limit.' },
  'gateway.deviceBurstMax': { kind: 'int', default: '0', min: 0, max: 10000000, unit: 'events', doc: 'Size of the per-device token bucket: events a device may send at once after being quiet. 0: one second\'s worth (gateway.deviceRatePerS).' },
  'gateway.admitLeaseMs': { kind: 'int', default: '10000', min: 1000, max: 600000, unit: 'ms', doc: 'Lease an instance holds on a device while it has events of that device waiting for Kafka (renewed at a third of this while they wait): one instance at a time, so a device\'s events reach Kafka in seq order. An event whose delivery report comes after its lease was lost is not acknowledged.' },
  'gateway.admitWaitMs': { kind: 'int', default: '2000', min: 0, max: 600000, unit: 'ms', doc: 'How long an event waits while another gateway instance holds its device\'s admission lease (a concurrent call on that instance) before it is rejected with BUSY.' },
  'gateway.admitTimeoutMs': { kind: 'int', default: '3000', min: 100, max: 600000, unit: 'ms', doc: 'How long the gateway waits for Redis to order a turn\'s events; then their streams and calls end with status UNAVAILABLE (the events are unacknowledged: Redis may still take them).' },
  'gateway.admitBatchMax': { kind: 'int', default: '4096', min: 1, max: 1000000, unit: 'events', doc: 'Events ordered in one Redis script call; more wait for the next call.' },
  'gateway.admitQueueMax': { kind: 'int', default: '100000', min: 1, max: 10000000, unit: 'events', doc: 'Events waiting to be ordered on one instance; beyond it new events are rejected with OVERLOADED.' },
  'gateway.ingestCallsMax': { kind: 'int', default: '256', min: 1, max: 1000000, unit: 'calls', doc: 'Ingest and IngestBatch calls in progress on one instance; beyond it a new call ends RESOURCE_EXHAUSTED before its first message is read.' },
  'gateway.inflightBytesMax': { kind: 'int', default: '268435456', min: 65536, max: 68719476736, unit: 'bytes', doc: 'Payload bytes of device events taken in and not yet settled (acknowledged or refused), on all streams and calls of one instance; beyond it new events are rejected with OVERLOADED.' },
  'gateway.handoffWaitMs': { kind: 'int', default: '2000', min: 0, max: 60000, unit: 'ms', doc: 'On a takeover, how long a new stream without a client cursor waits for the instance holding the old stream to record what it sent, before it starts from the last recorded position.' },
  'gateway.drainGraceMs': { kind: 'int', default: '10000', min: 0, max: 600000, unit: 'ms', doc: 'On SIGTERM, how long open streams get to finish before they are ended.' },
  'forwarder.scriptResultsMax': { kind: 'int', default: '500', min: 1, max: 100000, unit: 'results', doc: 'Results the forwarder hands Redis in one script call; a larger Kafka batch is split into several calls, in order, so one call never holds Redis for long.' },
  'forwarder.scriptBytesMax': { kind: 'int', default: '1048576', min: 1024, max: 536870912, unit: 'bytes', doc: 'Result bytes in one forwarder script call (a single larger result goes alone).' },
  'forwarder.deviceRetriesMax': { kind: 'int', default: '3', min: 0, max: 100, unit: 'retries', doc: 'Times the results of a device whose Redis write failed (a key of the wrong type, say) are tried again before they go to the dead-letter stream `<redis.keyPrefix>results:dead`; the other devices\' results are not held up.' },
  'forwarder.deviceRetryBaseMs': { kind: 'int', default: '150', min: 1, max: 60000, unit: 'ms', doc: 'Wait before the first retry of a failed device\'s results, doubled for each further retry (150: 150 + 300 + 600 ms).' },
  'forwarder.redisRetryMaxMs': { kind: 'int', default: '2000', min: 10, max: 600000, unit: 'ms', doc: 'Longest wait between retries of a script call while Redis is unreachable (starts at 100 ms and doubles); the batch is not committed until it goes through.' },
  'forwarder.deadLettersMax': { kind: 'int', default: '100000', min: 100, max: 100000000, unit: 'entries', doc: 'Approximate cap (XADD MAXLEN ~) of the forwarder\'s dead-letter stream `<redis.keyPrefix>results:dead`.' },
  'archive.store': { kind: 'enum', default: 'off', values: ['off', 'sqlite', 'postgres'], doc: 'Where the archiver role keeps every event and result (README, "Archive"). off: no archive, and `run` does not start the archiver. sqlite: a file (archive.sqlitePath), no server. postgres: the database of archive.postgresUrl (`stack up --postgres` runs one locally). With a store set, `run` starts the archiver with its other roles and serves GET /v1/devices/{id}/history.' },
  'archive.sqlitePath': { kind: 'string', default: '', path: true, optional: true, unit: 'path', doc: 'The SQLite file of archive.store=sqlite; empty: archive.sqlite in dataDir.' },
  'archive.postgresUrl': { kind: 'string', default: 'postgres://stratus@127.0.0.1:5433/stratus', secret: true, doc: 'The PostgreSQL database of archive.store=postgres, as a postgres:// URL (user, password, host, port, database). The default is the database `stack up --postgres` creates; its port, 5433, leaves 5432 to a system PostgreSQL.' },
  'archive.postgresSchema': { kind: 'string', default: 'stratus', pattern: /^(?!pg_)[a-z_][a-z0-9_]{0,62}$/, allowed: 'a lower-case SQL identifier (letters, digits, _; at most 63) not starting with pg_ (PostgreSQL reserves those)', doc: 'The PostgreSQL schema holding the archive\'s tables, created if missing: several deployments can share one database.' },
  'archive.postgresConnectionsMax': { kind: 'int', default: '4', min: 1, max: 100, unit: 'connections', doc: 'Connections one engine process keeps to PostgreSQL (the archiver writes on one; history reads use the others).' },
  'archive.statementTimeoutMs': { kind: 'int', default: '30000', min: 100, max: 3600000, unit: 'ms', doc: 'Longest one store statement (a batch write, a history read, a retention delete) may run before it is cancelled and counted as a failure (PostgreSQL statement_timeout; SQLite busy_timeout).' },
  'archive.batchRowsMax': { kind: 'int', default: '5000', min: 1, max: 1000000, unit: 'rows', doc: 'Rows (events and results) the archiver writes in one store transaction; a larger Kafka batch is written in several, and its offsets committed after the last.' },
  'archive.lingerMs': { kind: 'int', default: '100', min: 0, max: 10000, unit: 'ms', doc: 'How long the archiver gathers batches from Kafka into one store transaction (up to archive.batchRowsMax rows) before writing it: fewer, larger transactions (one fsync each) for a little archive delay. 0: each Kafka batch is written as it comes.' },
  'archive.payloadBytesMax': { kind: 'int', default: '1048576', min: 0, max: 100000000, unit: 'bytes', doc: 'Largest payload the archiver stores; an event or result with a larger one is dead-lettered (reason and Kafka position kept, payload not) instead of written.' },
  'archive.retentionDays': { kind: 'int', default: '30', min: 0, max: 36500, unit: 'days', doc: 'Events and results received longer ago than this are deleted by the archiver (checked every archive.retentionIntervalMs, in chunks of archive.batchRowsMax). 0: kept for ever.' },
  'archive.retentionIntervalMs': { kind: 'int', default: '3600000', min: 1000, max: 86400000, unit: 'ms', doc: 'How often the archiver deletes what is past archive.retentionDays.' },
  'archive.retryMaxMs': { kind: 'int', default: '5000', min: 10, max: 600000, unit: 'ms', doc: 'Longest wait between two attempts to write a batch while the store fails (the wait doubles from 100 ms). Meanwhile nothing is committed, so nothing is lost: the lag grows instead.' },
  'archive.connectTimeoutMs': { kind: 'int', default: '5000', min: 100, max: 600000, unit: 'ms', doc: 'How long one connection attempt or statement may wait for the store before it counts as unreachable.' },
  'archive.historyLimitMax': { kind: 'int', default: '1000', min: 1, max: 100000, unit: 'events', doc: 'Most events one history request (GET /v1/devices/{id}/history, `stratus query`) returns; ask again with since for more.' },
  'processor.batchesInflightMax': { kind: 'int', default: '4', min: 1, max: 64, unit: 'batches', doc: 'Batches the processor has produced and waits on (their results not yet durable) while it reads the next; offsets are committed in batch order. 1: one batch at a time.' },
  'processor.threads': { kind: 'int', default: '0', min: 0, max: 64, unit: 'threads', doc: 'Worker threads (piscina) for processor compute; 0 runs it on the consumer\'s thread. Pays off for CPU-heavy processors (sha256).' },
  'grpc.host': { kind: 'string', default: '127.0.0.1', doc: 'Address the gRPC gateway and the HTTP surface bind; 0.0.0.0 to take devices from other hosts (docker-compose.yml sets it).' },
  'grpc.port': port(50051, 'gRPC port of the gateway.'),
  'grpc.keepaliveTimeMs': { kind: 'int', default: '30000', min: 1000, max: 86400000, unit: 'ms', doc: 'The gateway pings a connection that has been quiet this long, to find devices that went away without closing it.' },
  'grpc.keepaliveTimeoutMs': { kind: 'int', default: '10000', min: 1000, max: 600000, unit: 'ms', doc: 'A connection whose ping is not answered within this is closed (its streams end UNAVAILABLE on the device side).' },
  'grpc.connectionsMax': { kind: 'int', default: '10000', min: 1, max: 1000000, unit: 'connections', doc: 'Open HTTP/2 connections on the gRPC port; beyond it a new connection is closed as it is accepted. Keep it under the process\'s open-file limit (`ulimit -n`) minus http.connectionsMax and a few hundred for Kafka and Redis.' },
  'grpc.streamsPerConnectionMax': { kind: 'int', default: '1000', min: 1, max: 2147483647, unit: 'streams', doc: 'Concurrent calls on one HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS); the client queues more or opens another connection.' },
  'grpc.controlFramesPerSecondMax': { kind: 'int', default: '200', min: 10, max: 1000000, unit: 'frames/s', doc: 'Per connection, in any one second: PING frames, and SETTINGS frames, each counted apart. Past it the connection gets GOAWAY ENHANCE_YOUR_CALM and is closed.' },
  'grpc.resetStreamsMax': { kind: 'int', default: '10', min: 1, max: 1000000, unit: 'streams', doc: 'Per connection: calls the client cancelled (RST_STREAM) before the server answered anything and within a second of their start. Past this many, while they are more than half of the calls the connection opened (HTTP/2 rapid reset), the connection gets GOAWAY ENHANCE_YOUR_CALM and is closed. A client that cancels a few calls among many, or ends calls that were answered or ran a while (devices closing their streams), is never cut.' },
  'grpc.abusePenaltyMs': { kind: 'int', default: '60000', min: 0, max: 3600000, unit: 'ms', doc: 'After a connection is closed for abuse (PING or SETTINGS floods, rapid reset), new connections from the same address are closed as they are accepted for this long; connections already open are not touched. 0: none.' },
  'tls.cert': { kind: 'string', default: '', path: true, optional: true, unit: 'path', doc: 'PEM certificate chain of the gRPC gateway and the HTTP surface; with tls.key, both serve TLS only. Empty: plaintext.' },
  'tls.key': { kind: 'string', default: '', path: true, optional: true, unit: 'path', doc: 'PEM private key for tls.cert.' },
  'tls.ca': { kind: 'string', default: '', path: true, optional: true, unit: 'path', doc: 'PEM CA certificate(s): when set, every gRPC and HTTP client must present a certificate signed by it (mutual TLS).' },
  'auth.tokenSecret': { kind: 'string', default: '', secret: true, doc: 'HMAC-SHA256 key of device tokens (`stratus token issue`). When set, every gRPC call (but health and reflection) and SSE request needs `authorization: Bearer <token>`, and a device can only send as itself and read its own results.' },
  'http.port': port(8080, 'HTTP port: /metrics, /livez, /readyz, SSE.'),
  'http.connectionsMax': { kind: 'int', default: '10000', min: 1, max: 1000000, unit: 'connections', doc: 'Open HTTP connections (SSE streams included) on http.port; a new one beyond it closes the connection idle the longest (between requests, or headers not complete), and is refused only when every open one has a request in progress.' },
  'http.sseHeartbeatMs': { kind: 'int', default: '15000', min: 100, max: 600000, unit: 'ms', doc: 'Interval of the comment lines an idle SSE stream gets, so proxies and clients see it alive.' },
  'http.sseStreamsMax': { kind: 'int', default: '8000', min: 1, max: 1000000, unit: 'streams', doc: 'SSE streams one process holds; beyond it an SSE request gets 503 with Retry-After. Must be below http.connectionsMax, so the rest is left for /livez, /readyz and /metrics; left at its default, it is capped at http.connectionsMax - 1.' },
  'http.headersTimeoutMs': { kind: 'int', default: '5000', min: 100, max: 600000, unit: 'ms', doc: 'Time a new HTTP connection gets to send its first request\'s complete headers, counted from its accept (later requests on a keep-alive connection: Node\'s own check, 5 s later); then 408 and the connection is closed (slowloris, idle sockets). Closed oldest first, a few hundred every 20 ms, so thousands expiring at once never stall the event loop.' },
  'http.requestTimeoutMs': { kind: 'int', default: '10000', min: 100, max: 3600000, unit: 'ms', doc: 'Time an HTTP connection gets to send a whole request (headers and body); then 408 and the connection is closed. Responses, SSE streams included, are not limited by it.' },
  'http.keepAliveTimeoutMs': { kind: 'int', default: '5000', min: 100, max: 600000, unit: 'ms', doc: 'An idle keep-alive HTTP connection is closed after this (Node adds up to 1 s).' },
  'http.corsOrigin': { kind: 'string', default: '*', pattern: /^(\*|https?:\/\/[A-Za-z0-9.\-]+(:\d{1,5})?|)$/, allowed: '*, an origin (scheme://host[:port]) or empty', doc: 'Access-Control-Allow-Origin on every HTTP response, and the answer to CORS preflight (OPTIONS) requests, so a page from another origin (or a file) can read SSE with EventSource or fetch (Authorization and Last-Event-ID allowed). `*`: any origin (no cookies are used, so none are exposed); an origin such as `https://app.example.com`: that one; empty: no CORS header, same origin only.' },
  'queue.name': { kind: 'string', default: 'events', doc: 'List queue that event.EventService/StreamEvents writes to (a call may name another with metadata x-queue).' },
  'queue.lengthMax': { kind: 'int', default: '1000000', min: 1, max: 100000000, unit: 'items', doc: 'Items one list queue may hold; a StreamEvents flush stores the events that fit and the call ends with RESOURCE_EXHAUSTED saying how many were stored.' },
  'queue.flushEventsMax': { kind: 'int', default: '500', min: 1, max: 100000, unit: 'events', doc: 'Events of one StreamEvents call sent to Redis in one variadic push; the call stops reading while a full flush is in flight.' },
  'queue.callsMax': { kind: 'int', default: '256', min: 1, max: 1000000, unit: 'calls', doc: 'StreamEvents calls in progress on one instance; beyond it a new call ends RESOURCE_EXHAUSTED before its first message is read.' },
  'queue.eventsPerSecondMax': { kind: 'int', default: '50000', min: 0, max: 100000000, unit: 'events/s', doc: 'Events per second StreamEvents takes on one instance, all calls together (a bucket of a tenth of a second\'s worth); beyond it the calls are not read until the budget refills (HTTP/2 flow control holds the clients), so a client pushing as fast as it can leaves the event loop and Redis to the devices. 0: no budget.' },
  'queue.leaseMs': { kind: 'int', default: '10000', min: 500, max: 3600000, unit: 'ms', doc: 'Worker heartbeat lease: a worker silent this long is dead, and live workers move its in-progress items back to the queue.' },
  'queue.attemptsMax': { kind: 'int', default: '5', min: 1, max: 1000, unit: 'attempts', doc: 'Times an item is tried (failures and dead workers both count) before it goes to the dead-letter list.' },
  'streams.lengthMax': { kind: 'int', default: '1000000', min: 100, max: 100000000, unit: 'entries', doc: 'Approximate cap (XADD MAXLEN ~) of the metrics stream.' },
  'streams.batchMetricsMax': { kind: 'int', default: '10000', min: 1, max: 100000, unit: 'metrics', doc: 'Metrics one IngestMetrics call may carry; more: INVALID_ARGUMENT.' },
  'streams.callsMax': { kind: 'int', default: '64', min: 1, max: 100000, unit: 'calls', doc: 'IngestMetric and IngestMetrics calls in progress on one instance, running (streams.callsActiveMax) or waiting their turn unread (HTTP/2 flow control holds their messages at the client); beyond it a new call ends RESOURCE_EXHAUSTED before its message is read.' },
  'streams.callsActiveMax': { kind: 'int', default: '1', min: 1, max: 1000, unit: 'calls', doc: 'IngestMetric(s) calls decoded, checked and written at once on one instance; the other calls in progress wait unread, in order. A call of 10,000 metrics holds the event loop for ~25 ms and Redis for ~40 ms: in turn, device streams wait behind one of them at most, not behind a burst.' },
  'streams.metricsPerSecondMax': { kind: 'int', default: '10000', min: 0, max: 100000000, unit: 'metrics/s', doc: 'Metrics per second IngestMetric(s) takes on one instance, all calls together (a bucket of a tenth of a second\'s worth); while it is empty a new call ends RESOURCE_EXHAUSTED before its message is read. 0: no budget.' },
  'streams.pendingMax': { kind: 'int', default: '100000', min: 1, max: 10000000, unit: 'entries', doc: 'Entries an exporter holds read but not yet acknowledged (acks follow a successful scrape); at the limit it stops reading.' },
  'streams.claimIdleMs': { kind: 'int', default: '30000', min: 100, max: 3600000, unit: 'ms', doc: 'Min idle time after which entries pending on a dead exporter are taken over (XAUTOCLAIM).' },
  'streams.seriesMax': { kind: 'int', default: '10000', min: 1, max: 10000000, unit: 'series', doc: 'Distinct (name, labels) series an exporter keeps; entries for new series beyond it are dead-lettered.' },
} as const satisfies Record<string, OptionSpec>;

export type OptionKey = keyof typeof OPTIONS;

export interface Config {
  readonly dataDir: string;
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error';
  readonly rssMaxMb: number;
  readonly redis: {
    readonly host: string;
    readonly port: number;
    readonly password: string;
    readonly keyPrefix: string;
    readonly mode: 'single' | 'cluster';
    readonly waitReplicas: number;
    readonly waitTimeoutMs: number;
    readonly deviceBufferMax: number;
    readonly deviceStateTtlMs: number;
  };
  readonly kafka: {
    readonly brokers: readonly string[];
    readonly controllerPort: number;
    readonly client: 'auto' | 'native' | 'platformatic';
    readonly heapMb: number;
    readonly topicPrefix: string;
    readonly partitions: number;
    readonly replicationFactor: number;
    readonly minInsyncReplicas: number;
    readonly lingerMs: number;
    readonly batchSizeMax: number;
    readonly recordEventsMax: number;
    readonly recordBytesMax: number;
    readonly producerQueueMax: number;
    readonly consumeBatchMax: number;
    readonly fetchWaitMaxMs: number;
    readonly fetchMinBytes: number;
    readonly deliveryTimeoutMs: number;
    readonly connectTimeoutMs: number;
  };
  readonly stack: { readonly startTimeoutMs: number };
  readonly instanceId: string;
  readonly archive: {
    readonly store: 'off' | 'sqlite' | 'postgres';
    readonly sqlitePath: string;
    readonly postgresUrl: string;
    readonly postgresSchema: string;
    readonly postgresConnectionsMax: number;
    readonly statementTimeoutMs: number;
    readonly batchRowsMax: number;
    readonly lingerMs: number;
    readonly payloadBytesMax: number;
    readonly retentionDays: number;
    readonly retentionIntervalMs: number;
    readonly retryMaxMs: number;
    readonly connectTimeoutMs: number;
    readonly historyLimitMax: number;
  };
  readonly processor: { readonly threads: number; readonly batchesInflightMax: number };
  readonly forwarder: { readonly scriptResultsMax: number; readonly scriptBytesMax: number; readonly deviceRetriesMax: number; readonly deviceRetryBaseMs: number; readonly redisRetryMaxMs: number; readonly deadLettersMax: number };
  readonly gateway: {
    readonly presenceLeaseMs: number;
    readonly devicesMax: number;
    readonly inflightMax: number;
    readonly outboundMax: number;
    readonly stallTimeoutMs: number;
    readonly payloadBytesMax: number;
    readonly ackWaitMaxMs: number;
    readonly deviceRatePerS: number;
    readonly deviceBurstMax: number;
    readonly drainGraceMs: number;
    readonly admitLeaseMs: number;
    readonly admitWaitMs: number;
    readonly admitTimeoutMs: number;
    readonly admitBatchMax: number;
    readonly admitQueueMax: number;
    readonly ingestCallsMax: number;
    readonly inflightBytesMax: number;
    readonly handoffWaitMs: number;
  };
  readonly tls: { readonly cert: string; readonly key: string; readonly ca: string };
  readonly auth: { readonly tokenSecret: string };
  readonly grpc: { readonly host: string; readonly port: number; readonly keepaliveTimeMs: number; readonly keepaliveTimeoutMs: number; readonly connectionsMax: number; readonly streamsPerConnectionMax: number; readonly controlFramesPerSecondMax: number; readonly resetStreamsMax: number; readonly abusePenaltyMs: number };
  readonly http: {
    readonly port: number;
    readonly connectionsMax: number;
    readonly sseHeartbeatMs: number;
    readonly sseStreamsMax: number;
    readonly headersTimeoutMs: number;
    readonly requestTimeoutMs: number;
    readonly keepAliveTimeoutMs: number;
    readonly corsOrigin: string;
  };
  readonly queue: { readonly name: string; readonly lengthMax: number; readonly flushEventsMax: number; readonly callsMax: number; readonly eventsPerSecondMax: number; readonly leaseMs: number; readonly attemptsMax: number };
  readonly streams: { readonly lengthMax: number; readonly batchMetricsMax: number; readonly callsMax: number; readonly callsActiveMax: number; readonly metricsPerSecondMax: number; readonly pendingMax: number; readonly claimIdleMs: number; readonly seriesMax: number };
}

/** A shorter HMAC key could be guessed offline from one token. */
export const TOKEN_SECRET_BYTES_MIN = 32;

/** `kafka.lingerMs` -> `STRATUS_KAFKA_LINGER_MS` */
export function envName(key: string): string {
  return 'STRATUS_' + key.replace(/\./g, '_').replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/** `kafka.lingerMs` -> `kafka-linger-ms` (the flag without its dashes) */
export function flagName(key: string): string {
  return key.replace(/\./g, '-').replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
}

/** This module's folder as a path: fileURLToPath, because a URL's pathname keeps `%20` for a space. */
const MODULE_DIR = fileURLToPath(new URL('.', import.meta.url));

/** The project root: the folder holding package.json, two levels above dist/src or src. */
export const PROJECT_ROOT = resolve(MODULE_DIR, MODULE_DIR.includes('/dist/') ? '../..' : '..');

export interface LoadConfigInput {
  env?: Record<string, string | undefined>;
  /** Config values from flags, keyed by flag name without dashes (as util.parseArgs gives them). */
  flags?: Record<string, unknown>;
  /** The .env file; default: `.env` in the working directory, or STRATUS_ENV_FILE. Missing is fine. */
  envFile?: string | null;
  root?: string;
}

function invalid(key: string, value: string, allowed: string): StratusError {
  // A secret's value is never echoed, not even a wrong one.
  const shown = (OPTIONS as Record<string, OptionSpec>)[key]?.secret ? '***' : JSON.stringify(value);
  return new StratusError(ErrorCode.CONFIG_INVALID, `config ${key} must be ${allowed} (got ${shown}; set by --${flagName(key)} or ${envName(key)})`);
}

function parseValue(key: string, spec: OptionSpec, raw: string, root: string): unknown {
  switch (spec.kind) {
    case 'int': {
      const range = `an integer from ${spec.min} to ${spec.max}${spec.unit ? ` (${spec.unit})` : ''}`;
      if (!/^-?\d+$/.test(raw.trim())) throw invalid(key, raw, range);
      const n = Number(raw.trim());
      if (!Number.isSafeInteger(n) || n < (spec.min ?? -Infinity) || n > (spec.max ?? Infinity)) throw invalid(key, raw, range);
      return n;
    }
    case 'bool':
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      throw invalid(key, raw, 'true or false');
    case 'enum':
      if (!spec.values!.includes(raw)) throw invalid(key, raw, `one of ${spec.values!.join(', ')}`);
      return raw;
    case 'hostPortList': {
      const list = raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
      const ok = list.length > 0 && list.every((hp) => {
        const m = /^([A-Za-z0-9.\-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(hp);
        return m !== null && Number(m[2]) >= 1 && Number(m[2]) <= 65535;
      });
      if (!ok) throw invalid(key, raw, 'a comma-separated list of host:port');
      return list;
    }
    case 'string':
      if (spec.path) {
        if (raw.trim() === '' && spec.optional) return '';
        if (raw.trim() === '') throw invalid(key, raw, 'a non-empty path');
        return isAbsolute(raw) ? raw : resolve(root, raw);
      }
      if (spec.pattern !== undefined && !spec.pattern.test(raw)) throw invalid(key, raw, spec.allowed!);
      return raw;
  }
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/** Loads, validates and freezes the configuration. Throws StratusError(CONFIG_INVALID) on the first bad value. */
export function loadConfig(input: LoadConfigInput = {}): Config {
  const env = input.env ?? process.env;
  const root = input.root ?? PROJECT_ROOT;
  const envFile = input.envFile === undefined ? (env.STRATUS_ENV_FILE ?? resolve(process.cwd(), '.env')) : input.envFile;
  let fileEnv: Record<string, string> = {};
  if (envFile !== null && existsSync(envFile)) {
    fileEnv = parseEnv(readFileSync(envFile, 'utf8')) as Record<string, string>;
  }
  const flags = input.flags ?? {};
  const known = new Set(Object.keys(OPTIONS).map(envName));
  for (const name of [...Object.keys(fileEnv), ...Object.keys(env)]) {
    if (name.startsWith('STRATUS_') && name !== 'STRATUS_ENV_FILE' && !known.has(name)) {
      throw new StratusError(ErrorCode.CONFIG_INVALID, `unknown setting ${name}: see \`stratus config print\` for the options`);
    }
  }

  const out: Record<string, Record<string, unknown> | unknown> = {};
  /** Keys set by a flag, the environment or the .env file rather than left at their default. */
  const explicit = new Set<string>();
  for (const [key, spec] of Object.entries(OPTIONS) as [string, OptionSpec][]) {
    const flag = flags[flagName(key)];
    const given = flag !== undefined ? String(flag) : env[envName(key)] ?? fileEnv[envName(key)];
    if (given !== undefined) explicit.add(key);
    const raw = given ?? spec.default;
    const value = parseValue(key, spec, raw, root);
    const dot = key.indexOf('.');
    if (dot < 0) out[key] = value;
    else {
      const section = key.slice(0, dot);
      ((out[section] ??= {}) as Record<string, unknown>)[key.slice(dot + 1)] = value;
    }
  }
  const config = out as unknown as Config;
  if (config.auth.tokenSecret !== '' && Buffer.byteLength(config.auth.tokenSecret) < TOKEN_SECRET_BYTES_MIN) {
    throw invalid('auth.tokenSecret', config.auth.tokenSecret, `at least ${TOKEN_SECRET_BYTES_MIN} bytes (e.g. \`openssl rand -hex 32\`)`);
  }
  if (config.kafka.minInsyncReplicas > config.kafka.replicationFactor) {
    throw invalid('kafka.minInsyncReplicas', String(config.kafka.minInsyncReplicas), `at most kafka.replicationFactor (${config.kafka.replicationFactor}): a partition never has more replicas in sync than it has`);
  }
  // SSE streams must leave room on the HTTP port for the probes and /metrics. A default that does
  // not fit a small http.connectionsMax is capped where it is used (sseStreamsLimit in http/server.ts).
  if (explicit.has('http.sseStreamsMax') && config.http.sseStreamsMax >= config.http.connectionsMax) {
    throw invalid('http.sseStreamsMax', String(config.http.sseStreamsMax), `below http.connectionsMax (${config.http.connectionsMax}), so /livez, /readyz and /metrics always find a connection`);
  }
  return deepFreeze(config);
}

/** Reads a dotted key back out of a Config. */
export function configValue(config: Config, key: OptionKey): unknown {
  return key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], config);
}

/** `key = value` lines with secrets masked, in table order. */
export function formatConfig(config: Config): string {
  const width = Math.max(...Object.keys(OPTIONS).map((k) => k.length));
  return (Object.entries(OPTIONS) as [OptionKey, OptionSpec][])
    .map(([key, spec]) => {
      const v = configValue(config, key);
      const shown = spec.secret ? (v === '' ? '(unset)' : '***') : Array.isArray(v) ? v.join(',') : String(v);
      return `${key.padEnd(width)}  ${shown}`;
    })
    .join('\n');
}

/** parseArgs option definitions for every config flag. */
export function configFlagOptions(): Record<string, { type: 'string' }> {
  return Object.fromEntries(Object.keys(OPTIONS).map((k) => [flagName(k), { type: 'string' as const }]));
}

/** The README's configuration table, generated so the docs can't drift from the code (a unit test compares). */
export function optionsMarkdown(): string {
  const rows = (Object.entries(OPTIONS) as [OptionKey, OptionSpec][]).map(([key, spec]) => {
    const def = spec.default === '' ? '(empty)' : `\`${spec.default}\``;
    const allowed = spec.kind === 'enum' ? `one of ${spec.values!.join(', ')}` : spec.kind === 'int' ? `${spec.min}..${spec.max}` : spec.kind === 'hostPortList' ? 'host:port,...' : spec.allowed !== undefined ? spec.allowed : spec.path ? (spec.optional ? 'path or empty' : 'path') : 'text';
    return `| \`${key}\` | \`${envName(key)}\` | \`--${flagName(key)}\` | ${def} | ${spec.unit ?? ''} | ${allowed} | ${spec.doc}${spec.secret ? ' Secret: masked in `config print`.' : ''} |`;
  });
  return ['| option | environment | flag | default | unit | allowed | meaning |', '|---|---|---|---|---|---|---|', ...rows].join('\n');
}
