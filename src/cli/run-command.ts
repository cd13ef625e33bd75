/**
 * `stratus run`: the engine's roles in one process. SIGTERM/SIGINT stop it gracefully (streams
 * drained within gateway.drainGraceMs, producer flushed, batches committed); a second signal exits
 * at once.
 *
 * Its log (role `run`, src/log.ts) says, once each: `started` with the addresses actually bound,
 * `stopping` on the signal, `stopped` per stage as its stop completes, and `drained` with what the
 * stop did (streams ended, events flushed, offsets committed, how long it took).
 */
import cluster, { type Worker } from 'node:cluster';
import { tlsFiles } from '../auth/tls.js';
import type { Config } from '../config.js';
import { ErrorCode, isStratusError, StratusError } from '../errors.js';
import { ensureTopics, waitForKafka } from '../kafka/admin.js';
import { answerMetricsRequests, clusterMetricsText } from '../http/cluster-metrics.js';
import { registerHealth } from '../http/health.js';
import { engineReadiness } from '../http/readiness.js';
import { HttpSurface, type HttpRoute } from '../http/server.js';
import { SseHub } from '../http/sse.js';
import { startForwarder } from '../forwarder/forwarder.js';
import { defaultInstanceId, Gateway } from '../gateway/gateway.js';
import { assertThreadsSupported, startGatewayThreads } from '../gateway/threads/gateway-threads.js';
import { startProcessor } from '../processor/processor.js';
import { startArchiver } from '../archive/archiver.js';
import { ReopeningStore } from '../archive/reopening-store.js';
import { historyOffRoute, historyRoute } from '../http/history-route.js';
import { checkListen, hostPort, type ListenTarget } from '../net/port-owner.js';
import { beginDrain, drainSummary, errorText, roleLog, setLogLevel } from '../log.js';
import { pingRedis, redisAddress } from '../redis/client.js';
import { Exporter } from '../streams/exporter.js';
import { topology } from '../topology.js';
import type { Command } from './command.js';

const ROLES = ['gateway', 'processor', 'forwarder', 'exporter', 'archiver'] as const;
type Role = (typeof ROLES)[number];

/** What `run` stops, in this order: the device-facing parts first, so they stop taking events and flush. */
const STOP_ORDER = ['workers', 'sse', 'gateway', 'forwarder', 'processor', 'exporter', 'archiver', 'archiveStore'] as const;
type StopSlot = (typeof STOP_ORDER)[number];

/**
 * How long start-up waits for Redis to answer PING. A refused connection fails at once; this bounds
 * an address that swallows packets (a firewall) or a server that accepts and never answers.
 */
const REDIS_START_TIMEOUT_MS = 5000;

/** A gateway worker's message to the primary when its start failed with an operating condition. */
const START_FAILED = 'stratus:start-failed';
interface StartFailed {
  type: typeof START_FAILED;
  code: ErrorCode;
  message: string;
}

