/**
 * A gateway worker thread of `run --threads N --shard threads`: one full Gateway (its own Redis
 * clients and instance id `<id>-t<k>`; its Kafka producer its own with @platformatic/kafka, and
 * with the native client one that forwards to the main thread's, port-producer.ts says why), listening on the shared gRPC port with
 * reusePort (reuse-port-acceptor.ts). It reads its Config and id from workerData and talks to the
 * primary over parentPort only (gateway-threads.ts has the messages): `ready` once bound, or
 * `start-failed` with the StratusError's code and line; metrics on request; on `stop`, the
 * gateway's graceful stop (streams drained, producer flushed), then `stopped`, and the thread ends.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { answerThreadMetricsRequests } from '../../http/cluster-metrics.js';
import { beginDrain, drainSummary, errorText, roleLog, setLogLevel } from '../../log.js';
import { isStratusError } from '../../errors.js';
import { Gateway } from '../gateway.js';
import { THREAD_MESSAGE, type GatewayThreadData, type ThreadReply } from './gateway-threads.js';
import { portClients } from './port-producer.js';

const port = parentPort!;
const data = workerData as GatewayThreadData;
setLogLevel(data.config.logLevel);
const log = roleLog('gateway');
const post = (m: ThreadReply): void => port.postMessage(m);
answerThreadMetricsRequests(port);

try {
  const gw = await Gateway.start(data.config, data.instanceId, data.port, { reusePort: true, kafka: data.producerPort === null ? undefined : portClients(data.producerPort, data.kafkaKind, data.producerQueueMax) });
  port.on('message', (m: { type?: string }) => {
    if (m?.type !== THREAD_MESSAGE.stop) return;
    beginDrain();
    void gw.stop().then(
      () => {
        log.info({ instance: data.instanceId, ...drainSummary() }, 'drained');
        post({ type: THREAD_MESSAGE.stopped });
        // Nothing of the gateway is left on the event loop: letting go of the port ends the thread.
        port.close();
      },
      (err: unknown) => {
        log.error({ instance: data.instanceId, err: errorText(err) }, 'gateway thread stop failed');
        post({ type: THREAD_MESSAGE.stopped });
        port.close();
      },
    );
  });
  post({ type: THREAD_MESSAGE.ready, port: gw.port, address: gw.addresses()[0]! });
} catch (err) {
  // An operating condition is said once by the primary; anything else is a programmer error and
  // ends the thread with its stack (the primary's 'error' listener logs it).
  if (!isStratusError(err)) throw err;
  post({ type: THREAD_MESSAGE.startFailed, code: err.code, message: err.message });
  port.close();
}
