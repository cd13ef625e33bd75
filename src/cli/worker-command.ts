/**
 * `stratus worker`: consumes one list queue with a handler until SIGTERM/SIGINT, which stop it
 * gracefully (items in progress finished, nothing left in its processing list, deregistered); a
 * second signal exits at once (its items are then reclaimed by live workers after queue.leaseMs).
 */
import { ErrorCode, StratusError } from '../errors.js';
import { engineReadiness } from '../http/readiness.js';
import { HttpSurface } from '../http/server.js';
import { roleLog, setLogLevel } from '../log.js';
import { HANDLERS } from '../queue/handlers.js';
import { queueNameProblem } from '../queue/list-queue.js';
import { CONCURRENCY_MAX, QueueWorker } from '../queue/worker.js';
import { topology } from '../topology.js';
import type { Command } from './command.js';

const HANDLER_DELAY_MS_MAX = 3_600_000;

export const workerCommand: Command = {
  name: 'worker',
  summary: 'Consume a Redis list queue (filled by event.EventService) reliably, with a handler.',
  usage: 'worker [--queue NAME] [--concurrency N] [--handler NAME] [--handler-delay-ms N] [--metrics] [config flags]',
  flags: {
    queue: { type: 'string', doc: 'queue to consume (default: queue.name)' },
    concurrency: { type: 'string', doc: `items handled at once, each loop with its own Redis connection: 1..${CONCURRENCY_MAX} (default 1)` },
    handler: { type: 'string', doc: `what to do with each item: ${[...HANDLERS.keys()].join(', ')} (default record)` },
    'handler-delay-ms': { type: 'string', doc: 'simulated work before the handler runs, per item (drills, tests); default 0' },
    metrics: { type: 'boolean', doc: 'serve /metrics (the queue counters), /livez and /readyz on http.port, bound to grpc.host, as `stratus run` does' },
  },
  usesConfig: true,
  async run({ flags, config }) {
    setLogLevel(config.logLevel);
    const queue = flags.queue === undefined ? config.queue.name : String(flags.queue);
    const problem = queueNameProblem(queue);
    if (problem !== null) throw new StratusError(ErrorCode.USAGE, `--queue ${problem}`);
    const concurrency = wholeNumber(flags.concurrency, '--concurrency', 1, 1, CONCURRENCY_MAX);
    const handlerDelayMs = wholeNumber(flags['handler-delay-ms'], '--handler-delay-ms', 0, 0, HANDLER_DELAY_MS_MAX);
    const handlerName = flags.handler === undefined ? 'record' : String(flags.handler);
    const handler = HANDLERS.get(handlerName);
    if (handler === undefined) throw new StratusError(ErrorCode.USAGE, `--handler must be one of ${[...HANDLERS.keys()].join(', ')} (got ${JSON.stringify(handlerName)})`);
    // The port first: a taken one fails the start before the worker registers anywhere.
    const http = flags.metrics === true ? await HttpSurface.start(config, engineReadiness(config)) : null;
    const worker = await QueueWorker.start(config, { queue, concurrency, handler, handlerDelayMs }).catch(async (err: unknown) => {
      await http?.close();
      throw err;
    });
    const log = roleLog('worker');
    log.info({ worker: worker.id, queue: topology(config).redis.queue(queue), concurrency, handler: handlerName, ...(http === null ? {} : { http: http.address }) }, 'started');
    return new Promise<number>((resolve) => {
      let stopping = false;
      const onSignal = (sig: string) => {
        if (stopping) {
          log.warn({ signal: sig }, `second ${sig}, exiting now`);
          process.exit(1);
        }
        stopping = true;
        const stopAt = Date.now();
        log.info({ signal: sig }, `${sig}: finishing items in progress (send it again to force)`);
        if (http !== null) http.draining = true;
        void worker.stop().then(async () => {
          await http?.close();
          const s = worker.stats;
          log.info({ worker: worker.id, done: s.done, duplicates: s.duplicates, failed: s.failed, deadLettered: s.deadLettered, reclaimed: s.reclaimed, ms: Date.now() - stopAt }, 'stopped');
          resolve(0);
        });
      };
      process.on('SIGTERM', () => onSignal('SIGTERM'));
      process.on('SIGINT', () => onSignal('SIGINT'));
    });
  },
};

function wholeNumber(value: unknown, flag: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(String(value)) || n < min || n > max) throw new StratusError(ErrorCode.USAGE, `${flag} must be a whole number from ${min} to ${max} (got ${JSON.stringify(value)})`);
  return n;
}
