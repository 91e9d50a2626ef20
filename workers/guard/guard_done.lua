-- Settle a slice of a tick (herald-guard), after hr_park_lib.lua.
--
-- KEYS[1..4]  due, wait, waitev, qof; KEYS[5] items
-- ARGV[1]     now (ms); ARGV[2] n, the number of item ids whose
--             redelivery or dead letter the broker acknowledged, which
--             follow (they leave the schedule); then m and m pairs (id,
--             new due ms) of items kept waiting (only if still scheduled);
--             then, to the end, events dead-lettered here that leave their
--             park queues: event id, nq, nq park queues
-- Returns {due, waiting}.
local K_ITEMS = KEYS[5]
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local CHUNK = 1000
local a = 3

for c = a, a + n - 1, CHUNK do
    local last = math.min(c + CHUNK - 1, a + n - 1)
    redis.call('ZREM', P_DUE, unpack(ARGV, c, last))
    redis.call('HDEL', K_ITEMS, unpack(ARGV, c, last))
end
a = a + n
local m = tonumber(ARGV[a])
a = a + 1
for c = a, a + 2 * m - 1, 2 * CHUNK do
    local last = math.min(c + 2 * CHUNK - 1, a + 2 * m - 1)
    local pairs_ = {}
    for i = c, last, 2 do
        pairs_[#pairs_ + 1] = ARGV[i + 1]
        pairs_[#pairs_ + 1] = ARGV[i]
    end
    redis.call('ZADD', P_DUE, 'XX', unpack(pairs_))
end
a = a + 2 * m
while a <= #ARGV do
    local nq = tonumber(ARGV[a + 1])
    for j = 1, nq do
        p_release(ARGV[a + 1 + j], ARGV[a], now)
    end
    a = a + 2 + nq
end
return {redis.call('ZCARD', P_DUE), redis.call('ZCARD', P_WAIT)}
