/**
 * The forwarder's log lines on stderr, in the form the other stages use (`<role> <instance>: ...`;
 * the codebase has no logger library yet). Operating conditions are logged once per change of
 * state by the caller; anything that can repeat per batch goes through rateLimited().
 */
import type { Config } from '../config.js';

const RATE_LIMIT_MS = 10_000;
/** Distinct rate-limited topics kept; the forwarder uses a fixed few, so this is never reached. */
const TOPICS_MAX = 64;

export class ForwarderLog {
  private readonly prefix: string;
  private readonly level: Config['logLevel'];
  /** Per topic: when its last line was written, and how many were dropped since. */
  private readonly last = new Map<string, { atMs: number; dropped: number }>();

  constructor(config: Config, instanceId: string) {
    this.prefix = `forwarder ${instanceId}`;
    this.level = config.logLevel;
  }

  info(line: string): void {
    if (this.level === 'debug' || this.level === 'info') this.write(line);
  }

  warn(line: string): void {
    if (this.level !== 'error') this.write(line);
  }

  /** warn(), at most once per RATE_LIMIT_MS per topic; the next line says how many were dropped. */
  rateLimited(topic: string, line: string, nowMs = Date.now()): void {
    const seen = this.last.get(topic);
    if (seen !== undefined && nowMs - seen.atMs < RATE_LIMIT_MS) {
      seen.dropped++;
      return;
    }
    if (seen === undefined && this.last.size >= TOPICS_MAX) this.last.clear();
    const dropped = seen?.dropped ?? 0;
    this.last.set(topic, { atMs: nowMs, dropped: 0 });
    this.warn(dropped > 0 ? `${line} (${dropped} similar lines dropped in the last ${RATE_LIMIT_MS / 1000} s)` : line);
  }

  private write(line: string): void {
    process.stderr.write(`${this.prefix}: ${line}\n`);
  }
}
