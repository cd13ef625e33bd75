/**
 * When each simulated device sends, decided before the run from `--seed`, so the same seed gives
 * the same schedule twice, however the fleet is split over workers: every device has its own
 * random stream, seeded from (seed, device index).
 *
 * Profiles (mean rate per device is always --rate; B = --batch events per uplink):
 * - iot: long-lived; one uplink every B/rate s with +-10% uniform jitter and a random phase;
 *   payload exactly --payload-bytes.
 * - mobile: Poisson uplinks with occasional bursts (5% of the time 5..15 uplinks 50 ms apart);
 *   payload log-normal around --payload-bytes (sigma 0.5, at most 4x); sessions last an
 *   exponential time (mean MOBILE_SESSION_MEAN_S) and then drop: the device is offline for
 *   0.5..3 s (sends nothing), then reconnects, with backoff if that fails.
 * - burst: synchronized spikes: every BURST_PERIOD_S, every device sends rate*period events
 *   within the same BURST_SPREAD_MS window.
 */
import type { LoadgenOptions } from './options.js';

export const MOBILE_SESSION_MEAN_S = 20;
export const BURST_PERIOD_S = 5;
export const BURST_SPREAD_MS = 200;
const MOBILE_BURST_P = 0.05;
const MOBILE_BURST_GAP_MS = 50;
const JITTER = 0.1;

/** mulberry32: small, fast, good enough for schedules; seeded through splitmix32 so nearby seeds diverge. */
export class Rng {
  private s: number;
  constructor(seed: number, stream: number) {
    let z = (seed ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    this.s = (z ^ (z >>> 16)) >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  exp(mean: number): number {
    return -Math.log(1 - this.next()) * mean;
  }
  normal(): number {
    return Math.sqrt(-2 * Math.log(1 - this.next())) * Math.cos(2 * Math.PI * this.next());
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
}

/** One device's uplink times (ms after the device's schedule start) and payload sizes. */
export class DeviceSchedule {
  /** The schedule's own stream: consumed only in schedule order, so a seed fixes it. */
  readonly rng: Rng;
  /**
   * For what depends on run-time events (payload sizes of resends, backoff jitter): a stream of
   * its own, so they never shift the schedule.
   */
  readonly jitter: Rng;
  /** Intended time of the next uplink, ms from the run's t0. */
  nextAtMs: number;
  private burstLeft = 0;
  private readonly uplinkGapMs: number;

  constructor(
    private readonly opts: Pick<LoadgenOptions, 'profile' | 'ratePerDevice' | 'batch' | 'payloadBytes' | 'seed'>,
    readonly index: number,
    startMs: number,
  ) {
    this.rng = new Rng(opts.seed, index);
    this.jitter = new Rng(opts.seed ^ 0x5bd1e995, index);
    this.uplinkGapMs = (1000 * opts.batch) / opts.ratePerDevice;
    switch (opts.profile) {
      case 'iot':
        this.nextAtMs = startMs + this.rng.next() * this.uplinkGapMs;
        break;
      case 'mobile':
        this.nextAtMs = startMs + this.rng.exp(this.mobileMeanGapMs());
        break;
      case 'burst':
        // Spikes are at multiples of the period from t0, whenever the device joined.
        this.nextAtMs = Math.ceil(startMs / (BURST_PERIOD_S * 1000)) * BURST_PERIOD_S * 1000 + this.rng.next() * (BURST_SPREAD_MS / this.burstSize());
        this.burstLeft = this.burstSize() - 1;
        break;
    }
  }

  /** Mean gap between episodes so that singles + bursts average out to --rate. */
  private mobileMeanGapMs(): number {
    const uplinksPerEpisode = 1 - MOBILE_BURST_P + MOBILE_BURST_P * 10;
    return this.uplinkGapMs * uplinksPerEpisode;
  }

  private burstSize(): number {
    return Math.max(1, Math.round((this.opts.ratePerDevice * BURST_PERIOD_S) / this.opts.batch));
  }

  /** Advances nextAtMs past the uplink just taken. */
  advance(): void {
    const rng = this.rng;
    switch (this.opts.profile) {
      case 'iot':
        this.nextAtMs += this.uplinkGapMs * (1 + JITTER * (2 * rng.next() - 1));
        return;
      case 'mobile':
        if (this.burstLeft > 0) {
          this.burstLeft--;
          this.nextAtMs += MOBILE_BURST_GAP_MS;
        } else if (rng.next() < MOBILE_BURST_P) {
          this.burstLeft = rng.int(5, 15) - 1;
          this.nextAtMs += MOBILE_BURST_GAP_MS;
        } else {
          this.nextAtMs += rng.exp(this.mobileMeanGapMs());
        }
        return;
      case 'burst': {
        if (this.burstLeft > 0) {
          this.burstLeft--;
          this.nextAtMs += BURST_SPREAD_MS / this.burstSize();
        } else {
          const period = BURST_PERIOD_S * 1000;
          // The next spike starts at the next multiple of the period (same instant for every device).
          this.nextAtMs = (Math.floor(this.nextAtMs / period) + 1) * period + rng.next() * (BURST_SPREAD_MS / this.burstSize());
          this.burstLeft = this.burstSize() - 1;
        }
        return;
      }
    }
  }

  payloadBytes(): number {
    if (this.opts.profile !== 'mobile' || this.opts.payloadBytes === 0) return this.opts.payloadBytes;
    const v = this.opts.payloadBytes * Math.exp(0.5 * this.jitter.normal() - 0.125);
    return Math.max(1, Math.min(4 * this.opts.payloadBytes, Math.round(v)));
  }

  /** Mobile: how long the next session lasts, then how long the device stays offline. */
  sessionMs(): number {
    return this.rng.exp(MOBILE_SESSION_MEAN_S * 1000);
  }
  offlineMs(): number {
    return 500 + this.rng.next() * 2500;
  }
}

/** The value a device sends as event seq: deterministic, so results are checked without storing it. */
export function valueOf(deviceIndex: number, seq: number): number {
  return ((deviceIndex * 7919 + seq * 104_729) % 2001) - 1000;
}
