/**
 * The connection options every @platformatic/kafka client of the engine shares, spelled out: the
 * library's defaults (clients/base/options.js:78-87 in 2.12.1: connectTimeout 5 s, timeout 5 s,
 * retries 3, retryDelay 1 s) are not the engine's.
 */
import type { Config } from '../../config.js';

/** Retry backoff: 100 ms doubling to 1 s, like the native clients' retry.backoff (native/client.ts). */
export function retryDelayMs(_client: unknown, _operation: string, attempt: number): number {
  return Math.min(1000, 100 * 2 ** Math.max(0, attempt - 1));
}

/** Attempts a call gets: enough to cover `budgetMs` at the backoff above, and at least 2 (see below). */
export function retriesFor(budgetMs: number): number {
  let spent = 0;
  let attempts = 0;
  while (spent < budgetMs && attempts < 10_000) spent += retryDelayMs(null, '', ++attempts);
  // An idempotent producer turns retries <= 1 into Number.MAX_SAFE_INTEGER (producer.js:39-41):
  // a send to a dead broker would never end. 2 is the least that keeps a bound.
  return Math.max(2, attempts);
}

export function baseOptions(config: Config, clientId: string, budgetMs: number) {
  return {
    clientId,
    bootstrapBrokers: [...config.kafka.brokers],
    // A broker that does not complete the TCP connect in 10 s counts as down for this attempt (as
    // socket.connection.setup.timeout.ms in native/client.ts).
    connectTimeout: 10_000,
    // One request without an answer fails after this and is retried (native: socket.timeout.ms 30 s);
    // never longer than the budget of the calls it serves.
    timeout: Math.min(30_000, Math.max(1000, budgetMs)),
    retries: retriesFor(budgetMs),
    retryDelay: retryDelayMs,
    // Topics are created explicitly (admin.ts ensureTopics), never by producing to or reading a name.
    autocreateTopics: false,
  };
}
