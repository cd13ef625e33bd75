/**
 * Live progress on stderr: on a TTY one line rewritten in place every second; otherwise (CI logs,
 * files) a plain line every PLAIN_EVERY_S seconds, so logs stay readable. Rates and percentiles
 * are of the last interval (about a second: the workers' last tick), never cumulative, and the
 * phase says whether the figures are being measured:
 *
 *   [  3s warm-up] devices 1200/2000 | sent 1180/s acked 1175/s results 1170/s | ack p99 (last 1s) 2310.0 ms | result p99 (last 1s) 2350.1 ms | errors 0
 *   [ 12s measuring 5/30s] devices 2000/2000 | sent 2003/s acked 2001/s results 1998/s | ack p99 (last 1s) 12.3 ms | result p99 (last 1s) 25.1 ms | errors 0
 *   [ 38s drain] ...
 *
 * Warm-up lasts until the whole fleet has connected, then --warmup more seconds (loadgen.ts).
 */
import type * as hdr from 'hdr-histogram-js';

const PLAIN_EVERY_S = 5;

export interface ProgressState {
  /** Devices online now. */
  connected: number;
  /** Cumulative counts (the line shows their rate since the previous update). */
  sent: number;
  acked: number;
  results: number;
  errors: number;
  /** Ack and result latencies of the last interval, warm-up included; absent when none came. */
  lastAck: hdr.Histogram | undefined;
  lastResult: hdr.Histogram | undefined;
  /** Start of the measured window, ms after t0; null while the fleet is still connecting. */
  windowStartMs: number | null;
}

export interface ProgressShape {
  devices: number;
  durationS: number;
  /** The API has acks / results (nimbus: results only; --ack-only: acks only). */
  acks: boolean;
  results: boolean;
}

function p99(h: hdr.Histogram | undefined): string {
  return h === undefined || h.totalCount === 0 ? '-' : `${(h.getValueAtPercentile(99) / 1000).toFixed(1)} ms`;
}

/** The phase label at elapsedMs after t0. */
export function phaseLabel(elapsedMs: number, windowStartMs: number | null, durationS: number): string {
  if (windowStartMs === null || elapsedMs < windowStartMs) {
    return windowStartMs === null ? 'warm-up' : `warm-up, measuring in ${Math.ceil((windowStartMs - elapsedMs) / 1000)}s`;
  }
  const inS = (elapsedMs - windowStartMs) / 1000;
  return inS < durationS ? `measuring ${Math.floor(inS)}/${durationS}s` : 'drain';
}

/** One progress line (no prefix, no newline). `rates` are per second over the last interval. */
export function progressLine(shape: ProgressShape, elapsedMs: number, s: ProgressState, rates: { sent: number; acked: number; results: number }): string {
  const parts = [
    `[${String(Math.floor(elapsedMs / 1000)).padStart(3)}s ${phaseLabel(elapsedMs, s.windowStartMs, shape.durationS)}] devices ${s.connected}/${shape.devices}`,
    `sent ${rates.sent}/s${shape.acks ? ` acked ${rates.acked}/s` : ''}${shape.results ? ` results ${rates.results}/s` : ''}`,
  ];
  if (shape.acks) parts.push(`ack p99 (last 1s) ${p99(s.lastAck)}`);
  if (shape.results) parts.push(`result p99 (last 1s) ${p99(s.lastResult)}`);
  parts.push(`errors ${s.errors}`);
  return parts.join(' | ');
}

export class Progress {
  private last = { at: 0, sent: 0, acked: 0, results: 0 };
  private lastPlainAt = 0;
  private readonly tty: boolean;
  private wroteTty = false;

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean },
    private readonly shape: ProgressShape,
    private readonly t0Ms: number,
  ) {
    this.tty = out.isTTY === true;
  }

  update(s: ProgressState): void {
    const now = performance.timeOrigin + performance.now();
    const elapsedMs = Math.max(0, now - this.t0Ms);
    const dt = this.last.at === 0 ? 1 : (now - this.last.at) / 1000;
    const rate = (k: 'sent' | 'acked' | 'results') => Math.round((s[k] - this.last[k]) / dt);
    const line = progressLine(this.shape, elapsedMs, s, { sent: rate('sent'), acked: rate('acked'), results: rate('results') });
    this.last = { at: now, sent: s.sent, acked: s.acked, results: s.results };
    if (this.tty) {
      this.out.write(`\r\x1b[2K${line}`);
      this.wroteTty = true;
    } else if (now - this.lastPlainAt >= PLAIN_EVERY_S * 1000) {
      this.lastPlainAt = now;
      this.out.write(`stratus loadgen: ${line}\n`);
    }
  }

  /** A line that must not be overwritten (the window started, a warning). */
  note(text: string): void {
    if (this.wroteTty) this.out.write('\n');
    this.wroteTty = false;
    this.out.write(`stratus loadgen: ${text}\n`);
  }

  finish(): void {
    if (this.wroteTty) this.out.write('\n');
  }
}
