-- Read the due items of the schedule (herald-guard's tick). Read-only but
-- for orphans: ids whose hash expired or vanished are removed.
--
-- KEYS[1]  the due set
-- ARGV[1]  now (ms); ARGV[2] at most this many items; ARGV[3] the prefix of
--          item hash keys (same hash tag as KEYS[1])
-- Returns {scheduled, orphans, {id, topic, haskey, key, value, hdrs,
--          destination, ...}}.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1],
                       'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
local orphans = 0
for _, id in ipairs(ids) do
  local v = redis.call('HMGET', ARGV[3] .. id, 'topic', 'haskey', 'key',
                       'value', 'hdrs', 'dest')
  if not v[1] or not v[6] then
    redis.call('ZREM', KEYS[1], id)
    orphans = orphans + 1
  else
    out[#out + 1] = id
    for j = 1, 6 do
      out[#out + 1] = v[j] or ''
    end
  end
end
return {redis.call('ZCARD', KEYS[1]), orphans, out}
