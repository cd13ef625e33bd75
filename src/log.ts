/**
 * The process's log: one root pino logger, one child per role, always on stderr (stdout is for a
 * command's own output).
 *
 *   not a TTY (a pipe, a file, a supervisor):  one JSON object per line, pino's own shape
 *     {"level":30,"time":1764900000000,"pid":7,"hostname":"h","role":"gateway","msg":"started",...}
 *   a TTY (a person at a terminal):            one readable line, through pino-pretty
 *     [04:31:07.123] INFO (gateway): started {"grpc":"0.0.0.0:50051","http":"0.0.0.0:8080"}
 *
 * Writes are synchronous: a line logged just before process.exit() is not lost. The JSON sink
 * writes through process.stderr, which Node makes synchronous on Linux for files, pipes and TTYs
 * (Node's "A note on process I/O"); pino-pretty is called as a plain function (prettyFactory), not
 * as a worker-thread transport, so the pretty sink is synchronous too.
 *
 * Levels are pino's, named as config.logLevel names them (debug 20, info 30, warn 40, error 50).
 * Operating conditions are logged once per change of state (Kafka lost / back); anything a client
 * can trigger goes through RateLimitedLog.
 */
import pino, { type DestinationStream, type Logger } from 'pino';
import PinoPretty from 'pino-pretty';
import type { Config } from './config.js';

export type { Logger } from 'pino';

/** The roles that log, each a child of the root logger with `role` on every line. */
export const LOG_ROLES = ['run', 'gateway', 'processor', 'forwarder', 'exporter', 'sse', 'http', 'worker', 'kafka', 'redis', 'memory', 'archive'] as const;
export type LogRole = (typeof LOG_ROLES)[number];

/** A stream a logger writes to: process.stderr, or a test's capture. */
export interface LogStream {
  write(chunk: string): unknown;
  /** true for a terminal: readable lines instead of JSON. */
  isTTY?: boolean;
}

export interface LoggerOptions {
  level?: Config['logLevel'];
  stream?: LogStream;
}

/** The pino-pretty options of a TTY: time, level, role, message, then the other fields on the same line. */
const PRETTY: PinoPretty.PrettyOptions = {
  colorize: true,
  translateTime: 'SYS:HH:MM:ss.l',
  ignore: 'pid,hostname,role',
  messageFormat: '{if role}({role}) {end}{msg}',
  singleLine: true,
};

/**
 * A root logger writing to `stream` (process.stderr when not given): readable lines when the
 * stream is a TTY, JSON lines otherwise. Exported for tests; the process uses `log`.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const stream = options.stream ?? process.stderr;
  return pino({ level: options.level ?? 'info' }, sinkFor(stream));
}

/** What the logger writes into: the stream itself (JSON), or pino-pretty in front of it (a TTY). */
export function sinkFor(stream: LogStream): DestinationStream & { pretty: boolean } {
  if (stream.isTTY === true) {
    const pretty = PinoPretty.prettyFactory({ ...PRETTY, colorize: PRETTY.colorize === true && process.env.NO_COLOR === undefined });
    return { pretty: true, write: (line: string) => void stream.write(pretty(line)) };
  }
  return { pretty: false, write: (line: string) => void stream.write(line) };
}

/** The process's root logger. Its level is config.logLevel once a command called setLogLevel(). */
export const log: Logger = createLogger({ level: levelFromEnv() });

const children = new Map<LogRole, Logger>();

/** The child logger of a role (one per role, created on first use): every line carries `role`. */
export function roleLog(role: LogRole): Logger {
  let child = children.get(role);
  if (child === undefined) {
    child = log.child({ role });
    children.set(role, child);
  }
  return child;
}

/**
 * Sets the level of the root logger and of every role's child (pino children keep the level they
 * were created with). `stratus run` and `stratus worker` call it with config.logLevel.
 */
export function setLogLevel(level: Config['logLevel']): void {
  log.level = level;
  for (const child of children.values()) child.level = level;
}

/**
 * STRATUS_LOG_LEVEL read directly, for lines logged before a command loaded its config (module
 * start-up); config.ts validates the same variable, and setLogLevel() applies the validated value.
 */
