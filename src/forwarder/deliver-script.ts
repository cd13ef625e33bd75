/**
 * The forwarder's one Redis round trip per consumed batch, as a Lua script (atomic, so a crash
 * between its steps can't leave a result half-routed).
 *
 * For each (device, seq, result) in order:
 *   1. Dedupe: `dev:<id>` hash field h is the highest seq routed for the device. seq <= h is a
 *      duplicate (a re-read batch, or an event the device sent twice) and is dropped. Results of one
 *      device arrive in seq order (one partition), so a high-water mark is enough.
 *   2. Buffer: XADD to the device's stream `buf:<id>` with id `n-0`, n = ++dev.n, capped at
 *      ARGV[2] entries (MAXLEN ~). Every result is buffered, so a result published to a gateway that
 *      just lost the device, or published with no subscriber, is never lost: the device's next
 *      session reads the buffer.
 *   3. Route: `presence:<id>` names the gateway instance holding the device; the entry joins that
 *      instance's frame. After the loop, one PUBLISH per instance on `gw:<instance>`, the frame
 *      behind a type byte 1 (gateway/delivery.ts).
 *
 * Keys are computed inside the script, so it is for a single Redis (not Redis Cluster).
 * Returns { routed, duplicates, published frames }.
 */
export const DELIVER_SCRIPT = `
local prefix = ARGV[1]
local bufMax = ARGV[2]
local ttlMs = ARGV[3]
local frames = {}
local instances = {}
local routed, dups = 0, 0
for i = 4, #ARGV, 3 do
  local dev = ARGV[i]
  local seq = tonumber(ARGV[i + 1])
  local res = ARGV[i + 2]
  local dkey = prefix .. 'dev:' .. dev
  local h = tonumber(redis.call('HGET', dkey, 'h') or '0')
  if seq <= h then
    dups = dups + 1
  else
    local n = redis.call('HINCRBY', dkey, 'n', 1)
    redis.call('HSET', dkey, 'h', ARGV[i + 1])
    redis.call('PEXPIRE', dkey, ttlMs)
    local bkey = prefix .. 'buf:' .. dev
    redis.call('XADD', bkey, 'MAXLEN', '~', bufMax, n .. '-0', 'r', res)
    redis.call('PEXPIRE', bkey, ttlMs)
    routed = routed + 1
    local inst = redis.call('GET', prefix .. 'presence:' .. dev)
    if inst then
      local f = frames[inst]
      if not f then f = {}; frames[inst] = f; instances[#instances + 1] = inst end
      f[#f + 1] = struct.pack('<H', #dev) .. dev .. struct.pack('<d', n) .. struct.pack('<I4', #res) .. res
    end
  end
end
for _, inst in ipairs(instances) do
  redis.call('PUBLISH', prefix .. 'gw:' .. inst, '\\1' .. table.concat(frames[inst]))
end
return { routed, dups, #instances }
`;
