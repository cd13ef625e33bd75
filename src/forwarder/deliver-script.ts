/**
 * The forwarder's Redis round trip for a slice of a consumed batch (at most forwarder.scriptResultsMax
 * results and forwarder.scriptBytesMax bytes), as a Lua script.
 *
 * Redis does not roll a script back when one of its commands fails, so the order of the writes is
 * what makes a retry safe: a result's seq is recorded as routed (h) only after its XADD succeeded.
 *
 * Per device, loaded once per call (`dev:<id>` hash: h = highest seq routed, n = last buffer
 * index; a = last taken seq and d = last delivered seq belong to the gateway and are never written
 * here):
 *   - the hash has no n (it was evicted, deleted, or only the gateway's fields came back): n and h
 *     are rebuilt from the buffer `buf:<id>`: n = its last generated id (XINFO, which survives the
 *     gateway's XTRIM) and its last entry's id, h = max(h, d, field s of the last entry).
 *
 * For each (device, seq, result) in order:
 *   1. Dedupe: seq <= h is a duplicate (a re-read batch) and is dropped. Results of one device
 *      arrive in seq order (one partition), so a high-water mark is enough.
 *   2. Buffer: XADD `buf:<id>` id `(n+1)-0`, fields r = result, s = seq, capped at redis.deviceBufferMax
 *      (MAXLEN ~). If Redis says the id is not above the stream's top (n in the hash is behind the
 *      buffer, e.g. a hash restored from an older snapshot), n and h are rebuilt as above and the
 *      result is tried once more (it may now be a duplicate).
 *   3. Only then HSET n and h.
 *   4. Route: `presence:<id>` names the gateway instance holding the device; the entry joins that
 *      instance's frame. After the loop, one PUBLISH per instance on `gw:<instance>`, the frame
 *      behind a type byte 1 (wire/delivery-frame.ts, gateway/delivery.ts).
 *
 * Every write is a redis.pcall: an error (wrong key type, OOM before the script's first write...)
 * fails that device for the rest of this call (its later results are skipped, so its order holds)
 * and the script goes on with the other devices. Each buffer written gets PEXPIRE
 * redis.deviceStateTtlMs, and so does a `dev:` hash this script created or rebuilt; an existing one
 * keeps the TTL the gateway's admission renews each time it takes an event of the device.
 *
 * Keys are computed inside the script. On Redis Cluster (redis/sharding.ts) each call carries only
 * devices of one master, and the frames are returned rather than published (a fifth element: flat
 * list of instance, frame); the forwarder SPUBLISHes them after the call.
 *
 * ARGV: prefix, deviceBufferMax, deviceStateTtlMs, then (device, seq as decimal, result) per result.
 * Returns { routed, duplicates, frames published, failures } where failures is a flat list
 * (index of the result in this call, 0-based; error text) with one pair per result not written.
 */
import { DEVICE_KEY_LUA } from '../redis/sharding.js';

