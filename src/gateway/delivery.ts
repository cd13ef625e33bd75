/**
 * The Redis side of a device-stream host (a gateway instance, or the SSE hub): presence (device ->
 * instance, leased), the instance's delivery channel, the takeover handoff, reading a device's
 * buffer, and the server-side cursor.
 *
 * Channel messages start with one type byte:
 *   1  delivery frame (wire/delivery-frame.ts), published by the forwarder's script
 *   2  takeover: [u16 LE length][new holder's instance id][device id]: another instance now holds
 *      the device; end its session here, then answer the new holder with a 3
 *   3  handoff: [device id]: the old holder ended its session and recorded what it wrote (field d)
 *
 * Presence is renewed (every gateway.presenceLeaseMs / 3) only where it still names this instance;
 * a device found held by another instance has its session ended here. Each renewal also records
 * what every session wrote so far, so a crash loses at most a third of a lease of that record.
 */
import type { Config } from '../config.js';
import { connectRedis, createRedis, disconnectRedis, redisUnavailable, type RedisClient } from '../redis/client.js';
import { callScript, DEVICE_KEY_LUA, defineManyKeyScript, groupByNode, messageEvent, publish, subscribe } from '../redis/sharding.js';
import { topology, type Topology } from '../topology.js';
import { decodeFrame, type FrameEntry } from '../wire/delivery-frame.js';
import { metrics } from '../http/metrics.js';
import { errorText, RateLimitedLog, roleLog } from '../log.js';

export const MSG_FRAME = 1;
export const MSG_TAKEOVER = 2;
export const MSG_HANDOFF = 3;

/** Lua: records position d for dev hash `dkey` (d only grows; the hash keeps its TTL fresh). */
const recordD = (dkey: string, d: string, ttl: string) => `
  if tonumber(${d}) > tonumber(redis.call('HGET', ${dkey}, 'd') or '0') then
    redis.call('HSET', ${dkey}, 'd', ${d})
    redis.call('PEXPIRE', ${dkey}, ${ttl})
  end`;

/**
 * A session's end: records what it wrote (d only grows) and, if asked, deletes the presence entry
 * when it still names this instance (a newer holder keeps it).
 * KEYS: presence, dev. ARGV: me, d, drop (1/0), ttlMs.
 */
const RELEASE_SCRIPT = `
if ARGV[3] == '1' and redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
${recordD('KEYS[2]', 'ARGV[2]', 'ARGV[4]')}
return 0`;

/**
 * Presence renewal for many devices: extends an entry that names this instance, takes one that ran
 * out (nobody holds the device, and a session here still serves it), leaves another instance's
 * alone. Records each session's written position like RELEASE_SCRIPT.
 * ARGV: prefix, me, leaseMs, ttlMs, then (device, d) pairs. Returns per device 1 (held) or 0 (held elsewhere).
 */
const RENEW_SCRIPT = `
local prefix, me, leaseMs, ttlMs = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
${DEVICE_KEY_LUA}
local out = {}
for i = 5, #ARGV, 2 do
  local dev, d = ARGV[i], ARGV[i + 1]
  local pkey = key('presence', dev)
  local holder = redis.call('GET', pkey)
  if holder == me then
    redis.call('PEXPIRE', pkey, leaseMs)
    out[#out + 1] = 1
  elseif not holder then
    redis.call('SET', pkey, me, 'PX', leaseMs)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
  local dkey = key('dev', dev)
  ${recordD('dkey', 'd', 'ttlMs')}
end
return out`;

export interface DeliveryHandlers {
  onEntries(entries: FrameEntry[]): void;
  /** Another instance took the device: end its session here now (its end records what it wrote). */
  onTakeover(deviceId: string): void;
}

/** What a host tells the renewal about one of its sessions. */
export interface HeldDevice {
  readonly deviceId: string;
  /** The session's written position (DeviceSession.sentSeq). */
  readonly sentSeq: number;
  /** Called when a renewal finds the device held by another instance. */
  lost(): void;
}

export interface BufferEntry {
  n: number;
  result: Buffer;
}

/**
 * Records written positions (d only grows). ARGV: prefix, ttlMs, then (device, d) pairs.
 */
const RECORD_SCRIPT = `
local prefix, ttlMs = ARGV[1], ARGV[2]
${DEVICE_KEY_LUA}
for i = 3, #ARGV, 2 do
  local dkey = key('dev', ARGV[i])
  ${recordD('dkey', 'ARGV[i + 1]', 'ttlMs')}
end
return 0`;

/** How often positions noted by sessions without a client cursor are recorded (noteSent). */
const RECORD_EVERY_MS = 100;

