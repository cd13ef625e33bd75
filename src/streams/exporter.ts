/**
 * The metrics exporter (`stratus run --roles exporter`): reads the metrics stream as one consumer
 * of the exporter group, folds entries into series (series-table.ts) and serves them as
 * Prometheus text on `GET /metrics/ingested`.
 *
 * Reads: the metrics stream (XREADGROUP, then XAUTOCLAIM of dead consumers' entries). Writes: XACK,
 * the dead-letter stream. Guarantee: an entry is acknowledged only after a scrape response that
 * includes it was written out completely ('finish'); a scrape whose connection ends first
 * acknowledges nothing, and the next complete one acknowledges its entries too. Entries pending on
 * an exporter that died are taken over by a live one after streams.claimIdleMs, so every entry is
 * in some exporter's state until a scrape showed it: at least once (an exporter that dies between
 * a scrape and its XACK, or stalls longer than claimIdleMs, has its entries counted again
 * elsewhere).
 *
 * What a scrape shows: the series folded from every entry this exporter read since it started
 * (acked or not). A restarted exporter starts from zero plus the entries it reclaims, so counters
 * reset, which is ordinary Prometheus semantics (rate() handles resets). With several exporters,
 * each entry reaches one of them: scrape all and sum by series.
 *
 * Bounds: at most streams.pendingMax entries read and not acked (reading stops at the limit until a
 * scrape acks), streams.seriesMax series. An entry that can't be decoded, whose name has another
 * type here, or that would be a series beyond the limit is parked alone in the dead-letter stream
 * (original id, reason, fields) and acked; the rest of its batch goes on.
 *
 * Liveness of pending entries: XAUTOCLAIM can't tell a dead consumer's entries from a live one's
 * that wait for a scrape (both just age). So every claimIdleMs/3 a live exporter resets the idle
 * time of the entries it holds (REFRESH_SCRIPT: XCLAIM to itself, JUSTID, only ids still pending on
 * it), and whatever is idle beyond claimIdleMs belongs to a consumer that stopped doing that. The
 * alternative, XINFO CONSUMERS' idle per consumer then XPENDING/XCLAIM per dead consumer, needs no
 * refresh, but Redis 7.0's consumer `idle` counts from the last read attempt, which a live exporter
 * at pendingMax does not make, so it would look dead.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config.js';
import type { HttpRoute } from '../http/server.js';
import { metrics } from '../http/metrics.js';
import { errorText, RateLimitedLog, roleLog } from '../log.js';
import { connectRedis, createRedis, disconnectRedis, redisUnavailable, type RedisClient } from '../redis/client.js';
import { topology } from '../topology.js';
import { PRUNE_SCRIPT, REFRESH_SCRIPT } from './exporter-scripts.js';
import { decodeEntry } from './metric-entry.js';
import { SeriesTable } from './series-table.js';

/** Entries per XREADGROUP / XAUTOCLAIM call. */
const READ_COUNT_MAX = 1000;
/** How long one XREADGROUP waits for entries; bounds how long stop() waits for the reader. */
const READ_BLOCK_MS = 1000;
/** Ids per XACK and per refresh script call. */
const ACK_CHUNK = 1000;
const REFRESH_CHUNK = 500;

type Entry = [id: string, fields: string[] | null];

export const INGESTED_PATH = '/metrics/ingested';

const exporterLog = new RateLimitedLog(roleLog('exporter'), { linesMax: 5, intervalMs: 60_000 });

export class Exporter {
  /** This process's consumer name in the group: new per start, so a restart never inherits a dead one's entries as its own. */
  readonly consumer: string;
  private readonly table: SeriesTable;
  /** Ids read and folded, not yet acked, in read order. Invariant: size <= pendingMax. */
  private readonly unacked = new Set<string>();
  private readonly stream: string;
  private readonly dead: string;
  private readonly group: string;
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();
  private maintenance: Promise<void> | null = null;
  private timer: NodeJS.Timeout | undefined;
  /** Resolves the reader waiting for room (unacked at pendingMax). */
  private wake: (() => void) | null = null;

