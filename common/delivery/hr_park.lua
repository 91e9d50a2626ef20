-- Park checks of the workers (hr_park.c), after hr_park_lib.lua.
--
-- KEYS[1..4]  as in hr_park_lib.lua; KEYS[5] the sequence counter; then
--             park queues (zsets: event id -> sequence)
-- ARGV[1]     'check' or 'settle'
--
-- check:  ARGV[1 + i] for queue KEYS[5 + i]: how many members to return.
--         Returns per queue {size, first members...}. Read-only.
-- settle: ARGV[2] now (ms), ARGV[3] queue TTL (ms), then triples
--         (op, i, event id), applied in order: 'A' appends the event to
--         queue KEYS[5 + i] unless it is in it already (it keeps its
--         place); 'D' removes it (finished), waking the next head's item.
--         Returns the number of triples applied.
local op = ARGV[1]
local out = {}

if op == 'check' then
    for i = 6, #KEYS do
        local q = KEYS[i]
        local want = tonumber(ARGV[i - 4])
        local size = redis.call('ZCARD', q)
        local entry = {size}
        if size > 0 and want > 0 then
            local m = redis.call('ZRANGE', q, 0, want - 1)
            for j = 1, #m do
                entry[#entry + 1] = m[j]
            end
        end
        out[#out + 1] = entry
    end
    return out
end

if op ~= 'settle' then
    return redis.error_reply('unknown park op ' .. tostring(op))
end
local now = tonumber(ARGV[2])
local ttl = ARGV[3]
local n = 0
for a = 4, #ARGV, 3 do
    local q = KEYS[5 + tonumber(ARGV[a + 1])]
    local eid = ARGV[a + 2]
    if ARGV[a] == 'A' then
        if not redis.call('ZSCORE', q, eid) then
            redis.call('ZADD', q, redis.call('INCR', KEYS[5]), eid)
        end
        redis.call('PEXPIRE', q, ttl)
    else
        p_release(q, eid, now)
    end
    n = n + 1
end
return n
