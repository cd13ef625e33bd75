/**
 * The gateway's one Redis round trip per event-loop turn that puts events into their devices' one
 * order (see admission.ts and README "Delivery contract"). Atomic: no other instance's call, and no
 * forwarder call, runs between its steps.
 *
 * Per device, in the hash `dev:<id>`:
 *   a  last seq taken (every seq ever taken for the device is <= a)
 *   k  highest seq known durable in Kafka, written by the instance that took it (seqs <= k were all
 *      taken, produced and reported durable, or routed); h (the forwarder's highest routed seq) counts too
 *   w  the lowest seq the taken-seq window is valid from
 *   ul, uh  an unknown region (ul, uh]: seqs an owner took that were not known durable when its
 *      lease ended (it died, or Kafka failed some): a resend is taken again only while nothing above
 *      the region has been taken since; DUPLICATE only when routed from that owner's prefix; else
 *      OUT_OF_ORDER (the device renumbers; the first copy may still have its one result)
 * the taken-seq window `seqs:<id>`: a ring of SEQ_WINDOW bits, bit (s mod SEQ_WINDOW) set iff seq s
 * was taken, valid for seqs in (a - SEQ_WINDOW, a] at or above w, so a seq at or below a can be told
 * apart: taken (a resend) or never taken (out of order, or skipped);
 * and the admission lease `adm:<id>` = the instance that has events of the device waiting for Kafka.
 *
 * ARGV: prefix, me, leaseMs, ttlMs, nUpdates,
 *       nUpdates x (device, k, release)        k: durable seq to record (0: none); release: 1 drops the lease
 *       then groups to the end: device, myMaxSeq, count, count x seq
 *         myMaxSeq: the highest seq this instance has waiting for Kafka for the device (0: none)
 *         seq "0": number it (a + 1), for clients that do not number their events (Nimbus)
 *
 * Updates run first (an instance only records k while it holds the lease: its reports are in seq
 * order, so k stays a contiguous durable prefix), then every group in order. Each seq gets:
 *   > 0  taken, with that seq (a advanced, or a seq in (k, a] taken again, see below)
 *   -1   DUPLICATE: seq <= max(k, h) and it was taken (or is older than the window): durable already
 *   -3   OUT_OF_ORDER: seq <= a and it was never taken (or is older than the window and not known
 *        durable): it can never be (a device's events reach Kafka in seq order); final
 *   -2   WAIT: another instance holds the lease, or the seq is in (k, a] below something this
 *        instance still has waiting for Kafka; retried by the caller (and every later seq of the
 *        device in the call waits too, so nothing overtakes it)
 * A seq in (k, a] was taken but its fate is unknown (its instance died, or Kafka failed it): it is
 * taken again once nothing of the device that could land after it is waiting for Kafka. If the first
 * copy did land, the forwarder's dedupe drops the second.
 *
 * Returns, per group: a, max(k, h), then one verdict per seq.
 * A lost `dev:` hash is rebuilt from the result buffer's last entry (field s = its seq): what was
 * routed was durable; the window starts anew above it.
 */
import { DEVICE_KEY_LUA } from '../redis/sharding.js';

