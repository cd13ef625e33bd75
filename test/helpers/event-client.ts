/**
 * A client for event.EventService built from the field list, not from proto/event/: the
 * .proto below is written here by hand, so a drift in the served contract shows as a failing test.
 * Also: worker child processes and Redis clean-up for the list-queue tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, loadPackageDefinition, Metadata, type Client, type ClientWritableStream, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { PROJECT_ROOT, type Config } from '../../src/config.js';
import { findLogLine } from '../../src/log.js';
import { createRedis, type RedisClient } from '../../src/redis/client.js';
import { deleteEach, scanKeys } from './redis-keys.js';

const FIELD_LIST_PROTO = `syntax = "proto3";
package event;
message Event { string event_id = 1; string type = 2; int64 timestamp = 3; }
message StreamSummary { bool success = 1; int32 events_received = 2; }
service EventService { rpc StreamEvents(stream Event) returns (StreamSummary); }
`;

export interface EventIn {
  event_id: string;
  type: string;
  /** Decimal string: exact over int64. */
  timestamp: string;
}

export interface CallResult {
  summary: { success: boolean; events_received: number } | null;
  error: ServiceError | null;
}

type EventServiceClient = Client & {
  StreamEvents(md: Metadata, cb: (err: ServiceError | null, res?: { success: boolean; events_received: number }) => void): ClientWritableStream<EventIn>;
};

export function eventClient(address: string): EventServiceClient {
  const dir = mkdtempSync(join(tmpdir(), 'event-proto-'));
  writeFileSync(join(dir, 'event.proto'), FIELD_LIST_PROTO);
  const def = loadSync('event.proto', { includeDirs: [dir], keepCase: true, longs: String, defaults: true });
  const pkg = loadPackageDefinition(def) as unknown as { event: { EventService: new (a: string, c: ReturnType<typeof credentials.createInsecure>) => EventServiceClient } };
  return new pkg.event.EventService(address, credentials.createInsecure());
}

/** One StreamEvents call: writes every event (respecting backpressure), ends, waits for the answer. */
export function streamEvents(client: EventServiceClient, events: readonly EventIn[], queue?: string): Promise<CallResult> {
  const md = new Metadata();
  if (queue !== undefined) md.set('x-queue', queue);
  return new Promise((resolve) => {
    let done = false;
    const call = client.StreamEvents(md, (err, res) => {
      done = true;
      resolve({ summary: res ?? null, error: err });
    });
    call.on('error', () => {});
    let i = 0;
    const write = () => {
      while (i < events.length && !done) {
        if (!call.write(events[i++]!)) return void call.once('drain', write);
      }
      if (!done) call.end();
    };
    write();
  });
}

export function events(n: number, prefix = 'e'): EventIn[] {
  return Array.from({ length: n }, (_, i) => ({ event_id: `${prefix}${i}`, type: 'click', timestamp: String(1_700_000_000_000 + i) }));
}

export function item(e: EventIn): string {
  return JSON.stringify({ event_id: e.event_id, type: e.type, timestamp: e.timestamp });
}

export async function queueRedis(config: Config): Promise<RedisClient> {
  const r = createRedis(config, 'test-queue', { offlineQueue: true });
  await r.connect();
  return r;
}

/** Every key under the config's prefix (on every master of a cluster). */
export async function keysUnder(redis: RedisClient, config: Config): Promise<string[]> {
  return scanKeys(redis, `${config.redis.keyPrefix}*`);
}

export async function deleteKeys(redis: RedisClient, config: Config): Promise<void> {
  await deleteEach(redis, await keysUnder(redis, config));
  redis.disconnect();
}

export async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface WorkerProcess {
  child: ChildProcess;
  /** Worker id from its start line. */
  id: string;
  stderr(): string;
  /** Exit code (null when killed by a signal). */
  exited: Promise<number | null>;
}

/** `node bin/stratus.js worker ...` with the test's Redis prefix and queue options; resolves once it is consuming. */
export async function spawnWorker(config: Config, args: string[]): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'stratus.js'), 'worker', ...args], {
    env: {
      ...process.env,
      STRATUS_REDIS_HOST: config.redis.host,
      STRATUS_REDIS_PORT: String(config.redis.port),
      STRATUS_REDIS_KEY_PREFIX: config.redis.keyPrefix,
      STRATUS_QUEUE_LEASE_MS: String(config.queue.leaseMs),
      STRATUS_QUEUE_ATTEMPTS_MAX: String(config.queue.attemptsMax),
      STRATUS_QUEUE_LENGTH_MAX: String(config.queue.lengthMax),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const id = await Promise.race([
    waitFor('the worker\'s start line', async () => {
      const started = findLogLine(err, 'started', 'worker');
      return typeof started?.worker === 'string' ? started.worker : undefined;
    }, 15_000),
    exited.then((code) => Promise.reject(new Error(`worker exited with ${code} while starting: ${err}`))),
  ]);
  return { child, id, stderr: () => err, exited };
}