  private constructor(
    private readonly config: Config,
    instanceId: string,
    private readonly reader: RedisClient,
    private readonly redis: RedisClient,
  ) {
    const t = topology(config);
    this.stream = t.redis.metricsStream;
    this.dead = t.redis.metricsDead;
    this.group = t.groups.exporter;
    this.consumer = `${instanceId}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.table = new SeriesTable(config.streams.seriesMax);
  }

  static async start(config: Config, instanceId: string): Promise<Exporter> {
    // Two connections: XREADGROUP BLOCK holds its connection while it waits, and acks, claims and
    // dead-letter writes must not queue behind it. No offline queue: while Redis is away commands
    // fail at once and the loops retry.
    const reader = createRedis(config, `${instanceId}-exporter-read`, { offlineQueue: false });
    const redis = createRedis(config, `${instanceId}-exporter`, { offlineQueue: false });
    try {
      await connectRedis(reader);
      await connectRedis(redis);
    } catch (err) {
      disconnectRedis(reader);
      disconnectRedis(redis);
      throw redisUnavailable(config, 'refused the metrics exporter connection', err);
    }
    redis.defineCommand('stratusStreamsRefresh', { numberOfKeys: 1, lua: REFRESH_SCRIPT });
    redis.defineCommand('stratusStreamsPrune', { numberOfKeys: 1, lua: PRUNE_SCRIPT });
    const exporter = new Exporter(config, instanceId, reader, redis);
    await exporter.ensureGroup();
    exporter.loop = exporter.readLoop();
    const everyMs = Math.max(50, Math.floor(config.streams.claimIdleMs / 3));
    exporter.timer = setInterval(() => {
      if (exporter.maintenance !== null || exporter.stopped) return;
      exporter.maintenance = exporter.maintain().catch((err: unknown) => exporter.warn('reclaim', err)).finally(() => (exporter.maintenance = null));
    }, everyMs);
    return exporter;
  }

  /** Entries held read and not acked. */
  get unackedCount(): number {
    return this.unacked.size;
  }

  route(): HttpRoute {
    return { path: INGESTED_PATH, describe: `GET ${INGESTED_PATH}`, handle: (req, res) => this.scrape(req, res) };
  }

  /** Stops reading; entries not acked stay pending on this consumer and are reclaimed by another exporter after claimIdleMs. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.wake?.();
    // Ends a waiting XREADGROUP at once: entries Redis delivered to it stay pending here (above).
    disconnectRedis(this.reader);
    await this.loop;
    await this.maintenance;
    disconnectRedis(this.redis);
  }

  private scrape(req: IncomingMessage, res: ServerResponse): void {
    // The snapshot: the entries this text shows. Entries read while it is written are not in it.
    const text = this.table.render();
    const shown = [...this.unacked];
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'cache-control': 'no-store' });
    if (req.method === 'HEAD') {
      // No body, nothing shown: nothing to ack.
      res.end();
      return;
    }
    // Written = the whole response handed to the OS ('finish'), the most a server can know, on a
    // connection that is still up. Node 20 also emits 'finish' when the client reset the connection
    // while the body was still queued in the process (the dropped write completes without an
    // error), so the socket is checked too: destroyed or errored means the client did not get it.
    const socket = res.socket;
    let outcome: 'written' | 'failed' | null = null;
    res.once('finish', () => {
      outcome = socket !== null && !socket.destroyed && socket.errored == null ? 'written' : 'failed';
      metrics.streamsScrapes.inc({ outcome });
      if (outcome === 'written') void this.ack(shown).catch((err: unknown) => this.warn('XACK after a scrape', err));
    });
    res.once('close', () => {
      if (outcome === null) metrics.streamsScrapes.inc({ outcome: 'failed' });
    });
    res.end(text);
  }

  private async ack(ids: readonly string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += ACK_CHUNK) {
      const chunk = ids.slice(i, i + ACK_CHUNK);
      const n = (await this.redis.call('XACK', this.stream, this.group, ...chunk)) as number;
      for (const id of chunk) this.unacked.delete(id);
      metrics.streamsAcked.inc(n);
      metrics.streamsPending.set(this.unacked.size);
      this.wake?.();
    }
  }

  private async ensureGroup(): Promise<void> {
    try {
      // From 0: the first exporter ever exports what the stream already holds (up to lengthMax).
      await this.redis.call('XGROUP', 'CREATE', this.stream, this.group, '0', 'MKSTREAM');
    } catch (err) {
      if (!(err instanceof Error && err.message.startsWith('BUSYGROUP'))) throw redisUnavailable(this.config, 'refused XGROUP CREATE for the metrics stream', err);
    }
  }

  private async readLoop(): Promise<void> {
    while (!this.stopped) {
      const room = this.config.streams.pendingMax - this.unacked.size;
      if (room <= 0) {
        // At the bound: read nothing more until a scrape acks.
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = null;
        continue;
      }
      let reply: [string, Entry[]][] | null;
      try {
        reply = (await this.reader.call('XREADGROUP', 'GROUP', this.group, this.consumer, 'COUNT', Math.min(READ_COUNT_MAX, room), 'BLOCK', READ_BLOCK_MS, 'STREAMS', this.stream, '>')) as [string, Entry[]][] | null;
      } catch (err) {
        if (this.stopped) return;
        // The stream (and its group) was deleted: start over.
        if (err instanceof Error && err.message.startsWith('NOGROUP')) await this.ensureGroup().catch((e: unknown) => this.warn('re-creating the group', e));
        else this.warn('XREADGROUP', err);
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      if (reply !== null) await this.fold(reply[0]![1], false);
    }
  }

  /** Folds entries into the table (skipping ids already held), parks the ones it refuses. */
  private async fold(entries: readonly Entry[], reclaimed: boolean): Promise<void> {
    const parked: string[][] = [];
    const parkedIds: string[] = [];
    for (const [id, fields] of entries) {
      if (this.unacked.has(id)) continue;
      const m = decodeEntry(fields);
      const reason = typeof m === 'string' ? m : this.table.apply(m);
      if (reason === null) {
        this.unacked.add(id);
        if (reclaimed) metrics.streamsReclaimed.inc();
      } else {
        parked.push(['xadd', this.dead, 'MAXLEN', '~', String(this.config.streams.lengthMax), '*', 'id', id, 'reason', reason, 'fields', JSON.stringify(fields)]);
        parkedIds.push(id);
      }
    }
    metrics.streamsPending.set(this.unacked.size);
    if (parked.length === 0) return;
    try {
      // Parked and acked together; if this fails the entries stay pending here unrefreshed, so
      // XAUTOCLAIM hands them back after claimIdleMs and they are parked then.
      const replies = await this.redis.multi([...parked, ['xack', this.stream, this.group, ...parkedIds]]).exec();
      const failed = replies?.find(([err]) => err !== null);
      if (replies === null || failed !== undefined) throw failed?.[0] ?? new Error('transaction discarded');
      metrics.streamsDeadLettered.inc(parkedIds.length);
    } catch (err) {
      this.warn('dead-letter', err);
    }
  }

  /** Every claimIdleMs/3: refresh what this exporter holds, take over dead consumers' entries, remove dead consumers. */
  private async maintain(): Promise<void> {
    const held = [...this.unacked];
    for (let i = 0; i < held.length && !this.stopped; i += REFRESH_CHUNK) {
      const gone = (await (this.redis as unknown as { stratusStreamsRefresh(...a: string[]): Promise<string[]> }).stratusStreamsRefresh(this.stream, this.group, this.consumer, ...held.slice(i, i + REFRESH_CHUNK)));
      // Acked meanwhile, trimmed away, or taken over after a stall: no longer this exporter's to ack.
      for (const id of gone) this.unacked.delete(id);
    }
    let cursor = '0-0';
    do {
      const room = this.config.streams.pendingMax - this.unacked.size;
      if (room <= 0 || this.stopped) break;
      const [next, entries] = (await this.redis.call('XAUTOCLAIM', this.stream, this.group, this.consumer, this.config.streams.claimIdleMs, cursor, 'COUNT', Math.min(READ_COUNT_MAX, room))) as [string, Entry[], string[]];
      await this.fold(entries, true);
      cursor = next;
    } while (cursor !== '0-0');
    await (this.redis as unknown as { stratusStreamsPrune(...a: (string | number)[]): Promise<string[]> }).stratusStreamsPrune(this.stream, this.group, this.consumer, this.config.streams.claimIdleMs);
  }

  /** Redis failures repeat once a second while Redis is away: at most 5 lines a minute per operation. */
  private warn(what: string, err: unknown): void {
    exporterLog.warn(`${this.consumer}\0${what}`, { consumer: this.consumer, err: errorText(err) }, `${what} failed`);
  }
}