export const DELIVER_SCRIPT = `
local prefix = ARGV[1]
${DEVICE_KEY_LUA}
local bufMax = ARGV[2]
local ttlMs = ARGV[3]
local frames = {}
local instances = {}
local devs = {}
local touched = {}
local failures = {}
local routed, dups = 0, 0

local function idNum(id)
  return tonumber(string.match(id, '^(%d+)')) or 0
end

local function errText(r)
  if type(r) == 'table' and r.err then return r.err end
  return nil
end

-- n and h from the buffer: returns nil, error text when the buffer can't be read.
local function rebuild(st)
  local n = 0
  local info = redis.pcall('XINFO', 'STREAM', st.bkey)
  local e = errText(info)
  if e then
    if not string.find(e, 'no such key', 1, true) then return nil, e end
  else
    for j = 1, #info, 2 do
      if info[j] == 'last-generated-id' then n = idNum(info[j + 1]) end
    end
  end
  local top = redis.pcall('XREVRANGE', st.bkey, '+', '-', 'COUNT', 1)
  e = errText(top)
  if e then return nil, e end
  local h = st.h
  if st.d > h then h = st.d end
  if top[1] then
    local id = idNum(top[1][1])
    if id > n then n = id end
    local fields = top[1][2]
    for j = 1, #fields, 2 do
      if fields[j] == 's' then
        local s = tonumber(fields[j + 1]) or 0
        if s > h then h = s end
      end
    end
  end
  st.n = n
  st.h = h
  st.rebuilt = true
  return true
end

local function load(dev)
  local st = { dkey = key('dev', dev), bkey = key('buf', dev), rebuilt = false }
  local v = redis.pcall('HMGET', st.dkey, 'h', 'n', 'd')
  local e = errText(v)
  if e then st.failed = e; return st end
  st.h = tonumber(v[1]) or 0
  st.d = tonumber(v[3]) or 0
  if v[2] then
    st.n = tonumber(v[2]) or 0
  else
    local ok, re = rebuild(st)
    if not ok then st.failed = re end
  end
  return st
end

local function xadd(st, seqText, res)
  local id = string.format('%.0f', st.n + 1) .. '-0'
  return redis.pcall('XADD', st.bkey, 'MAXLEN', '~', bufMax, id, 'r', res, 's', seqText)
end

for i = 4, #ARGV, 3 do
  local index = (i - 4) / 3
  local dev = ARGV[i]
  local seqText = ARGV[i + 1]
  local seq = tonumber(seqText)
  local res = ARGV[i + 2]
  local st = devs[dev]
  if not st then st = load(dev); devs[dev] = st end
  if st.failed then
    failures[#failures + 1] = index
    failures[#failures + 1] = st.failed
  elseif seq <= st.h then
    dups = dups + 1
  else
    local r = xadd(st, seqText, res)
    local e = errText(r)
    if e and not st.rebuilt and string.find(e, 'equal or smaller', 1, true) then
      -- n in the hash is behind the buffer: rebuild, then this result may be a duplicate.
      local ok, re = rebuild(st)
      if not ok then
        e = re
      elseif seq <= st.h then
        e = nil
        r = nil
        dups = dups + 1
      else
        r = xadd(st, seqText, res)
        e = errText(r)
      end
    end
    if e then
      st.failed = e
      failures[#failures + 1] = index
      failures[#failures + 1] = e
    elseif r then
      st.n = st.n + 1
      st.h = seq
      touched[#touched + 1] = st
      local w = redis.pcall('HSET', st.dkey, 'n', string.format('%.0f', st.n), 'h', seqText)
      e = errText(w)
      if e then
        -- The result is buffered but h is not recorded: a retry finds it there (rebuild by field s).
        st.failed = e
      elseif w ~= 0 then
        -- The hash was created (or had lost n and h) here: it gets the devices' TTL below. One
        -- that had them keeps the TTL the gateway's admission set when it took the event.
        st.created = true
      end
      routed = routed + 1
      -- Presence is read once per device per call (nothing else runs while this script does).
      if st.inst == nil then
        st.inst = redis.pcall('GET', key('presence', dev))
      end
      local inst = st.inst
      -- A presence key of the wrong type routes nothing: the result waits in the buffer.
      if type(inst) == 'string' then
        local f = frames[inst]
        if not f then f = {}; frames[inst] = f; instances[#instances + 1] = inst end
        f[#f + 1] = struct.pack('<H', #dev) .. dev .. struct.pack('<d', st.n) .. struct.pack('<I4', #res) .. res
      end
    end
  end
end
for _, st in ipairs(touched) do
  if not st.expired then
    st.expired = true
    if st.created or st.rebuilt then redis.pcall('PEXPIRE', st.dkey, ttlMs) end
    redis.pcall('PEXPIRE', st.bkey, ttlMs)
  end
end
if CLUSTER then
  -- A shard channel of another slot can't be published to from here: the caller publishes these.
  local out = {}
  for _, inst in ipairs(instances) do
    out[#out + 1] = inst
    out[#out + 1] = '\\1' .. table.concat(frames[inst])
  end
  return { routed, dups, #instances, failures, out }
end
for _, inst in ipairs(instances) do
  redis.call('PUBLISH', prefix .. 'gw:' .. inst, '\\1' .. table.concat(frames[inst]))
end
return { routed, dups, #instances, failures }
`;

/** What one script call returns, decoded. */
export interface DeliverReply {
  routed: number;
  duplicates: number;
  frames: number;
  /** One per result not written: its index in the call and Redis's error text. */
  failures: { index: number; error: string }[];
  /** On Redis Cluster: the frames to publish, per gateway instance (the script published none). */
  toPublish: { instance: string; frame: Buffer }[];
}

export function decodeDeliverReply(raw: unknown): DeliverReply {
  const [routed, duplicates, frames, flat, pub] = raw as [number, number, number, (number | string | Buffer)[], Buffer[] | undefined];
  const failures: { index: number; error: string }[] = [];
  for (let i = 0; i < flat.length; i += 2) failures.push({ index: Number(flat[i]), error: String(flat[i + 1]) });
  const toPublish: { instance: string; frame: Buffer }[] = [];
  if (pub !== undefined) for (let i = 0; i < pub.length; i += 2) toPublish.push({ instance: String(pub[i]), frame: Buffer.from(pub[i + 1]!) });
  return { routed: Number(routed), duplicates: Number(duplicates), frames: Number(frames), failures, toPublish };
}
