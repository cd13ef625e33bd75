/**
 * @platformatic/kafka's errors as the engine decides on them (KafkaFailure).
 *
 * The library's errors nest (errors.js in 2.12.1): a failed call after retries is a MultipleErrors
 * (PLT_KFK_MULTIPLE) of each attempt's error; a broker's answer with error codes is a ResponseError
 * (PLT_KFK_RESPONSE, itself a MultipleErrors) of ProtocolErrors (PLT_KFK_PROTOCOL) that carry the
 * broker's `apiId` ('UNKNOWN_TOPIC_OR_PARTITION', 'TOPIC_ALREADY_EXISTS', ...) and `canRetry`. A
 * refused or lost connection is a NetworkError (PLT_KFK_NETWORK); a request that timed out is a
 * TimeoutError, whose `code` is also PLT_KFK_NETWORK (errors.js:175-179 passes NetworkError.code).
 * So the whole tree is walked, not the top error only.
 */
import { KafkaClientError, type KafkaFailure } from '../types.js';

interface Node {
  code?: unknown;
  apiId?: unknown;
  canRetry?: unknown;
  message?: unknown;
  errors?: unknown;
  cause?: unknown;
}

/** Every error in the tree under `err` (itself included), depth first; bounded against cycles. */
function walk(err: unknown, out: Node[] = [], depth = 0): Node[] {
  if (err === null || typeof err !== 'object' || depth > 8 || out.length > 200) return out;
  const node = err as Node;
  out.push(node);
  if (Array.isArray(node.errors)) for (const e of node.errors) walk(e, out, depth + 1);
  if (node.cause !== undefined) walk(node.cause, out, depth + 1);
  return out;
}

/** The broker error ids (ProtocolError.apiId) anywhere in the tree. */
export function apiIds(err: unknown): string[] {
  return walk(err).flatMap((n) => (typeof n.apiId === 'string' ? [n.apiId] : []));
}

/** Broker answers a later call may not get: the topic or partition is not (yet) there, or moved. */
const TRANSIENT_API_IDS = new Set([
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_OR_FOLLOWER',
  'FENCED_LEADER_EPOCH',
  'NOT_CONTROLLER',
  'COORDINATOR_NOT_AVAILABLE',
  'NOT_COORDINATOR',
  'COORDINATOR_LOAD_IN_PROGRESS',
  'NOT_ENOUGH_REPLICAS',
  'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  'REQUEST_TIMED_OUT',
  'REBALANCE_IN_PROGRESS',
]);

/** The failure an error of the library stands for. */
export function failureOf(err: unknown): KafkaFailure {
  const nodes = walk(err);
  const ids = new Set(nodes.flatMap((n) => (typeof n.apiId === 'string' ? [n.apiId] : [])));
  if (ids.has('TOPIC_ALREADY_EXISTS')) return 'topic-exists';
  if (ids.has('INVALID_REPLICATION_FACTOR')) return 'replication-factor';
  if (ids.has('UNKNOWN_TOPIC_OR_PARTITION') || ids.has('UNKNOWN_TOPIC_ID')) return 'unknown-topic';
  // metadata() of a topic the broker does not know replaces the broker's UNKNOWN_TOPIC_OR_PARTITION
  // with a UserError naming the topic, and nothing else (clients/base/base.js:470-477 in 2.12.1).
  if (nodes.some((n) => n.code === 'PLT_KFK_USER' && typeof n.message === 'string' && n.message.startsWith('Unknown topic '))) return 'unknown-topic';
  if (nodes.some((n) => n.code === 'PLT_KFK_NETWORK' || n.code === 'PLT_KFK_TIMEOUT')) return 'unavailable';
  if ([...ids].some((id) => TRANSIENT_API_IDS.has(id))) return 'unavailable';
  // A deadline of our own (bounded() below) or an error that is not the library's at all.
  if (nodes.length > 0 && nodes.every((n) => typeof n.code !== 'string' || !n.code.startsWith('PLT_KFK_'))) return 'unavailable';
  return 'refused';
}

/** The messages of the tree's leaves (the broker's own words), joined; the top message when it has none. */
export function detailOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const leaves = walk(err).filter((n) => !(Array.isArray(n.errors) && n.errors.length > 0) && n !== err);
  const parts = [...new Set(leaves.map((n) => (typeof n.apiId === 'string' ? `${n.apiId}: ${String(n.message)}` : String(n.message))))];
  return parts.length === 0 ? err.message : `${err.message}: ${parts.slice(0, 5).join('; ')}${parts.length > 5 ? `; and ${parts.length - 5} more` : ''}`;
}

/** A library error as every EngineAdmin method, delivery report and probe of this client reports it. */
export function platformaticFailure(err: unknown, what?: string): KafkaClientError {
  if (err instanceof KafkaClientError) return err;
  // A deadline names its call already.
  if (err instanceof DeadlineError) what = undefined;
  const detail = detailOf(err);
  return new KafkaClientError(failureOf(err), what === undefined ? detail : `${what}: ${detail}`, 'platformatic', { cause: err });
}

/** The call's own deadline passed (the library may still be retrying it). */
export class DeadlineError extends Error {
  constructor(what: string, timeoutMs: number) {
    super(`${what}: no answer within ${timeoutMs} ms`);
    this.name = 'DeadlineError';
  }
}

/**
 * `promise`, or a DeadlineError after timeoutMs, whichever comes first. The library's own request
 * timeout and retries are per client and a retrying call can outlive any one caller's patience;
 * the promise left behind is observed so that its late rejection is not unhandled.
 */
export function bounded<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(what, timeoutMs)), timeoutMs);
    timer.unref();
  });
  // The late outcome of a call given up on has no one left to tell; its failure was reported as the deadline.
  promise.catch(() => {});
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
