/**
 * `stratus run`: the engine's roles in one process. SIGTERM/SIGINT stop it gracefully (streams
 * drained within gateway.drainGraceMs, producer flushed, batches committed); a second signal exits
 * at once.
 */
import cluster from 'node:cluster';
import { ErrorCode, StratusError } from '../errors.js';
import { ensureTopics } from '../kafka/admin.js';
import { answerMetricsRequests, clusterMetricsText } from '../http/cluster-metrics.js';
import { engineReadiness } from '../http/readiness.js';
import { HttpSurface, type HttpRoute } from '../http/server.js';
import { SseHub } from '../http/sse.js';
import { startForwarder } from '../forwarder/forwarder.js';
import { defaultInstanceId, Gateway } from '../gateway/gateway.js';
import { startProcessor } from '../processor/processor.js';
import { Exporter } from '../streams/exporter.js';
import { topology } from '../topology.js';
import type { Command } from './command.js';

const ROLES = ['gateway', 'processor', 'forwarder', 'exporter'] as const;
type Role = (typeof ROLES)[number];

export const runCommand: Command = {
  name: 'run',
  summary: 'Run the engine: gateway, processor, forwarder and exporter roles (all by default).',
  usage: 'run [--roles gateway,processor,forwarder,exporter] [--grpc-port N] [--instance-id ID] [config flags]',
  flags: {
    roles: { type: 'string', doc: 'comma-separated roles to run (default: all four)' },
    threads: { type: 'string', doc: 'gateway front-end processes sharing the gRPC port (cluster); default 1, see README' },
  },
  usesConfig: true,
  async run({ flags, config }) {
    const roles = String(flags.roles ?? ROLES.join(',')).split(',').map((r) => r.trim()).filter((r) => r !== '');
    for (const r of roles) {
      if (!(ROLES as readonly string[]).includes(r)) throw new StratusError(ErrorCode.USAGE, `--roles: unknown role "${r}"; use any of ${ROLES.join(', ')}`);
    }
    const threads = flags.threads === undefined ? 1 : Number(flags.threads);
    if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new StratusError(ErrorCode.USAGE, `--threads must be a whole number from 1 to 64 (got ${JSON.stringify(flags.threads)})`);
    // gRPC I/O of a connection lives on one thread and grpc-js cannot hand a socket to a
    // worker_thread, so front-end sharding is by process: the cluster primary owns the port and
    // deals connections round-robin to N gateway workers, each a full instance with its own id in
    // the presence registry. The processor and forwarder stay in the primary.
    const shardGateway = threads > 1 && roles.includes('gateway') && cluster.isPrimary;
    const isShard = cluster.isWorker;
    const has = (r: Role) => (isShard ? r === 'gateway' : shardGateway && r === 'gateway' ? false : roles.includes(r));
    const instanceId = isShard ? `${defaultInstanceId(config)}-w${cluster.worker!.id}` : defaultInstanceId(config);
    const t = topology(config);
    await ensureTopics(config, [
      { topic: t.topics.events, partitions: config.kafka.partitions },
      { topic: t.topics.results, partitions: config.kafka.partitions },
    ]);
    const stops: (() => Promise<void>)[] = [];
    /** Routes the roles of this process add to the HTTP surface (SSE, /metrics/ingested). */
    const httpRoutes: HttpRoute[] = [];
    const workers: import('node:cluster').Worker[] = [];
    // /metrics, /livez, /readyz on http.port, in every process but a gateway shard: the primary
    // owns the port and merges its shards' metrics into its own.
    if (isShard) answerMetricsRequests();
    const http = isShard
      ? null
      : await HttpSurface.start(config, engineReadiness(config), { routes: httpRoutes, metricsText: shardGateway ? () => clusterMetricsText(workers) : undefined });
    if (has('forwarder')) stops.push((await startForwarder(config, instanceId)).stop);
    if (has('processor')) stops.push((await startProcessor(config, instanceId)).stop);
    if (has('gateway')) {
      const gw = await Gateway.start(config, instanceId);
      // The gateway stops first: it stops taking events and flushes what it took.
      stops.unshift(() => gw.stop());
      process.stderr.write(`gateway ${instanceId} listening on 127.0.0.1:${gw.port}\n`);
    }
    if (has('exporter') && http !== null) {
      // Metrics ingested on Redis Streams, served as Prometheus text on this process's HTTP port.
      const exporter = await Exporter.start(config, instanceId);
      httpRoutes.push(exporter.route());
      stops.push(() => exporter.stop());
    }
    if (http !== null && roles.includes('gateway')) {
      // SSE is a device stream like Connect: wherever the gateway role runs, its HTTP port serves it.
      const sse = await SseHub.start(config, instanceId);
      httpRoutes.push(sse.route());
      stops.unshift(() => sse.stop());
    }
    if (shardGateway) {
      for (let i = 0; i < threads; i++) workers.push(cluster.fork({ STRATUS_INSTANCE_ID: '' }));
      await Promise.all(workers.map((w) => new Promise<void>((resolve, reject) => {
        w.once('message', (m: unknown) => (m === 'ready' ? resolve() : undefined));
        w.once('exit', (code) => reject(new StratusError(ErrorCode.USAGE, `gateway worker exited with code ${code} while starting`)));
      })));
      stops.unshift(() => Promise.all(workers.map((w) => new Promise<void>((resolve) => {
        if (w.isDead()) return resolve();
        w.once('exit', () => resolve());
        w.process.kill('SIGTERM');
      }))).then(() => {}));
      process.stderr.write(`gateway: ${threads} worker processes on 127.0.0.1:${config.grpc.port}\n`);
    }
    if (isShard) process.send?.('ready');
    if (http !== null) process.stderr.write(`http on ${config.grpc.host}:${http.port}: /metrics /livez /readyz\n`);
    process.stderr.write(`stratus run: ${isShard ? 'gateway' : roles.join(', ')} as ${instanceId}\n`);
    return new Promise<number>((resolve) => {
      let stopping = false;
      const onSignal = (sig: string) => {
        if (stopping) {
          // A shard gets the terminal's signal and the primary's relay: only the primary forces.
          if (isShard) return;
          process.stderr.write(`stratus run: second ${sig}, exiting now\n`);
          process.exit(1);
        }
        stopping = true;
        process.stderr.write(`stratus run: ${sig}, stopping (again to force)\n`);
        if (http !== null) http.draining = true;
        void (async () => {
          for (const stop of stops) await stop().catch((err: unknown) => process.stderr.write(`stratus run: ${String(err)}\n`));
          // A shard's IPC channel to the primary would keep it alive: let go of it.
          await http?.close();
          if (isShard) cluster.worker!.disconnect();
          resolve(0);
        })();
      };
      process.on('SIGTERM', () => onSignal('SIGTERM'));
      process.on('SIGINT', () => onSignal('SIGINT'));
    });
  },
};