function levelFromEnv(): Config['logLevel'] {
  const v = process.env.STRATUS_LOG_LEVEL;
  return v === 'debug' || v === 'info' || v === 'warn' || v === 'error' ? v : 'info';
}

/** The message and name of an error, for a log field (never its stack: one line per event). */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export interface RateLimitOptions {
  /** Lines per key per interval before the rest are suppressed. */
  linesMax?: number;
  intervalMs?: number;
  /** Keys tracked at once; past it, new keys share one bucket ('*'). */
  keysMax?: number;
  now?: () => number;
}

interface Bucket {
  windowStartMs: number;
  lines: number;
  suppressed: number;
  level: 'info' | 'warn' | 'error';
  /** Invariant: timer !== null iff suppressed > 0 (the count waits for the window's end). */
  timer: NodeJS.Timeout | null;
}

/**
 * Log lines a client can trigger (a bad token, a malformed call, a device's bad event), at a
 * bounded rate: per key, at most linesMax lines per intervalMs; the rest are counted, and when the
 * window ends one line says how many were suppressed:
 *
 *   {"level":40,...,"role":"gateway","key":"bad-event","suppressed":4995,"intervalMs":10000,"msg":"4995 similar lines suppressed"}
 *
 * Memory is bounded by keysMax buckets.
 */
export class RateLimitedLog {
  readonly linesMax: number;
  readonly intervalMs: number;
  private readonly keysMax: number;
  private readonly now: () => number;
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly logger: Logger,
    options: RateLimitOptions = {},
  ) {
    this.linesMax = options.linesMax ?? 5;
    this.intervalMs = options.intervalMs ?? 10_000;
    this.keysMax = options.keysMax ?? 256;
    this.now = options.now ?? Date.now;
  }

  warn(key: string, fields: object, msg: string): void {
    this.write('warn', key, fields, msg);
  }

  error(key: string, fields: object, msg: string): void {
    this.write('error', key, fields, msg);
  }

  info(key: string, fields: object, msg: string): void {
    this.write('info', key, fields, msg);
  }

  /** Writes the suppressed counts now (a test, or a stopping stage) and forgets every key. */
  flush(): void {
    for (const [key, b] of this.buckets) this.endWindow(key, b);
    this.buckets.clear();
  }

  private write(level: Bucket['level'], key: string, fields: object, msg: string): void {
    const now = this.now();
    if (!this.buckets.has(key) && this.buckets.size >= this.keysMax) {
      this.prune(now);
      if (this.buckets.size >= this.keysMax) key = '*';
    }
    let b = this.buckets.get(key);
    if (b !== undefined && now - b.windowStartMs >= this.intervalMs) {
      this.endWindow(key, b);
      b = undefined;
    }
    if (b === undefined) {
      b = { windowStartMs: now, lines: 0, suppressed: 0, level, timer: null };
      this.buckets.set(key, b);
    }
    if (b.lines < this.linesMax) {
      b.lines++;
      this.logger[level]({ ...fields, key }, msg);
      return;
    }
    b.suppressed++;
    b.level = level;
    if (b.timer === null) {
      const bucket = b;
      b.timer = setTimeout(() => {
        bucket.timer = null;
        if (this.buckets.get(key) === bucket) this.buckets.delete(key);
        this.endWindow(key, bucket);
      }, Math.max(0, b.windowStartMs + this.intervalMs - now));
      // A pending count never keeps the process alive.
      b.timer.unref();
    }
  }

  /** The suppressed-count line of a bucket whose window ended (nothing when none were suppressed). */
  private endWindow(key: string, b: Bucket): void {
    if (b.timer !== null) clearTimeout(b.timer);
    b.timer = null;
    if (b.suppressed === 0) return;
    const n = b.suppressed;
    b.suppressed = 0;
    this.logger[b.level]({ key, suppressed: n, intervalMs: this.intervalMs }, `${n} similar line${n === 1 ? '' : 's'} suppressed`);
  }

  /** Drops buckets whose window ended (writing their counts). */
  private prune(now: number): void {
    for (const [key, b] of this.buckets) {
      if (now - b.windowStartMs >= this.intervalMs) {
        this.endWindow(key, b);
        this.buckets.delete(key);
      }
    }
  }
}

