/**
 * Which Kafka client library this process uses (kafka.client), imported only when chosen: Bun
 * never loads the native addon (@confluentinc/kafka-javascript cannot load there), and Node loads
 * @platformatic/kafka only when asked for.
 */
import type { Config } from '../config.js';
import { ErrorCode, StratusError } from '../errors.js';
import type { KafkaClientKind, KafkaClients } from './types.js';

/** Bun, when this process runs on it (it sets process.versions.bun). */
export const onBun = typeof (process.versions as { bun?: string }).bun === 'string';

/**
 * @platformatic/kafka 2.x needs Node >= 22.22 or >= 24.6 (its `engines`; on Node 20 it fails at its
 * first call, Promise.withResolvers). Its 1.x line, which npm would pick on Node 20, loses messages
 * when sends to one partition overlap (platformatic/kafka#326, fixed in 2.3.0), so the project pins
 * 2.12.1 and refuses older Node rather than fall back.
 */
export function platformaticRuntimeProblem(versions: NodeJS.ProcessVersions = process.versions): string | null {
  if (typeof (versions as { bun?: string }).bun === 'string') return null;
  const [major = 0, minor = 0] = versions.node.split('.').map(Number);
  if ((major === 22 && minor >= 22) || (major === 24 && minor >= 6) || major === 23 || major >= 25) return null;
  return `@platformatic/kafka 2.x needs Node >= 22.22 or >= 24.6, or Bun; this is Node ${versions.node}`;
}

/** kafka.client resolved: auto is platformatic on Bun, native on Node. */
export function kafkaClientKind(config: Config): KafkaClientKind {
  const wanted = config.kafka.client;
  if (wanted === 'auto') return onBun ? 'platformatic' : 'native';
  if (wanted === 'native' && onBun) {
    throw new StratusError(
      ErrorCode.CONFIG_INVALID,
      'kafka.client=native cannot run on Bun: @confluentinc/kafka-javascript is a NAN addon built for Node\'s ABI, and Bun lacks V8 C++ symbols it calls; use kafka.client=platformatic (or auto) on Bun',
    );
  }
  if (wanted === 'platformatic') {
    const problem = platformaticRuntimeProblem();
    if (problem !== null) throw new StratusError(ErrorCode.CONFIG_INVALID, `kafka.client=platformatic: ${problem}; run on Node 24 or Bun, or use kafka.client=native (STRATUS_KAFKA_CLIENT)`);
  }
  return wanted;
}

const loaded = new Map<KafkaClientKind, Promise<KafkaClients>>();

/** The chosen library's clients (imported once per process). */
export function kafkaClients(config: Config): Promise<KafkaClients> {
  const kind = kafkaClientKind(config);
  let clients = loaded.get(kind);
  if (clients === undefined) {
    clients = kind === 'native' ? import('./native/clients.js').then((m) => m.nativeClients) : import('./platformatic/clients.js').then((m) => m.platformaticClients);
    loaded.set(kind, clients);
  }
  return clients;
}
