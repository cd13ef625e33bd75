/**
 * `stratus query --device ID [--since T] [--limit N] [--json]`: a device's archived events with
 * their results and latencies, read straight from the archive store archive.store names (no
 * engine needs to run). The rules and the JSON are GET /v1/devices/{id}/history's (archive/history.ts).
 */
import { historyJson, historyTable, parseLimit, parseSince } from '../archive/history.js';
import { openStore } from '../archive/open-store.js';
import { ErrorCode, StratusError } from '../errors.js';
import type { Command } from './command.js';

export const queryCommand: Command = {
  name: 'query',
  summary: 'Print a device\'s archived events with their results and latencies (archive.store).',
  usage: 'query --device ID [--since T] [--limit N] [--json] [config flags]',
  flags: {
    device: { type: 'string', doc: 'the device id' },
    since: { type: 'string', doc: 'events received at or after T: an ISO 8601 time (2026-12-05T10:00:00Z) or a duration ago (15m, 2h); default: the latest N' },
    limit: { type: 'string', doc: 'at most N events (default 100, at most archive.historyLimitMax)' },
    json: { type: 'boolean', doc: 'print the JSON GET /v1/devices/{id}/history serves instead of a table' },
  },
  usesConfig: true,
  async run({ flags, config }) {
    const deviceId = flags.device;
    if (typeof deviceId !== 'string' || deviceId === '') throw new StratusError(ErrorCode.USAGE, 'query needs --device ID (the device whose archived events to print)');
    let sinceUs: number | undefined;
    let limit: number;
    try {
      sinceUs = typeof flags.since === 'string' ? parseSince(flags.since) : undefined;
      limit = parseLimit(typeof flags.limit === 'string' ? flags.limit : undefined, config.archive.historyLimitMax);
    } catch (err) {
      throw new StratusError(ErrorCode.USAGE, `--${(err as Error).message}`);
    }
    const store = await openStore(config);
    try {
      const entries = await store.history({ deviceId, limit, ...(sinceUs === undefined ? {} : { sinceUs }) });
      process.stdout.write(flags.json === true ? `${JSON.stringify(historyJson(deviceId, store.kind, entries, limit), null, 2)}\n` : historyTable(deviceId, entries, limit));
    } finally {
      await store.close();
    }
    return 0;
  },
};