export const runCommand: Command = {
  name: 'run',
  summary: 'Run the engine: gateway, processor, forwarder and exporter roles (all by default), and the archiver when archive.store is set.',
  usage: 'run [--roles gateway,processor,forwarder,exporter,archiver] [--threads N [--shard processes|threads]] [--grpc-port N] [--instance-id ID] [config flags]',
  flags: {
    roles: { type: 'string', doc: 'comma-separated roles to run (default: gateway, processor, forwarder, exporter, and archiver when archive.store is not off)' },
    threads: { type: 'string', doc: 'gateway front-end shards sharing the gRPC port; default 1, see README' },
    shard: { type: 'string', doc: 'with --threads N > 1: processes (node:cluster, default) or threads (worker threads with reusePort: Node >= 22.12, Bun)' },
  },
  usesConfig: true,
  async run({ flags, config }) {
    setLogLevel(config.logLevel);
    const log = roleLog('run');
    const defaultRoles = ROLES.filter((r) => r !== 'archiver' || config.archive.store !== 'off');
    const roles = String(flags.roles ?? defaultRoles.join(',')).split(',').map((r) => r.trim()).filter((r) => r !== '');
    for (const r of roles) {
      if (!(ROLES as readonly string[]).includes(r)) throw new StratusError(ErrorCode.USAGE, `--roles: unknown role "${r}"; use any of ${ROLES.join(', ')}`);
    }
    if (roles.includes('archiver') && config.archive.store === 'off') {
      throw new StratusError(ErrorCode.ARCHIVE_OFF, '--roles archiver needs a store: set archive.store to sqlite (a file under dataDir, no server) or postgres (archive.postgresUrl) with --archive-store or STRATUS_ARCHIVE_STORE');
    }
    const threads = flags.threads === undefined ? 1 : Number(flags.threads);
    if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new StratusError(ErrorCode.USAGE, `--threads must be a whole number from 1 to 64 (got ${JSON.stringify(flags.threads)})`);
    const shard = String(flags.shard ?? 'processes');
    if (shard !== 'processes' && shard !== 'threads') throw new StratusError(ErrorCode.USAGE, `--shard must be processes or threads (got ${JSON.stringify(flags.shard)})`);
    // gRPC I/O of a connection lives on one thread. --shard processes (default): the cluster
    // primary owns the port and deals connections round-robin to N gateway workers, each a full instance with its own id in
    // the presence registry. The processor and forwarder stay in the primary. --shard threads: N
    // worker threads of this process instead, each listening on the port with reusePort and
    // handing its sockets to its own grpc-js server (src/gateway/threads/).
    const shardGateway = threads > 1 && roles.includes('gateway') && cluster.isPrimary;
    const shardThreads = shardGateway && shard === 'threads';
    if (shardThreads) await assertThreadsSupported(config.grpc.host);
    const isShard = cluster.isWorker;
    const has = (r: Role) => (isShard ? r === 'gateway' : shardGateway && r === 'gateway' ? false : roles.includes(r));
    const instanceId = isShard ? `${defaultInstanceId(config)}-w${cluster.worker!.id}` : defaultInstanceId(config);
    const t = topology(config);
    const grpcTarget: ListenTarget = { what: 'gRPC', host: config.grpc.host, port: config.grpc.port, flag: '--grpc-port' };
    const httpTarget: ListenTarget = { what: 'HTTP', host: config.grpc.host, port: config.http.port, flag: '--http-port' };
    if (!isShard) {
      // Everything that can be wrong at start is found here, before anything is joined or written
      // (the primary checks for its gateway workers): a taken port would otherwise surface only
      // after the processor and forwarder joined their consumer groups, and their leaving would
      // stall the results of every other instance for a rebalance.
      await checkStart(config, roles.includes('gateway') ? [httpTarget, grpcTarget] : [httpTarget]);
      await ensureTopics(config, [
        { topic: t.topics.events, partitions: config.kafka.partitions, replicationFactor: config.kafka.replicationFactor, minInsyncReplicas: config.kafka.minInsyncReplicas },
        { topic: t.topics.results, partitions: config.kafka.partitions, replicationFactor: config.kafka.replicationFactor, minInsyncReplicas: config.kafka.minInsyncReplicas },
      ]);
    }
    /** What this process started, stopped in STOP_ORDER on a signal or when a later start fails. */
    const stops: Partial<Record<StopSlot, () => Promise<void>>> = {};
    const stopAll = async (): Promise<void> => {
      for (const slot of STOP_ORDER) {
        const stop = stops[slot];
        if (stop === undefined) continue;
        const startedAt = Date.now();
        // One stage's failure to stop must not keep the later ones running: it is logged, and the
        // next stage stops.
        await stop().then(
          () => log.info({ stage: slot, ms: Date.now() - startedAt }, `stopped ${slot}`),
          (err: unknown) => log.error({ stage: slot, ms: Date.now() - startedAt, err: errorText(err) }, `stopping ${slot} failed`),
        );
      }
    };
    /** Routes the roles of this process add to the HTTP surface (SSE, /metrics/ingested). */
    const httpRoutes: HttpRoute[] = [];
    const workers: Worker[] = [];
    let threadMetrics: (() => Promise<string>) | null = null;
    // /metrics, /livez, /readyz on http.port, in every process but a gateway shard: the primary
    // owns the port and merges its shards' metrics into its own.
    if (isShard) answerMetricsRequests();
    let http: HttpSurface | null = null;
    /** The addresses actually bound, for the start line. */
    const bound: { grpc?: string | string[]; http?: string } = {};
    // /readyz says "starting" until every role of this process is up, not as soon as the first
    // client registered.
    const started = registerHealth({ name: 'stratus run', problem: () => 'starting: roles are still coming up' });
    try {
      // The ports first, then what reads or writes shared state: the HTTP surface, then the gateway
      // (or its workers) binding gRPC, and only then the roles that join consumer groups (the
      // exporter's Redis Streams group, the processor's and forwarder's Kafka groups).
      if (!isShard) {
        http = await HttpSurface.start(config, engineReadiness(config), { routes: httpRoutes, metricsText: shardGateway ? () => (threadMetrics?.() ?? clusterMetricsText(workers)) : undefined });
      }
      if (has('gateway')) {
        const gw = await Gateway.start(config, instanceId);
        // The gateway stops first: it stops taking events and flushes what it took.
        stops.gateway = () => gw.stop();
        const addresses = gw.addresses();
        bound.grpc = addresses.length === 1 ? addresses[0]! : addresses;
        roleLog('gateway').info({ instance: instanceId, grpc: bound.grpc }, 'gateway listening');
      }
      if (shardThreads) {
        const gts = await startGatewayThreads(config, instanceId, threads);
        stops.workers = () => gts.stop();
        threadMetrics = () => gts.metricsText();
        bound.grpc = gts.address;
        roleLog('gateway').info({ threads, grpc: bound.grpc }, `gateway: ${threads} worker threads share the gRPC port (reusePort)`);
      } else if (shardGateway) {
        stops.workers = () => stopWorkers(workers);
        for (let i = 0; i < threads; i++) workers.push(cluster.fork({ STRATUS_INSTANCE_ID: '' }));
        await workersReady(workers);
        bound.grpc = hostPort(config.grpc.host, config.grpc.port);
        roleLog('gateway').info({ workers: threads, grpc: bound.grpc }, `gateway: ${threads} worker processes share the gRPC port`);
      }
      if (http !== null && roles.includes('gateway')) {
        // SSE is a device stream like Connect: wherever the gateway role runs, its HTTP port serves it.
        const sse = await SseHub.start(config, instanceId);
        httpRoutes.push(sse.route());
        stops.sse = () => sse.stop();
      }
      if (has('exporter') && http !== null) {
        // Metrics ingested on Redis Streams, served as Prometheus text on this process's HTTP port.
        const exporter = await Exporter.start(config, instanceId);
        httpRoutes.push(exporter.route());
        stops.exporter = () => exporter.stop();
      }
      if (has('forwarder')) stops.forwarder = (await startForwarder(config, instanceId)).stop;
      if (has('processor')) stops.processor = (await startProcessor(config, instanceId)).stop;
      if (!isShard && config.archive.store !== 'off' && (has('archiver') || http !== null)) {
        // One store per process: the archiver writes to it, GET /v1/devices/{id}/history reads it.
        // Opening creates or migrates the schema, and refuses one it does not know (one line). The
        // store merely unreachable does not stop the start: the archive is beside the real-time
        // path. The archiver waits for it (/readyz and the lag say so), history answers 503, and
        // each opens it as soon as it answers.
        const store = new ReopeningStore(config);
        stops.archiveStore = () => store.close();
        await store.open().catch((err: unknown) => {
          if (!isStratusError(err) || err.code !== ErrorCode.ARCHIVE_UNAVAILABLE || !err.retryable) throw err;
          log.warn({ store: store.kind, where: store.where, err: err.message }, 'the archive store does not answer: starting without it; the archiver and history wait for it');
        });
        // Before SSE's route: both live under /v1/devices/.
        httpRoutes.unshift(historyRoute(config, store));
        // Where it shares the process with the gateway, a store outage is reported (/readyz says
        // "degraded") without taking the gateway out of service: it costs lag, not events.
        if (has('archiver')) stops.archiver = (await startArchiver(config, instanceId, store, { degradedOnly: roles.includes('gateway') })).stop;
      }
      if (http !== null && config.archive.store === 'off') httpRoutes.unshift(historyOffRoute());
      started();
    } catch (err) {
      // Nothing half-started stays behind: what started is stopped (workers killed) before the
      // one line is printed and the process exits.
      await stopAll();
      await http?.close();
      if (isShard && isStratusError(err)) {
        // The primary prints this worker's line (once, not once per worker) and exits.
        await new Promise<void>((resolve) => process.send!({ type: START_FAILED, code: err.code, message: err.message } satisfies StartFailed, undefined, {}, () => resolve()));
        cluster.worker!.disconnect();
        return 1;
      }
      throw err;
    }
    const surface = http;
    return new Promise<number>((resolve) => {
      let stopping = false;
      const onSignal = (sig: string) => {
        if (stopping) {
          // A shard gets the terminal's signal and the primary's relay: only the primary forces.
          if (isShard) return;
          log.warn({ signal: sig }, `second ${sig}, exiting now`);
          process.exit(1);
        }
        stopping = true;
        beginDrain();
        log.info({ signal: sig }, `${sig}: stopping (send it again to force)`);
        if (surface !== null) surface.draining = true;
        void (async () => {
          await stopAll();
          // A shard's IPC channel to the primary would keep it alive: let go of it.
          await surface?.close();
          log.info(drainSummary(), 'drained');
          if (isShard) cluster.worker!.disconnect();
          resolve(0);
        })();
      };
      process.on('SIGTERM', () => onSignal('SIGTERM'));
      process.on('SIGINT', () => onSignal('SIGINT'));
      // Announced once the handlers are in place: whoever waits for these (the primary, a
      // supervisor, the tests) may send SIGTERM the moment it reads them.
      if (isShard) process.send?.('ready');
      if (surface !== null) bound.http = surface.address;
      log.info({ roles: isShard ? ['gateway'] : roles, instance: instanceId, ...bound }, 'started');
    });
  },
};

