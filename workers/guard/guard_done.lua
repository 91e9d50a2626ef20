-- Settle a tick (herald-guard): remove the items whose redelivery or dead
-- letter the broker acknowledged, and push throttled items back.
--
-- KEYS[1]  the due set
-- ARGV[1]  the prefix of item hash keys; ARGV[2] n, the number of ids to
--          remove, which follow; then pairs (id, new due ms) to push back
--          (only if still scheduled)
-- Returns the number of items left in the schedule.
local n = tonumber(ARGV[2])
for i = 3, 2 + n do
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('DEL', ARGV[1] .. ARGV[i])
end
for i = 3 + n, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[i + 1], ARGV[i])
end
return redis.call('ZCARD', KEYS[1])
