/**
 * `run --threads N --shard threads`: N gateway worker threads in this process, each a full Gateway
 * listening on the shared gRPC port with reusePort (gateway-thread.ts). The kernel spreads new
 * connections over their listeners; the processor, forwarder and SSE stay on the main thread, as
 * with worker processes (--shard processes, node:cluster).
 *
 * Start: the runtime must honour reusePort (probeReusePort, in-process); if it does not, start
 * refuses with SHARD_UNSUPPORTED naming `--shard processes` rather than quietly running something
 * other than what was asked. Thread 1 binds first (grpc.port 0 becomes a real port), the others
 * bind that port. A thread whose start fails stops the others and its line is the error.
 * Stop: every thread drains at once (its streams ended, its producer flushed); resolves once all exited.
 *
 * Messages, primary -> thread: `stop`, metrics requests (cluster-metrics.ts);
 * thread -> primary: ThreadReply, metrics replies.
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type { Config } from '../../config.js';
import { ErrorCode, StratusError } from '../../errors.js';
import { threadMetricsText } from '../../http/cluster-metrics.js';
import { registerHealth } from '../../http/health.js';
import { errorText, roleLog } from '../../log.js';
import { kafkaClients } from '../../kafka/factory.js';
import type { EngineProducer, KafkaClientKind } from '../../kafka/types.js';
import { probeReusePort } from '../../net/reuse-port.js';
import { hostProducer } from './port-producer.js';

export const THREAD_MESSAGE = {
  ready: 'stratus:thread-ready',
  startFailed: 'stratus:thread-start-failed',
  stop: 'stratus:thread-stop',
  stopped: 'stratus:thread-stopped',
} as const;

/** What a gateway thread is started with (workerData: structured-cloned, so plain data only). */
export interface GatewayThreadData {
  readonly config: Config;
  readonly instanceId: string;
  readonly port: number;
  /**
   * The thread's end of its channel to the main thread's producer (port-producer.ts), or null: the
   * thread builds its own producer (a pure-JavaScript client, which loads in any thread).
   */
  readonly producerPort: MessagePort | null;
  readonly kafkaKind: KafkaClientKind;
  /** This thread's share of kafka.producerQueueMax. */
  readonly producerQueueMax: number;
}

export type ThreadReply =
  | { type: typeof THREAD_MESSAGE.ready; port: number; address: string }
  | { type: typeof THREAD_MESSAGE.startFailed; code: ErrorCode; message: string }
  | { type: typeof THREAD_MESSAGE.stopped };

interface GatewayThread {
  readonly name: string;
  readonly worker: Worker;
  alive: boolean;
}

export interface GatewayThreads {
  /** The gRPC address every thread listens on. */
  readonly address: string;
  /** The primary's metrics merged with every thread's (cluster-metrics.ts). */
  metricsText(): Promise<string>;
  /** Graceful stop of every thread at once; resolves once all exited. */
  stop(): Promise<void>;
}

const log = roleLog('gateway');
/** A thread that has not ended this long after its gateway stopped is terminated (something still holds its event loop). */
const EXIT_AFTER_STOP_MS = 5000;

/** Throws SHARD_UNSUPPORTED when this runtime's net ignores reusePort. */
export async function assertThreadsSupported(host: string): Promise<void> {
  const probe = await probeReusePort(host);
  if (!probe.supported) {
    throw new StratusError(
      ErrorCode.SHARD_UNSUPPORTED,
      `--shard threads needs net's reusePort (Node >= 22.12, Bun), which ${process.release.name} ${process.version} does not honour: ${probe.reason}; use --shard processes (the default), or run on a newer runtime`,
    );
  }
}

export async function startGatewayThreads(config: Config, baseInstanceId: string, count: number): Promise<GatewayThreads> {
  const threads: GatewayThread[] = [];
  // Until every thread is up, /readyz says so; afterwards, a thread that ended unasked makes it 503.
  let problem: string | null = 'starting: gateway threads are still coming up';
  const unregister = registerHealth({ name: 'gateway threads', problem: () => problem });
  let stopping = false;
  // The native Kafka addon cannot load in a worker thread: with it, one real producer for every
  // thread, here. @platformatic/kafka is plain JavaScript: each thread builds its own.
  const clients = await kafkaClients(config);
  const shared = clients.kind === 'native';
  const channels = shared ? Array.from({ length: count }, () => new MessageChannel()) : [];
  const producer: EngineProducer | null = shared ? await hostProducer(config, clients, `${baseInstanceId}-gateway`, channels.map((c) => c.port1)) : null;
  const spawn = async (k: number, port: number): Promise<{ port: number; address: string }> => {
    const producerPort = shared ? channels[k - 1]!.port2 : null;
    const data: GatewayThreadData = { config, instanceId: `${baseInstanceId}-t${k}`, port, producerPort, kafkaKind: clients.kind, producerQueueMax: Math.max(1, Math.floor(config.kafka.producerQueueMax / count)) };
    const worker = new Worker(new URL('./gateway-thread.js', import.meta.url), { workerData: data, transferList: producerPort === null ? [] : [producerPort], name: `gateway-t${k}` });
    const thread: GatewayThread = { name: `t${k}`, worker, alive: true };
    threads.push(thread);
    worker.on('error', (err) => log.error({ thread: thread.name, err: errorText(err) }, `gateway thread ${thread.name} failed`));
    worker.once('exit', (code) => {
      thread.alive = false;
      if (!stopping && problem === null) {
        problem = `gateway thread ${thread.name} exited (code ${code}); its devices reconnect to the other threads`;
        log.error({ thread: thread.name, code }, problem);
      }
    });
    return new Promise((resolve, reject) => {
      const onMessage = (m: ThreadReply) => {
        if (m.type === THREAD_MESSAGE.ready) resolve({ port: m.port, address: m.address });
        else if (m.type === THREAD_MESSAGE.startFailed) reject(new StratusError(m.code, m.message));
      };
      worker.on('message', onMessage);
      worker.once('exit', (code) => reject(new StratusError(ErrorCode.STACK_START_FAILED, `gateway thread t${k} exited (code ${code}) while starting; the log above says why`)));
    });
  };
  const stop = async (): Promise<void> => {
    stopping = true;
    await Promise.all(threads.map((t) => new Promise<void>((resolve) => {
      if (!t.alive) return resolve();
      t.worker.once('exit', () => resolve());
      t.worker.on('message', (m: ThreadReply) => {
        if (m.type === THREAD_MESSAGE.stopped) setTimeout(() => void t.worker.terminate(), EXIT_AFTER_STOP_MS).unref();
      });
      t.worker.postMessage({ type: THREAD_MESSAGE.stop });
    })));
    // Every thread flushed its messages through it: now the producer flushes and disconnects.
    for (const c of channels) c.port1.close();
    await producer?.disconnect();
    unregister();
  };
  try {
    // Thread 1 first: with grpc.port 0 it picks the port the others then share.
    const first = await spawn(1, config.grpc.port);
    const rest = await Promise.allSettled(Array.from({ length: count - 1 }, (_, i) => spawn(i + 2, first.port)));
    const failed = rest.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
    problem = null;
    return { address: first.address, metricsText: () => threadMetricsText(threads), stop };
  } catch (err) {
    // A thread that started is stopped (nothing was acknowledged on it yet); one still starting is ended.
    await stop();
    throw err;
  }
}