/**
 * The start-up checks, cheapest first, each failing with one line that names what is wrong and the
 * fix: the TLS files, the ports (free, and not the same one twice), Redis, then Kafka within
 * kafka.connectTimeoutMs. Nothing is written anywhere.
 */
async function checkStart(config: Config, ports: readonly ListenTarget[]): Promise<void> {
  tlsFiles(config);
  const [a, b] = ports;
  if (a !== undefined && b !== undefined && a.port !== 0 && a.port === b.port) {
    throw new StratusError(ErrorCode.USAGE, `grpc.port and http.port are both ${a.port}; give each its own port (${b.flag}, ${a.flag})`);
  }
  for (const p of ports) await checkListen(p);
  await checkRedis(config);
  await waitForKafka(config, config.kafka.connectTimeoutMs);
}

/** pingRedis, its failure said for start-up: unreachable, refused password, or silent. */
async function checkRedis(config: Config): Promise<void> {
  try {
    await pingRedis(config, REDIS_START_TIMEOUT_MS);
  } catch (err) {
    // pingRedis's REDIS_UNAVAILABLE carries the connection's own error as its cause.
    const cause = (err as { cause?: unknown }).cause ?? err;
    const detail = cause instanceof Error ? cause.message : String(cause);
    const code = (cause as { code?: unknown } | null)?.code;
    const at = redisAddress(config);
    const auth = /^(WRONGPASS|NOAUTH)\b/.exec(detail)?.[1];
    if (auth !== undefined) {
      const what = auth === 'NOAUTH' ? `Redis at ${at} requires a password (NOAUTH)` : `Redis at ${at} refused the password of redis.password (WRONGPASS)`;
      throw new StratusError(ErrorCode.REDIS_UNAVAILABLE, `${what}; set redis.password (STRATUS_REDIS_PASSWORD, --redis-password) to the one the server requires`, { cause: err });
    }
    if (typeof code === 'string') {
      throw new StratusError(ErrorCode.REDIS_UNAVAILABLE, `Redis unreachable at ${at} (${code}); start it with \`npx stratus stack up\` or set redis.host / redis.port (--redis-host, --redis-port)`, { retryable: true, cause: err });
    }
    throw new StratusError(
      ErrorCode.REDIS_UNAVAILABLE,
      `Redis at ${at} did not answer within ${REDIS_START_TIMEOUT_MS} ms (${detail}); check that redis.host / redis.port (--redis-host, --redis-port) name a Redis server`,
      { retryable: true, cause: err },
    );
  }
}

