/**
 * The gateway's Redis side: presence (device -> this instance, leased), the instance's delivery
 * channel, and reading a device's buffer.
 *
 * Channel messages start with one type byte:
 *   1  delivery frame (wire/delivery-frame.ts), published by the forwarder's script
 *   2  takeover: the rest is a device id that another instance now holds; end its session here
 */
import type { Config } from '../config.js';
import { createRedis, type RedisClient } from '../redis/client.js';
import { topology, type Topology } from '../topology.js';
import { decodeFrame, type FrameEntry } from '../wire/delivery-frame.js';
import { metrics } from '../http/metrics.js';

export const MSG_FRAME = 1;
export const MSG_TAKEOVER = 2;

/** Deletes the presence entry only if it still names this instance (a newer holder keeps it). */
const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export interface DeliveryHandlers {
  onEntries(entries: FrameEntry[]): void;
  onTakeover(deviceId: string): void;
}

export interface BufferEntry {
  n: number;
  result: Buffer;
}

/** Presence renewals per pipeline (see renew()). */
const RENEW_CHUNK = 250;

export class DeliveryLink {
  readonly commands: RedisClient;
  private readonly sub: RedisClient;
  private readonly t: Topology;
  private readonly channel: string;

  private constructor(private readonly config: Config, private readonly instanceId: string, commands: RedisClient, sub: RedisClient) {
    this.commands = commands;
    this.sub = sub;
    this.t = topology(config);
    this.channel = this.t.redis.instanceChannel(instanceId);
  }

  static async connect(config: Config, instanceId: string, handlers: DeliveryHandlers): Promise<DeliveryLink> {
    // Commands wait in ioredis's queue while reconnecting; the sessions bound how many they issue.
    const commands = createRedis(config, `${instanceId}-gateway`, { offlineQueue: true });
    const sub = createRedis(config, `${instanceId}-gateway-sub`, { offlineQueue: true });
    commands.on('error', () => {});
    sub.on('error', () => {});
    await Promise.all([commands.connect(), sub.connect()]);
    commands.defineCommand('stratusRelease', { numberOfKeys: 1, lua: RELEASE_SCRIPT });
    const link = new DeliveryLink(config, instanceId, commands, sub);
    sub.on('messageBuffer', (_channel: Buffer, message: Buffer) => {
      // A corrupt message must not throw into ioredis's parser: it is counted and dropped. The
      // results it carried are in their devices' buffers and reach them on the next gap or stream.
      try {
        if (message[0] === MSG_FRAME) handlers.onEntries(decodeFrame(message.subarray(1)));
        else if (message[0] === MSG_TAKEOVER) handlers.onTakeover(message.toString('utf8', 1));
        else metrics.deliveryMessagesCorrupt.inc();
      } catch {
        metrics.deliveryMessagesCorrupt.inc();
      }
    });
    await sub.subscribe(link.channel);
    return link;
  }

  /**
   * Claims the device for this instance and returns the instance that held it before (or null).
   * The caller tells that instance to end its session.
   */
  async claim(deviceId: string): Promise<string | null> {
    const previous = await this.commands.set(this.t.redis.presence(deviceId), this.instanceId, 'PX', this.config.gateway.presenceLeaseMs, 'GET');
    if (previous !== null && previous !== this.instanceId) {
      await this.commands.publish(this.t.redis.instanceChannel(previous), Buffer.concat([Buffer.from([MSG_TAKEOVER]), Buffer.from(deviceId)]));
    }
    return previous;
  }

  /** Renews the lease of every device held here, in one pipeline. */
  /**
   * Renews the presence lease of every device given, RENEW_CHUNK at a time, each chunk's pipeline
   * awaited before the next is built: building and parsing one pipeline for every device of a big
   * gateway (10,000 SETs) held the event loop for ~100 ms every renewal, which was the ack p99.
   */
  async renew(deviceIds: Iterable<string>): Promise<void> {
    const ids = [...deviceIds];
    for (let i = 0; i < ids.length; i += RENEW_CHUNK) {
      const p = this.commands.pipeline();
      for (const id of ids.slice(i, i + RENEW_CHUNK)) p.set(this.t.redis.presence(id), this.instanceId, 'PX', this.config.gateway.presenceLeaseMs);
      await p.exec();
    }
  }

  async release(deviceId: string, deliveredSeq: number): Promise<void> {
    const p = this.commands.pipeline();
    (p as unknown as { stratusRelease(k: string, v: string): void }).stratusRelease(this.t.redis.presence(deviceId), this.instanceId);
    // The server-side cursor for devices that do not send x-last-result-seq.
    if (deliveredSeq > 0) p.hset(this.t.redis.deviceState(deviceId), 'd', String(deliveredSeq));
    await p.exec();
  }

  deviceStateKey(deviceId: string): string {
    return this.t.redis.deviceState(deviceId);
  }

  /** The server-side cursor: the last seq delivered to the device by any session, 0 if none. */
  async deliveredSeq(deviceId: string): Promise<number> {
    return Number((await this.commands.hget(this.t.redis.deviceState(deviceId), 'd')) ?? 0);
  }

  /** Buffer entries with index > afterN, oldest first, at most count. */
  async readBuffer(deviceId: string, afterN: number, count: number): Promise<BufferEntry[]> {
    const rows = (await this.commands.xrangeBuffer(this.t.redis.deviceBuffer(deviceId), `(${afterN}-0`, '+', 'COUNT', count)) as [Buffer, Buffer[]][];
    return rows.map(([id, fields]) => ({ n: Number(id.toString().split('-')[0]), result: fields[1]! }));
  }

  /** Drops buffer entries the device has confirmed (index <= n). */
  async trimBuffer(deviceId: string, n: number): Promise<void> {
    await this.commands.xtrim(this.t.redis.deviceBuffer(deviceId), 'MINID', `${n + 1}-0`);
  }

  async close(): Promise<void> {
    this.sub.disconnect();
    this.commands.disconnect();
  }
}