/** Presence renewals per script call (see renew()). */
const RENEW_CHUNK = 250;
/** Redis failures of the delivery link (renewals, handoffs): at most 5 lines a minute per kind. */
const linkLog = new RateLimitedLog(roleLog('gateway'), { linesMax: 5, intervalMs: 60_000 });

export class DeliveryLink {
  readonly commands: RedisClient;
  private readonly sub: RedisClient;
  private readonly t: Topology;
  private readonly channel: string;
  /** Takeovers of this instance waiting for the old holder's handoff, by device. */
  private readonly handoffs = new Map<string, () => void>();
  /** Claims here (without a client cursor) still waiting for a handoff, chained, by device. */
  private readonly waits = new Map<string, Promise<void>>();
  private renewTimer: NodeJS.Timeout | null = null;
  /** Releases Redis has not answered yet, by device (the newest per device). */
  private readonly releasing = new Map<string, Promise<void>>();
  /** Written positions to record, by device (one entry per held device at most). */
  private readonly sent = new Map<string, number>();
  private recordTimer: NodeJS.Timeout | null = null;

  private constructor(private readonly config: Config, readonly instanceId: string, commands: RedisClient, sub: RedisClient) {
    this.commands = commands;
    this.sub = sub;
    this.t = topology(config);
    this.channel = this.t.redis.instanceChannel(instanceId);
  }

  static async connect(config: Config, instanceId: string, handlers: DeliveryHandlers): Promise<DeliveryLink> {
    // Commands wait in ioredis's queue while reconnecting; the sessions bound how many they issue.
    const commands = createRedis(config, `${instanceId}-gateway`, { offlineQueue: true });
    const sub = createRedis(config, `${instanceId}-gateway-sub`, { offlineQueue: true, subscriber: true });
    // createRedis already listens for errors (logged at debug, Redis lost / back once per change,
    // src/redis/client.ts); these keep the link's own start from depending on that.
    commands.on('error', () => {});
    sub.on('error', () => {});
    try {
      await Promise.all([connectRedis(commands), connectRedis(sub)]);
    } catch (err) {
      // Neither client keeps reconnecting in the background after a failed start.
      disconnectRedis(commands);
      disconnectRedis(sub);
      throw redisUnavailable(config, 'refused the gateway\'s delivery link', err);
    }
    commands.defineCommand('stratusRelease', { numberOfKeys: 2, lua: RELEASE_SCRIPT });
    defineManyKeyScript(commands, 'stratusRenew', RENEW_SCRIPT);
    defineManyKeyScript(commands, 'stratusRecord', RECORD_SCRIPT);
    const link = new DeliveryLink(config, instanceId, commands, sub);
    sub.on(messageEvent(sub), (_channel: Buffer, message: Buffer) => {
      // A corrupt message must not throw into ioredis's parser: it is counted and dropped. The
      // results it carried are in their devices' buffers and reach them on the next gap or stream.
      try {
        if (message[0] === MSG_FRAME) handlers.onEntries(decodeFrame(message.subarray(1)));
        else if (message[0] === MSG_TAKEOVER) link.onTakeover(message, handlers);
        else if (message[0] === MSG_HANDOFF) link.handoffs.get(message.toString('utf8', 1))?.();
        else metrics.deliveryMessagesCorrupt.inc();
      } catch {
        metrics.deliveryMessagesCorrupt.inc();
      }
    });
    await subscribe(sub, link.channel);
    return link;
  }

  /** Ends the local session (which records what it wrote), then tells the new holder. */
  private onTakeover(message: Buffer, handlers: DeliveryHandlers): void {
    const len = message.readUInt16LE(1);
    const newHolder = message.toString('utf8', 3, 3 + len);
    const deviceId = message.toString('utf8', 3 + len);
    handlers.onTakeover(deviceId);
    // Sent once the session's record (RELEASE_SCRIPT, issued as it ended, synchronously) has been
    // answered, so the new holder reads the record after it. One connection to one server would
    // keep that order by itself; on Redis Cluster the record goes to the device's master and the
    // handoff to the channel's, and the handoff could overtake it (the model test caught that: a
    // cursorless stream taking over from SSE was sent again what SSE had sent).
    const recorded = this.releasing.get(deviceId) ?? Promise.resolve();
    void recorded.then(() => publish(this.commands, this.t.redis.instanceChannel(newHolder), Buffer.concat([Buffer.from([MSG_HANDOFF]), Buffer.from(deviceId)]))).catch((err: unknown) =>
      // The new holder stops waiting for the handoff after its own timeout and reads the record as
      // Redis has it; devices can cause takeovers at will, so the line is rate-limited.
      linkLog.warn('handoff', { device: deviceId, err: errorText(err) }, 'handoff message to the new holder failed (it reads the record after its wait)'),
    );
  }

