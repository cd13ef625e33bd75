/**
 * The forwarder's log lines: the `forwarder` role's logger (src/log.ts) with the instance on every
 * line, at config.logLevel. Operating conditions are logged once per change of state by the
 * caller; anything that can repeat per batch goes through rateLimited().
 */
import type { Config } from '../config.js';
import { roleLog, type Logger } from '../log.js';

const RATE_LIMIT_MS = 10_000;
/** Distinct rate-limited topics kept; the forwarder uses a fixed few, so this is never reached. */
const TOPICS_MAX = 64;

export class ForwarderLog {
  private readonly logger: Logger;
  /** Per topic: when its last line was written, and how many were dropped since. */
  private readonly last = new Map<string, { atMs: number; dropped: number }>();

  constructor(config: Config, instanceId: string) {
    this.logger = roleLog('forwarder').child({ instance: instanceId }, { level: config.logLevel });
  }

  info(line: string): void {
    this.logger.info(line);
  }

  warn(line: string): void {
    this.logger.warn(line);
  }

  /**
   * warn(), at most once per RATE_LIMIT_MS per topic; the next line carries `dropped`, how many were
   * dropped since the last one (and says so in its message).
   */
  rateLimited(topic: string, line: string, nowMs = Date.now()): void {
    const seen = this.last.get(topic);
    if (seen !== undefined && nowMs - seen.atMs < RATE_LIMIT_MS) {
      seen.dropped++;
      return;
    }
    if (seen === undefined && this.last.size >= TOPICS_MAX) this.last.clear();
    const dropped = seen?.dropped ?? 0;
    this.last.set(topic, { atMs: nowMs, dropped: 0 });
    if (dropped > 0) this.logger.warn({ key: topic, dropped }, `${line} (${dropped} similar lines dropped in the last ${RATE_LIMIT_MS / 1000} s)`);
    else this.logger.warn({ key: topic }, line);
  }
}
