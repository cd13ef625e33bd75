/**
 * Live progress on stderr: on a TTY one line rewritten in place every second; otherwise (CI logs,
 * files) a plain line every PLAIN_EVERY_S seconds, so logs stay readable.
 *
 *   [ 12s/35s] devices 10000/10000 | sent 10012/s acked 10003/s results 9987/s | ack p99 14.2 ms | errors 0
 */
import type * as hdr from 'hdr-histogram-js';
import type { LoadgenOptions } from './options.js';
import type { Metric } from './recorder.js';

const PLAIN_EVERY_S = 5;

export interface ProgressState {
  connected: number;
  sent: number;
  acked: number;
  results: number;
  errors: number;
  histograms: Map<Metric, hdr.Histogram>;
}

export class Progress {
  private last = { at: 0, sent: 0, acked: 0, results: 0 };
  private lastPlainAt = 0;
  private readonly tty: boolean;
  private readonly totalS: number;
  private wroteTty = false;

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean },
    private readonly opts: LoadgenOptions,
    private readonly t0Ms: number,
  ) {
    this.tty = out.isTTY === true;
    this.totalS = opts.warmupS + opts.durationS;
  }

  update(s: ProgressState): void {
    const now = performance.timeOrigin + performance.now();
    const elapsedS = Math.max(0, (now - this.t0Ms) / 1000);
    const dt = this.last.at === 0 ? 1 : (now - this.last.at) / 1000;
    const rate = (k: 'sent' | 'acked' | 'results') => Math.round((s[k] - this.last[k]) / dt);
    const h = s.histograms.get('ack') ?? s.histograms.get('result');
    const p99 = h === undefined || h.totalCount === 0 ? '-' : `${(h.getValueAtPercentile(99) / 1000).toFixed(1)} ms`;
    const phase = elapsedS < this.opts.warmupS ? 'warmup' : elapsedS < this.totalS ? 'measure' : 'drain';
    const line =
      `[${String(Math.floor(elapsedS)).padStart(3)}s/${Math.round(this.totalS)}s ${phase}] devices ${s.connected}/${this.opts.devices} | ` +
      `sent ${rate('sent')}/s acked ${rate('acked')}/s results ${rate('results')}/s | ${h === s.histograms.get('ack') ? 'ack' : 'result'} p99 ${p99} | errors ${s.errors}`;
    this.last = { at: now, sent: s.sent, acked: s.acked, results: s.results };
    if (this.tty) {
      this.out.write(`\r\x1b[2K${line}`);
      this.wroteTty = true;
    } else if (now - this.lastPlainAt >= PLAIN_EVERY_S * 1000) {
      this.lastPlainAt = now;
      this.out.write(`stratus loadgen: ${line}\n`);
    }
  }

  finish(): void {
    if (this.wroteTty) this.out.write('\n');
  }
}