export const SEQ_WINDOW = 1024;
export const ADMIT_SCRIPT = /* lua */ `
local prefix, me, leaseMs, ttlMs = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
${DEVICE_KEY_LUA}
local W = ${SEQ_WINDOW}
local nUpdates = tonumber(ARGV[5])
local i = 6
for _ = 1, nUpdates do
  local dev, k, release = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  local akey = key('adm', dev)
  if redis.call('GET', akey) == me then
    if k ~= '0' then
      local dkey = key('dev', dev)
      local cur = redis.call('HMGET', dkey, 'k', 'a', 'uh')
      if tonumber(k) > tonumber(cur[1] or '0') then
        redis.call('HSET', dkey, 'k', k)
        -- A hash that was there keeps the TTL its take renewed; one gone meanwhile is created here.
        if not cur[2] then redis.call('PEXPIRE', dkey, ttlMs) end
        -- An unknown region resolved by this owner before anything above it was taken: gone.
        local uh = tonumber(cur[3] or '0')
        if uh > 0 and tonumber(cur[2] or '0') == uh and tonumber(k) >= uh then redis.call('HDEL', dkey, 'ul', 'uh') end
      end
    end
    if release == '1' then redis.call('DEL', akey) end
  end
end
local out = {}
while i <= #ARGV do
  local dev, myMax, count = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  i = i + 3
  local dkey = key('dev', dev)
  local akey = key('adm', dev)
  local skey = key('seqs', dev)
  local st = redis.call('HMGET', dkey, 'a', 'k', 'h', 'w', 'ul', 'uh')
  local a, k, w
  local rebuilt = false
  if st[1] then
    a = tonumber(st[1])
    k = math.max(tonumber(st[2] or '0'), tonumber(st[3] or '0'))
    w = tonumber(st[4] or '0')
    if w == 0 or redis.call('EXISTS', skey) == 0 then w = a + 1 end
  else
    -- The hash is gone (or the device is new): rebuild from the buffer's last routed result.
    a = math.max(tonumber(st[3] or '0'), tonumber(st[2] or '0'))
    local last = redis.pcall('XREVRANGE', key('buf', dev), '+', '-', 'COUNT', 1)
    if type(last) == 'table' and not last.err and last[1] then
      local f = last[1][2]
      for j = 1, #f, 2 do
        if f[j] == 's' then a = math.max(a, tonumber(f[j + 1]) or 0) end
      end
    end
    k = a
    w = a + 1
    rebuilt = true
    redis.call('DEL', skey)
  end
  local w0 = w
  -- Takes seq n above a: the seqs skipped in between are marked never taken.
  local function advance(n)
    if n - a >= W then
      -- Every seq of the window below n was skipped: all bits zero, valid from n - W + 1.
      redis.call('DEL', skey)
      w = n - W + 1
    else
      for x = a + 1, n - 1 do redis.call('SETBIT', skey, x % W, 0) end
    end
    redis.call('SETBIT', skey, n % W, 1)
    a = n
  end
  -- 1: taken, 0: never taken, -1: unknown (older than the window, or from before a lost hash).
  local function taken(n)
    if n < w or n <= a - W then return -1 end
    return redis.call('GETBIT', skey, n % W)
  end
  local owner = redis.call('GET', akey)
  -- The unknown region (ul, uh]: seqs taken by an owner that died or failed before they were known
  -- durable. Found when the lease is free while k < a; merged with an earlier one.
  local hh = tonumber(st[3] or '0')
  local ul, uh = tonumber(st[5] or '0'), tonumber(st[6] or '0')
  local region0 = uh
  if not owner and k < a then
    if uh > 0 then ul = math.min(ul, k) else ul = k end
    uh = a
  end
  local verdicts = {}
  local took = false
  if owner and owner ~= me then
    for j = 1, count do verdicts[j] = -2 end
  else
    local running = myMax
    local blocked = false
    for j = 1, count do
      local n = tonumber(ARGV[i + j - 1])
      if blocked then
        verdicts[j] = -2
      elseif n == 0 or n > a then
        if n == 0 then n = a + 1 end
        advance(n)
        verdicts[j] = n
        running = n
        took = true
      else
        local t = taken(n)
        if t == 0 then
          verdicts[j] = -3
        elseif uh > 0 and n > ul and n <= uh then
          -- Its fate is unknown. Routed from that owner's prefix (nothing newer routed yet): durable.
          -- Nothing taken above the region since: taken again (if the first copy landed, the
          -- forwarder drops this one). Else it can never be known or taken: the device renumbers.
          if hh <= uh and n <= hh then
            verdicts[j] = -1
          elseif a == uh and n > running then
            verdicts[j] = n
            running = n
            took = true
          elseif a == uh then
            verdicts[j] = -2
            blocked = true
          else
            verdicts[j] = -3
          end
        elseif n <= k then
          verdicts[j] = -1
        elseif t == -1 then
          -- Too old to tell, and not known durable: never taken again (something above it may be
          -- in Kafka already). While this instance has events of the device waiting for Kafka, k
          -- may still pass it: wait; else the device renumbers.
          if owner then
            verdicts[j] = -2
            blocked = true
          else
            verdicts[j] = -3
          end
        elseif n > running then
          verdicts[j] = n
          running = n
          took = true
        else
          verdicts[j] = -2
          blocked = true
        end
      end
    end
  end
  i = i + count
  if uh ~= region0 then
    redis.call('HSET', dkey, 'ul', string.format('%.0f', ul), 'uh', string.format('%.0f', uh))
    redis.call('PEXPIRE', dkey, ttlMs)
  end
  if took then
    redis.call('HSET', dkey, 'a', string.format('%.0f', a))
    if rebuilt then redis.call('HSET', dkey, 'k', string.format('%.0f', k)) end
    if w ~= w0 or rebuilt or st[4] == false then redis.call('HSET', dkey, 'w', string.format('%.0f', w)) end
    redis.call('PEXPIRE', dkey, ttlMs)
    redis.call('PEXPIRE', skey, ttlMs)
    redis.call('SET', akey, me, 'PX', leaseMs)
  end
  out[#out + 1] = a
  out[#out + 1] = k
  for j = 1, count do out[#out + 1] = verdicts[j] end
end
return out
`;

/**
 * Renews the admission leases this instance still holds: PEXPIRE only where `adm:<id>` names it.
 * ARGV: prefix, me, leaseMs, devices... Returns one 1 (renewed) or 0 (not ours any more) per device.
 */
export const ADMIT_RENEW_SCRIPT = `
local prefix, me, leaseMs = ARGV[1], ARGV[2], ARGV[3]
${DEVICE_KEY_LUA}
local out = {}
for i = 4, #ARGV do
  local akey = key('adm', ARGV[i])
  if redis.call('GET', akey) == me then
    redis.call('PEXPIRE', akey, leaseMs)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
`;
