-- Add a batch of retry records to the schedule (herald-guard's handler).
--
-- KEYS[1]      the due set (zset: item id -> due time in ms)
-- KEYS[1 + i]  item i's hash
-- ARGV[1]      the bound of the schedule (items)
-- ARGV per item (9 each, from ARGV[2]): id, due_ms, ttl_s, topic, haskey,
--              key, value, hdrs, destination
--
-- An id already scheduled is left as it is (a redelivered retry record
-- keeps its first due time). When the bound is reached, the script stops
-- and says so; the items before stay added (the caller redoes the batch).
-- Returns {added, scheduled, full (0|1)}.
local max = tonumber(ARGV[1])
local count = redis.call('ZCARD', KEYS[1])
local added = 0
for i = 1, #KEYS - 1 do
  local a = 2 + (i - 1) * 9
  local id = ARGV[a]
  if not redis.call('ZSCORE', KEYS[1], id) then
    if count >= max then
      return {added, count, 1}
    end
    local k = KEYS[1 + i]
    redis.call('DEL', k)
    redis.call('HSET', k, 'topic', ARGV[a + 3], 'haskey', ARGV[a + 4],
               'key', ARGV[a + 5], 'value', ARGV[a + 6], 'hdrs', ARGV[a + 7],
               'dest', ARGV[a + 8])
    redis.call('EXPIRE', k, tonumber(ARGV[a + 2]))
    redis.call('ZADD', KEYS[1], ARGV[a + 1], id)
    count = count + 1
    added = added + 1
  end
end
return {added, count, 0}