  /**
   * Claims the device for this instance. When another instance held it, that one is told to end its
   * session; with `awaitHandoff` (a session without a client cursor) this waits, at most
   * gateway.handoffWaitMs, until the old holder has recorded what it wrote.
   */
  async claim(deviceId: string, awaitHandoff: boolean): Promise<void> {
    if (!awaitHandoff) {
      await this.takeOver(deviceId, false);
      return;
    }
    // A claim of the same device here that still waits for its handoff (a stream superseded while
    // starting): this one reads the record only after that handoff too.
    const earlier = this.waits.get(deviceId) ?? null;
    let done!: () => void;
    const current = new Promise<void>((resolve) => (done = resolve));
    const chained = earlier === null ? current : Promise.all([earlier, current]).then(() => {});
    this.waits.set(deviceId, chained);
    try {
      await this.takeOver(deviceId, true);
      if (earlier !== null) await earlier;
    } finally {
      done();
      if (this.waits.get(deviceId) === chained) this.waits.delete(deviceId);
    }
  }

  private async takeOver(deviceId: string, awaitHandoff: boolean): Promise<void> {
    const previous = await this.commands.set(this.t.redis.presence(deviceId), this.instanceId, 'PX', this.config.gateway.presenceLeaseMs, 'GET');
    if (previous === null || previous === this.instanceId) return;
    let settle: ((outcome: string) => void) | null = null;
    const handoff = new Promise<string>((resolve) => (settle = resolve));
    const mine = () => settle!('recorded');
    if (awaitHandoff) {
      // Registered before the takeover is published, so the answer cannot come first.
      this.handoffs.get(deviceId)?.();
      this.handoffs.set(deviceId, mine);
    }
    const me = Buffer.from(this.instanceId);
    const head = Buffer.alloc(3);
    head[0] = MSG_TAKEOVER;
    head.writeUInt16LE(me.length, 1);
    const receivers = await publish(this.commands, this.t.redis.instanceChannel(previous), Buffer.concat([head, me, Buffer.from(deviceId)]));
    if (!awaitHandoff) return;
    let timer: NodeJS.Timeout | undefined;
    // Nobody listens on the old holder's channel: it is gone, and its last renewal's record stands.
    const outcome = receivers === 0 ? 'absent' : await Promise.race([handoff, new Promise<string>((r) => (timer = setTimeout(() => r('timeout'), this.config.gateway.handoffWaitMs)))]);
    clearTimeout(timer);
    // A newer claim of the same device here may have put its own in meanwhile: leave that one.
    if (this.handoffs.get(deviceId) === mine) this.handoffs.delete(deviceId);
    metrics.handoffs.inc({ outcome });
  }

  /**
   * Renews presence for every device given, RENEW_CHUNK at a time, each chunk's call awaited
   * before the next is built (one call for every device of a big gateway held the event loop for
   * ~100 ms). A device held by another instance gets lost().
   */
  async renew(devices: Iterable<HeldDevice>): Promise<void> {
    // On Redis Cluster, one master's devices per script call (redis/sharding.ts).
    for (const list of groupByNode(this.commands, [...devices], (d) => this.t.redis.deviceState(d.deviceId))) {
      for (let i = 0; i < list.length; i += RENEW_CHUNK) {
        const chunk = list.slice(i, i + RENEW_CHUNK);
        const args: (string | number)[] = [this.t.redis.prefix, this.instanceId, this.config.gateway.presenceLeaseMs, this.config.redis.deviceStateTtlMs];
        for (const d of chunk) args.push(d.deviceId, d.sentSeq);
        const held = await callScript<number[]>(this.commands, 'stratusRenew', this.t.redis.deviceState(chunk[0]!.deviceId), args);
        chunk.forEach((d, j) => {
          if (Number(held[j]) === 0) {
            metrics.presenceLost.inc();
            d.lost();
          }
        });
      }
    }
  }

  /** Renews presence every gateway.presenceLeaseMs / 3 for the devices `held` returns. */
  startRenewing(held: () => Iterable<HeldDevice>): void {
    // A renewal Redis did not answer is tried again a third of a lease later; presence runs out only
    // if Redis stays away for a whole lease (Redis lost / back is logged by its client).
    this.renewTimer = setInterval(
      () => void this.renew(held()).catch((err: unknown) => linkLog.warn('renew', { err: errorText(err) }, 'presence renewal failed; trying again next tick')),
      Math.floor(this.config.gateway.presenceLeaseMs / 3),
    );
    this.renewTimer.unref();
  }

