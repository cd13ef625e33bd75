/**
 * `stratus loadgen` flags, checked once before anything starts. Every problem names the flag and
 * what is allowed; a run never starts with a fleet of 0 or a negative rate.
 */
import { parseDurationFlagS } from '../src/cli/duration.js';
import { ErrorCode, StratusError } from '../src/errors.js';
import { parseThreshold, type ThresholdSpec } from './thresholds.js';

export const APIS = ['stratus', 'nimbus', 'event-stream', 'metrics'] as const;
export type Api = (typeof APIS)[number];
export const PROFILES = ['iot', 'mobile', 'burst'] as const;
export type Profile = (typeof PROFILES)[number];

export const DEVICES_MAX = 1_000_000;
export const WORKERS_MAX = 64;
export const BATCH_MAX = 10_000;
export const PAYLOAD_BYTES_MAX = 4 * 1024 * 1024;

/** Resolved options: plain data, so it crosses into worker threads as workerData. */
export interface LoadgenOptions {
  target: string;
  api: Api;
  devices: number;
  /** HTTP/2 connections the fleet is multiplexed over (1..devices). */
  connections: number;
  /** Devices connected per second; 0 = all at once. */
  rampPerS: number;
  profile: Profile;
  /** Mean events per second per device. */
  ratePerDevice: number;
  /** Events per uplink (one Uplink message, one StreamEvents call, one IngestMetrics call). */
  batch: number;
  payloadBytes: number;
  durationS: number;
  /**
   * The warm-up: the fleet connects (at most until warmupMaxS), then warmupS more seconds of load
   * before the measured window starts (loadgen.ts). A fleet not connected by warmupMaxS is measured
   * anyway, with a warning in the summary.
   */
  warmupS: number;
  /** Latest start of the measured window, s after t0 (default: ramp time + connect timeout + warmupS). */
  warmupMaxS: number;
  /** After the last send: how long to wait for outstanding acks and results before reconciling. */
  drainS: number;
  workers: number;
  seed: number;
  /** Fraction 0..1 of devices that read their downlink slowly (pause 2 s, read 0.5 s). */
  slowReaders: number;
  /** ghz-style closed loop (next uplink only after the previous one is acked); for comparison. */
  closedLoop: boolean;
  /**
   * Expect acks only: the target acknowledges but sends no results (a gateway run without the
   * processor and forwarder, or a bare server measuring the transport's ceiling).
   */
  ackOnly: boolean;
  /** Processor named in each event (Stratus API). */
  type: string;
  /** List queue (event-stream API: metadata x-queue); null = the server's default. */
  queue: string | null;
  devicePrefix: string;
  /** A stream with no response headers (or a unary call with no answer) after this is STALLED. */
  connectTimeoutMs: number;
  tls: boolean;
  tlsCa: string | null;
  /** Client certificate and key for mutual TLS; both or neither. */
  tlsCert: string | null;
  tlsKey: string | null;
  tokenSecret: string | null;
  reportDir: string | null;
  thresholds: ThresholdSpec[];
  json: boolean;
}

export type RawFlags = Record<string, string | boolean | string[] | undefined>;

const usage = (msg: string) => new StratusError(ErrorCode.USAGE, msg);

/** A duration flag in seconds, in Go's format ("250ms", "90s", "1h30m"; src/cli/duration.ts). */
export function parseDurationS(flag: string, raw: string, allowZero: boolean): number {
  return parseDurationFlagS(flag, raw, allowZero);
}

