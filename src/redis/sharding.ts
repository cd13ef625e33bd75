/**
 * What differs between one Redis server and a Redis Cluster, for the callers that touch many
 * devices at once (admission, presence renewals, the forwarder) and for the gateway channels:
 *
 *   - a script that reads or writes keys of many devices runs once per master, over the devices
 *     that master serves (groupByNode): ioredis sends EVALSHA to the node of its first key, so the
 *     call carries one key of the group as KEYS[1] (only for routing; the scripts build their keys
 *     themselves). On a cluster the script carries the flag `allow-cross-slot-keys` (Redis 7): it
 *     may touch keys of many slots as long as that node serves them all. A slot that moved since
 *     the client read the slot map makes those keys' commands fail in the script, and the caller
 *     retries (MOVED refreshes the map).
 *   - keys of one device share a slot: each carries the hash tag `{d:<device id>}` (topology.ts).
 *     The script text says where with the line CLUSTER_MARK, which becomes `true` on a cluster.
 *   - gateway channels are shard channels (SSUBSCRIBE / SPUBLISH), served by the node of their
 *     slot rather than broadcast to every node. A script cannot publish to a channel of another
 *     slot, so on a cluster the forwarder's script returns its frames and the forwarder publishes
 *     them after the script (the order buffer-then-publish is kept).
 */
import type { Redis } from 'ioredis';
import { isCluster, type RedisClient } from './client.js';
import { keySlot } from './key-slot.js';

/** The line a script starts its key builders from; true on a cluster (see scriptText). */
export const CLUSTER_MARK = 'local CLUSTER = false';

/**
 * Lua: `key(kind, dev)`, a device's key as topology.ts names it (`<prefix><kind>:<dev>`, or with the
 * tag `{d:<dev>}` on a cluster), for scripts that have `prefix` in scope. Carries CLUSTER_MARK.
 */
export const DEVICE_KEY_LUA = `${CLUSTER_MARK}
-- A device's key: on Redis Cluster with the hash tag {d:<device>} (topology.ts, redis/sharding.ts).
local function key(kind, dev)
  if CLUSTER then return prefix .. kind .. ':{d:' .. dev .. '}' end
  return prefix .. kind .. ':' .. dev
end`;
const CLUSTER_SHEBANG = '#!lua flags=allow-cross-slot-keys\n';

/** The text of `lua` for this client: on a cluster, with the flag and CLUSTER true. */
export function scriptText(client: RedisClient, lua: string): string {
  if (!isCluster(client)) return lua;
  const at = lua.indexOf(CLUSTER_MARK);
  if (at < 0 || lua.indexOf(CLUSTER_MARK, at + 1) >= 0) throw new Error(`a script for Redis Cluster must contain the line "${CLUSTER_MARK}" exactly once`);
  return CLUSTER_SHEBANG + lua.replace(CLUSTER_MARK, 'local CLUSTER = true');
}

/**
 * Defines a many-device script as `name` on `client`. On one server it takes no keys (as written);
 * on a cluster it takes one (the routing key, see callScript).
 */
export function defineManyKeyScript(client: RedisClient, name: string, lua: string): void {
  client.defineCommand(name, { numberOfKeys: isCluster(client) ? 1 : 0, lua: scriptText(client, lua) });
}

/** Calls a script defined by defineManyKeyScript; `routeKey` is a key of the group's node. */
export function callScript<T>(client: RedisClient, name: string, routeKey: string, args: readonly (string | number | Buffer)[]): Promise<T> {
  const fn = (client as unknown as Record<string, (...a: unknown[]) => Promise<T>>)[name]!.bind(client);
  return isCluster(client) ? fn(routeKey, ...args) : fn(...args);
}

/**
 * The master serving `key` as `host:port`, from the client's slot map; '' for one server, and for a
 * slot the map does not have yet (the call goes to whichever node ioredis picks, and is redirected).
 */
export function nodeOf(client: RedisClient, key: string): string {
  if (!isCluster(client)) return '';
  return client.slots[keySlot(key)]?.[0] ?? '';
}

/**
 * `items` grouped by the master serving keyOf(item), each group in the items' order; groups in
 * order of their first item. One group on one server.
 */
export function groupByNode<T>(client: RedisClient, items: readonly T[], keyOf: (item: T) => string): T[][] {
  if (!isCluster(client)) return items.length === 0 ? [] : [items.slice()];
  const groups = new Map<string, T[]>();
  for (const it of items) {
    const node = nodeOf(client, keyOf(it));
    const g = groups.get(node);
    if (g === undefined) groups.set(node, [it]);
    else g.push(it);
  }
  return [...groups.values()];
}

/** Publishes on a gateway channel: SPUBLISH on a cluster, PUBLISH on one server. Resolves to the receivers. */
export function publish(client: RedisClient, channel: string, message: Buffer | string): Promise<number> {
  return isCluster(client) ? client.spublish(channel, message).then(Number) : client.publish(channel, message);
}

/** Subscribes a client made with `subscriber: true`; its messages come as `messageEvent(client)`. */
export async function subscribe(client: RedisClient, channel: string): Promise<void> {
  if (isCluster(client)) await client.ssubscribe(channel);
  else await client.subscribe(channel);
}

export async function unsubscribe(client: RedisClient, channel: string): Promise<void> {
  if (isCluster(client)) await client.sunsubscribe(channel);
  else await client.unsubscribe(channel);
}

/** The event carrying (channel, message) as Buffers for a subscriber client. */
export function messageEvent(client: RedisClient): 'smessageBuffer' | 'messageBuffer' {
  return isCluster(client) ? 'smessageBuffer' : 'messageBuffer';
}

/** Every master connection (`host:port` -> client): the one server, or each master of the cluster. */
export function masters(client: RedisClient): Map<string, Redis> {
  if (!isCluster(client)) return new Map([['', client]]);
  const out = new Map<string, Redis>();
  for (const node of client.nodes('master')) out.set(`${node.options.host}:${node.options.port}`, node);
  return out;
}

/** Reads the cluster's slot map anew (after a script found a key of another node); nothing on one server. */
export function refreshSlots(client: RedisClient): void {
  if (isCluster(client)) client.refreshSlotsCache();
}