/**
 * What a graceful stop did, counted by the stages from the moment `stratus run` got its signal
 * (beginDrain) and logged once by it as the drain summary. Each stage logs its own step line too.
 */
export const drainTally = {
  /** When the stop began (Date.now()); null while the process is not stopping. */
  startedAtMs: null as number | null,
  /** Device streams (gRPC Connect, Nimbus, SSE) ended by the stop. */
  streamsEnded: 0,
  /** Messages made durable in Kafka (delivery reports without error) since the stop began: events and results. */
  eventsFlushed: 0,
  /** Messages still without a delivery report when a producer gave up waiting. */
  eventsUnflushed: 0,
  /** Partition offsets committed since the stop began (processor and forwarder consumers). */
  offsetsCommitted: 0,
};

/** Starts counting the drain (drainTally); the first call wins. */
export function beginDrain(now: number = Date.now()): void {
  drainTally.startedAtMs ??= now;
}

/** The drain summary's fields. */
export function drainSummary(now: number = Date.now()): { streamsEnded: number; eventsFlushed: number; eventsUnflushed: number; offsetsCommitted: number; ms: number } {
  const { streamsEnded, eventsFlushed, eventsUnflushed, offsetsCommitted, startedAtMs } = drainTally;
  return { streamsEnded, eventsFlushed, eventsUnflushed, offsetsCommitted, ms: startedAtMs === null ? 0 : now - startedAtMs };
}

/**
 * One dependency (Kafka, Redis) as the process sees it through several clients: "lost" is logged
 * when the first client loses it, "back" when the last one that lost it has it again, with how long
 * it was away. Clients losing and regaining it in between (reconnect attempts, the other clients
 * noticing) add no line:
 *
 *   {"level":40,...,"role":"redis","client":"stratus-x-gateway","err":"connect ECONNREFUSED 127.0.0.1:6379","msg":"Redis lost"}
 *   {"level":30,...,"role":"redis","downMs":3120,"msg":"Redis back"}
 */
export class OutageLog {
  /** Clients that lost the dependency and have not got it back. Bounded by the clients the process builds. */
  private readonly down = new Set<unknown>();
  private sinceMs = 0;

  constructor(
    private readonly logger: Logger,
    private readonly what: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** `client` lost it (idempotent); `fields` go on the "lost" line if this is the first. */
  lost(client: unknown, fields: object): void {
    if (this.down.has(client)) return;
    this.down.add(client);
    if (this.down.size > 1) return;
    this.sinceMs = this.now();
    this.logger.warn(fields, `${this.what} lost`);
  }

  /** `client` has it again (a no-op for a client that never lost it). */
  back(client: unknown, fields: object = {}): void {
    if (!this.down.delete(client) || this.down.size > 0) return;
    this.logger.info({ ...fields, downMs: this.now() - this.sinceMs }, `${this.what} back`);
  }

  /** `client` was closed on purpose: it no longer counts, and its closing is no recovery. */
  forget(client: unknown): void {
    this.down.delete(client);
  }

  /** True while some client has lost it. */
  get isDown(): boolean {
    return this.down.size > 0;
  }
}

/** One JSON log line's fields (pino's level, time, msg, role, ...), or null for any other line. */
export type LogLine = Record<string, unknown> & { level: number; time: number; msg: string };

/** `line` parsed, when it is one of this log's JSON lines. */
export function parseLogLine(line: string): LogLine | null {
  if (!line.startsWith('{')) return null;
  try {
    const v = JSON.parse(line) as Partial<LogLine>;
    return typeof v.level === 'number' && typeof v.time === 'number' && typeof v.msg === 'string' ? (v as LogLine) : null;
  } catch {
    // Not one of ours (or cut mid-line): the reader skips it, as it skips any non-JSON line.
    return null;
  }
}

/**
 * The first complete JSON line in `text` (a child's stderr so far) with this msg (and role, when
 * given): how a parent waits for `stratus run`'s `started` line and reads its bound addresses.
 */
export function findLogLine(text: string, msg: string, role?: string): LogLine | null {
  for (const line of text.split('\n').slice(0, -1)) {
    const l = parseLogLine(line);
    if (l !== null && l.msg === msg && (role === undefined || l.role === role)) return l;
  }
  return null;
}