/**
 * Resolves once every gateway worker bound the gRPC port (it sends 'ready'); when one fails, the
 * others are stopped too and this throws that worker's line (START_FAILED), or says how it exited.
 */
function workersReady(workers: readonly Worker[]): Promise<void> {
  let failed: StartFailed | null = null;
  let ready = 0;
  const listeners: { w: Worker; onMessage: (m: unknown) => void; onExit: (code: number, signal: string) => void }[] = [];
  return new Promise<void>((resolve, reject) => {
    for (const w of workers) {
      const onMessage = (m: unknown) => {
        if ((m as Partial<StartFailed> | null)?.type === START_FAILED) failed ??= m as StartFailed;
        else if (m === 'ready' && ++ready === workers.length) resolve();
      };
      const onExit = (code: number, signal: string) =>
        reject(failed !== null ? new StratusError(failed.code, failed.message) : new StratusError(ErrorCode.STACK_START_FAILED, `gateway worker ${w.id} exited (${signal ?? `code ${code}`}) while starting; its stderr above says why`));
      w.on('message', onMessage);
      w.on('exit', onExit);
      listeners.push({ w, onMessage, onExit });
    }
  }).finally(() => {
    for (const { w, onMessage, onExit } of listeners) {
      w.off('message', onMessage);
      w.off('exit', onExit);
    }
  });
}

/** SIGTERM to every live worker (a graceful stop once it runs, an immediate end while it starts); resolves once all exited. */
async function stopWorkers(workers: readonly Worker[]): Promise<void> {
  await Promise.all(workers.map((w) => new Promise<void>((resolve) => {
    if (w.isDead()) return resolve();
    w.once('exit', () => resolve());
    w.process.kill('SIGTERM');
  })));
}