function int(flags: RawFlags, name: string, fallback: number, min: number, max: number): number {
  const raw = flags[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (String(raw).trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    throw usage(`--${name} must be an integer from ${min} to ${max} (got ${JSON.stringify(raw)})`);
  }
  return n;
}

function positive(flags: RawFlags, name: string): number | null {
  const raw = flags[name];
  if (raw === undefined) return null;
  const n = Number(raw);
  if (String(raw).trim() === '' || !Number.isFinite(n) || n <= 0) throw usage(`--${name} must be a number above 0 (got ${JSON.stringify(raw)})`);
  return n;
}

function oneOf<T extends string>(flags: RawFlags, name: string, allowed: readonly T[], fallback: T): T {
  const raw = flags[name];
  if (raw === undefined) return fallback;
  if (!allowed.includes(String(raw) as T)) throw usage(`--${name} must be one of ${allowed.join(', ')} (got ${JSON.stringify(raw)})`);
  return String(raw) as T;
}

function str(flags: RawFlags, name: string): string | null {
  const raw = flags[name];
  return raw === undefined ? null : String(raw);
}

export function resolveOptions(flags: RawFlags, defaultTarget: string): LoadgenOptions {
  const target = str(flags, 'target') ?? defaultTarget;
  if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(target) || Number(target.slice(target.lastIndexOf(':') + 1)) > 65535) {
    throw usage(`--target must be host:port, e.g. 127.0.0.1:50051 or [::1]:50051 (got ${JSON.stringify(target)})`);
  }
  const devices = int(flags, 'devices', 10_000, 1, DEVICES_MAX);
  const connections = int(flags, 'connections', Math.ceil(devices / 100), 1, devices);
  const rate = positive(flags, 'rate');
  const totalRate = positive(flags, 'total-rate');
  if (rate !== null && totalRate !== null) throw usage('--rate (per device) and --total-rate (whole fleet) are alternatives; give one');
  const ratePerDevice = rate ?? (totalRate !== null ? totalRate / devices : 1);
  const batch = int(flags, 'batch', 1, 1, BATCH_MAX);
  const slowRaw = flags['slow-readers'];
  const slowReaders = slowRaw === undefined ? 0 : Number(slowRaw);
  if (!(slowReaders >= 0 && slowReaders <= 1) || String(slowRaw).trim() === '') throw usage(`--slow-readers must be a fraction from 0 to 1 (got ${JSON.stringify(slowRaw)})`);
  const api = oneOf(flags, 'api', APIS, 'stratus');
  const tlsCa = str(flags, 'tls-ca');
  const tlsCert = str(flags, 'tls-cert');
  const tlsKey = str(flags, 'tls-key');
  if ((tlsCert === null) !== (tlsKey === null)) throw usage('--tls-cert and --tls-key go together (the client certificate for mutual TLS and its key)');
  const tls = flags.tls === true || tlsCa !== null || tlsCert !== null;
  const thresholdExprs = (flags.threshold as string[] | undefined) ?? [];
  const seedRaw = flags.seed;
  const seed = seedRaw === undefined ? (Math.random() * 2 ** 32) >>> 0 : int(flags, 'seed', 0, 0, 2 ** 32 - 1);
  const devicePrefix = str(flags, 'device-prefix') ?? `lg-${Date.now().toString(36)}-${(Math.random() * 2 ** 32 >>> 0).toString(36)}-`;
  if (!/^[A-Za-z0-9._:/-]{0,64}$/.test(devicePrefix)) throw usage(`--device-prefix must be 0..64 of A-Z a-z 0-9 . _ : / - (got ${JSON.stringify(devicePrefix)})`);
  if (flags['ack-only'] === true && api === 'nimbus') throw usage('--ack-only needs an API with acknowledgements; nimbus answers with results only');
  const type = str(flags, 'type') ?? 'sq';
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(type)) throw usage(`--type must name a processor, e.g. sq (got ${JSON.stringify(type)})`);
  const rampPerS = int(flags, 'ramp', 0, 0, DEVICES_MAX);
  const warmupS = flags.warmup === undefined ? 5 : parseDurationS('--warmup', String(flags.warmup), true);
  const connectTimeoutMs = flags['connect-timeout'] === undefined ? 10_000 : Math.round(parseDurationS('--connect-timeout', String(flags['connect-timeout']), false) * 1000);
  // By default the fleet has its whole ramp plus one connect timeout to connect.
  const rampS = rampPerS > 0 ? (devices - 1) / rampPerS : 0;
  const warmupMaxS = flags['warmup-max'] === undefined ? rampS + connectTimeoutMs / 1000 + warmupS : parseDurationS('--warmup-max', String(flags['warmup-max']), true);
  if (warmupMaxS < warmupS) throw usage(`--warmup-max must be at least --warmup (${warmupS} s): it bounds the whole warm-up, connecting included (got ${JSON.stringify(flags['warmup-max'])})`);
  return {
    target,
    api,
    devices,
    connections,
    rampPerS,
    profile: oneOf(flags, 'profile', PROFILES, 'iot'),
    ratePerDevice,
    batch,
    payloadBytes: int(flags, 'payload-bytes', 32, 0, PAYLOAD_BYTES_MAX),
    durationS: flags.duration === undefined ? 30 : parseDurationS('--duration', String(flags.duration), false),
    warmupS,
    warmupMaxS,
    drainS: flags.drain === undefined ? 10 : parseDurationS('--drain', String(flags.drain), true),
    workers: int(flags, 'workers', 1, 1, WORKERS_MAX),
    seed,
    slowReaders,
    closedLoop: flags['closed-loop'] === true,
    ackOnly: flags['ack-only'] === true,
    type,
    queue: str(flags, 'queue'),
    devicePrefix,
    connectTimeoutMs,
    tls,
    tlsCa,
    tlsCert,
    tlsKey,
    tokenSecret: str(flags, 'token-secret'),
    reportDir: str(flags, 'report'),
    thresholds: thresholdExprs.map((e) => parseThreshold(e)),
    json: flags.json === true,
  };
}
