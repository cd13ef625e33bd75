/**
 * The exporter's two Lua scripts: each reads and changes the consumer group in one step, where the
 * same commands sent one by one would race with other exporters.
 */

/**
 * Keeps the exporter's own pending entries fresh, so XAUTOCLAIM (min idle streams.claimIdleMs)
 * takes only entries of consumers that stopped doing this, i.e. died or stalled. For each id in
 * ARGV[3..] still pending on consumer ARGV[2] (checked per id with XPENDING), XCLAIM it to the same
 * consumer with min-idle 0 and JUSTID: its idle time is reset and its delivery count is not
 * raised. An id no longer pending on ARGV[2] (acked, trimmed away, or taken over by another
 * exporter while this one stalled) is left alone, never taken back, and returned.
 *
 * KEYS[1] stream; ARGV[1] group; ARGV[2] consumer; ARGV[3..] ids (a few hundred per call: unpack's
 * limit is about 8000 values).
 */
export const REFRESH_SCRIPT = `
local mine, gone = {}, {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[2] then mine[#mine + 1] = ARGV[i] else gone[#gone + 1] = ARGV[i] end
end
if #mine > 0 then
  local args = { KEYS[1], ARGV[1], ARGV[2], 0 }
  for _, id in ipairs(mine) do args[#args + 1] = id end
  args[#args + 1] = 'JUSTID'
  redis.call('XCLAIM', unpack(args))
end
return gone
`;

/**
 * Removes the group's consumers other than ARGV[2] that hold no pending entry and have been idle
 * for ARGV[3] ms or more (dead exporters whose entries were reclaimed). In one step, so a consumer
 * can't read an entry between the check and XGROUP DELCONSUMER (which would drop that entry from
 * the pending list). A live exporter removed while idle is recreated by its next XREADGROUP.
 * Returns the names removed.
 *
 * KEYS[1] stream; ARGV[1] group; ARGV[2] this consumer; ARGV[3] idle ms.
 */
export const PRUNE_SCRIPT = `
local removed = {}
local consumers = redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
for _, c in ipairs(consumers) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['name'] ~= ARGV[2] and tonumber(f['pending']) == 0 and tonumber(f['idle']) >= tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    removed[#removed + 1] = f['name']
  end
end
return removed
`;