  /**
   * A session whose client gave no cursor wrote results up to `sentSeq`: recorded within
   * RECORD_EVERY_MS, so if this instance dies, such a client is sent again at most what it got in
   * that last moment (a client with a cursor needs none of this).
   */
  noteSent(deviceId: string, sentSeq: number): void {
    this.sent.set(deviceId, sentSeq);
    if (this.recordTimer === null) this.recordTimer = setTimeout(() => void this.recordSent(), RECORD_EVERY_MS);
  }

  private async recordSent(): Promise<void> {
    const groups = groupByNode(this.commands, [...this.sent], ([dev]) => this.t.redis.deviceState(dev));
    this.sent.clear();
    try {
      await Promise.all(
        groups.map((g) => {
          const args: (string | number)[] = [this.t.redis.prefix, this.config.redis.deviceStateTtlMs];
          for (const [dev, d] of g) args.push(dev, d);
          return callScript<number>(this.commands, 'stratusRecord', this.t.redis.deviceState(g[0]![0]), args);
        }),
      );
    } catch {
      // Redis did not answer: the next renewal and the session's end record the position again.
    } finally {
      this.recordTimer = null;
      if (this.sent.size > 0) this.recordTimer = setTimeout(() => void this.recordSent(), RECORD_EVERY_MS);
    }
  }

  /** A session ended: records what it wrote; with `dropPresence`, lets go of the device too. */
  async release(deviceId: string, sentSeq: number, dropPresence: boolean): Promise<void> {
    const call = (this.commands as unknown as { stratusRelease(...a: (string | number)[]): Promise<number> }).stratusRelease(
      this.t.redis.presence(deviceId),
      this.t.redis.deviceState(deviceId),
      this.instanceId,
      sentSeq,
      dropPresence ? 1 : 0,
      this.config.redis.deviceStateTtlMs,
    );
    // Answered or failed, it is over: what a handoff waits for (onTakeover). One entry per device
    // whose release is unanswered, removed when it is answered.
    const settled = call.then(
      () => {},
      () => {},
    );
    this.releasing.set(deviceId, settled);
    void settled.then(() => {
      if (this.releasing.get(deviceId) === settled) this.releasing.delete(deviceId);
    });
    await call;
  }

  /** The server-side cursor: the last seq written to the device by any session, 0 if none. */
  async deliveredSeq(deviceId: string): Promise<number> {
    return Number((await this.commands.hget(this.t.redis.deviceState(deviceId), 'd')) ?? 0);
  }

  /**
   * The device's last seq (the highest taken, or routed), for the x-last-seq header: a device whose
   * counter restarted continues above it. A lost state hash is read from the buffer's last result.
   */
  async lastSeq(deviceId: string): Promise<number> {
    const [a, h] = await this.commands.hmget(this.t.redis.deviceState(deviceId), 'a', 'h');
    if (a !== null || h !== null) return Math.max(Number(a ?? 0), Number(h ?? 0));
    const last = (await this.commands.xrevrange(this.t.redis.deviceBuffer(deviceId), '+', '-', 'COUNT', 1)) as [string, string[]][];
    const fields = last[0]?.[1] ?? [];
    const at = fields.indexOf('s');
    return at >= 0 && at % 2 === 0 ? Number(fields[at + 1]) : 0;
  }

  /** Buffer entries with index > afterN, oldest first, at most count. */
  async readBuffer(deviceId: string, afterN: number, count: number): Promise<BufferEntry[]> {
    const rows = (await this.commands.xrangeBuffer(this.t.redis.deviceBuffer(deviceId), `(${afterN}-0`, '+', 'COUNT', count)) as [Buffer, Buffer[]][];
    return rows.map(([id, fields]) => ({ n: Number(id.toString().split('-')[0]), result: bufferField(fields, 'r') }));
  }

  /**
   * Drops buffer entries the device has confirmed (index < n), keeping entry n: the buffer's last
   * entry carries the device's last routed seq (field s), which is what rebuilds a lost `dev:`
   * hash (the admission's last seq, the forwarder's dedupe mark).
   */
  async trimBuffer(deviceId: string, n: number): Promise<void> {
    await this.commands.xtrim(this.t.redis.deviceBuffer(deviceId), 'MINID', `${n}-0`);
  }

  async close(): Promise<void> {
    if (this.renewTimer !== null) clearInterval(this.renewTimer);
    if (this.recordTimer !== null) clearTimeout(this.recordTimer);
    for (const settle of this.handoffs.values()) settle();
    this.handoffs.clear();
    this.sub.disconnect();
    this.commands.disconnect();
  }
}

/** The value of field `name` of a stream entry's [field, value, ...] list. */
function bufferField(fields: Buffer[], name: string): Buffer {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i]!.toString() === name) return fields[i + 1]!;
  throw new Error(`buffer entry without field ${name}`);
}
