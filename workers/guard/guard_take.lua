-- Take the due items of the schedule (herald-guard's tick), after
-- hr_park_lib.lua.
--
-- KEYS[1..4]  due, wait, waitev, qof; KEYS[5] items
-- ARGV[1] now (ms); ARGV[2] at most this many items; ARGV[3] their lease:
--          taken items stay in the due set with this due time, so that
--          the next take (of this or another replica) skips them while
--          their redelivery travels, and a crash hands them out again
--          after it; ARGV[4] how many waiting items to look at again;
--          ARGV[5] no more items once their records add up to this many
--          bytes (at least one is taken): records of hundreds of KB piled
--          up in an outage must not make a reply of gigabytes
--
-- First, up to ARGV[4] waiting items whose time has come are looked at
-- again: gone (their record vanished) ones are removed, ones that may go
-- now (a wake-up was missed, or a queue expired) move to the due set, the
-- others are looked at again a minute later. A due id whose record
-- vanished is removed too.
-- Returns {due, waiting, removed, {id, encoded record, ...}, cut}: cut is
-- 1 when the byte bound left due items behind.
local K_ITEMS = KEYS[5]
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local lease = ARGV[3]
local rescan = tonumber(ARGV[4])
local max_bytes = tonumber(ARGV[5])
local CHUNK = 1000
local removed = 0
local bytes, cut = 0, 0

if rescan > 0 then
    local ids = redis.call('ZRANGEBYSCORE', P_WAIT, '-inf', now, 'LIMIT', 0,
                           rescan)
    for _, id in ipairs(ids) do
        local v = redis.call('HGET', P_QOF, id)
        if not v or redis.call('HEXISTS', K_ITEMS, id) == 0 then
            redis.call('ZREM', P_WAIT, id)
            redis.call('HDEL', P_QOF, id)
            redis.call('HDEL', K_ITEMS, id)
            if v then
                local _, eid = p_parse(v)
                if redis.call('HGET', P_WAITEV, eid) == id then
                    redis.call('HDEL', P_WAITEV, eid)
                end
            end
            removed = removed + 1
        else
            local _, eid, qs = p_parse(v)
            if p_ready(qs, eid) then
                p_wake(id, v, now)
            else
                redis.call('ZADD', P_WAIT, 'XX', now + 60000, id)
            end
        end
    end
end

local ids = redis.call('ZRANGEBYSCORE', P_DUE, '-inf', now, 'LIMIT', 0,
                       limit)
local out = {}
for c = 1, #ids, CHUNK do
    local chunk = {unpack(ids, c, math.min(c + CHUNK - 1, #ids))}
    local blobs = redis.call('HMGET', K_ITEMS, unpack(chunk))
    local leased = {}
    for j, id in ipairs(chunk) do
        local b = blobs[j]
        if bytes >= max_bytes then
            cut = 1
            break
        end
        if b then
            out[#out + 1] = id
            out[#out + 1] = b
            leased[#leased + 1] = lease
            leased[#leased + 1] = id
            bytes = bytes + #b
        else
            redis.call('ZREM', P_DUE, id)
            removed = removed + 1
        end
    end
    if #leased > 0 then
        redis.call('ZADD', P_DUE, 'XX', unpack(leased))
    end
    if cut == 1 then
        break
    end
end
return {redis.call('ZCARD', P_DUE), redis.call('ZCARD', P_WAIT), removed, out,
        cut}
