-- Add a batch of retry records to the schedule (herald-guard's handler),
-- after hr_park_lib.lua.
--
-- KEYS[1..4]  due, wait, waitev, qof (hr_park_lib.lua); KEYS[5] items (hash:
--             item id -> encoded record)
-- ARGV[1]     the bound of the schedule (items); ARGV[2] now (ms);
--             ARGV[3] r, the number of events dead-lettered on arrival,
--             which leave their park queues: event id, nq, nq park queues;
--             then, to the end, the items:
--             id, due ms, encoded record, event id, nq, nq park queues
--
-- An item whose event is in a park queue but not at its head waits in the
-- wait set; the others go to the due set. An id already scheduled keeps
-- its first due time. A batch goes in whole or not at all: when the
-- schedule already holds the bound, the script changes nothing and says
-- so (the caller pauses, drains and redoes the batch); otherwise every
-- item goes in, so the bound may be passed by one batch. (Admitting part
-- of a batch made the redo schedule its first items again once they had
-- been redelivered and removed: the same items over and over.)
-- Returns {added, scheduled (due + waiting), full (0|1)}.
local K_ITEMS = KEYS[5]
local max = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local a = 4
local call = redis.call
local waiting = call('ZCARD', P_WAIT)
local count = call('ZCARD', P_DUE) + waiting
if count >= max then
    return {0, count, 1}
end
for _ = 1, tonumber(ARGV[3]) do
    local eid, nq = ARGV[a], tonumber(ARGV[a + 1])
    for j = a + 2, a + 1 + nq do
        p_release(ARGV[j], eid, now)
    end
    a = a + 2 + nq
end

local added = 0
local zargs, hargs, pending = {}, {}, 0

local function flush()
    if pending == 0 then
        return
    end
    local new = call('ZADD', P_DUE, 'NX', unpack(zargs, 1, 2 * pending))
    call('HSET', K_ITEMS, unpack(hargs, 1, 2 * pending))
    -- ids already due were counted as new
    count = count - (pending - new)
    added = added + new
    pending = 0
end

local nargs = #ARGV
while a <= nargs do
    local id, due, blob, eid = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
    local nq = tonumber(ARGV[a + 4])
    local held = false
    for j = a + 5, a + 4 + nq do
        if not p_is_head(ARGV[j], eid) then
            held = true
            break
        end
    end
    local known = waiting > 0 and call('ZSCORE', P_WAIT, id)
    if held then
        if not known and not call('ZSCORE', P_DUE, id) then
            local qs = {}
            for j = a + 5, a + 4 + nq do
                qs[#qs + 1] = ARGV[j]
            end
            p_hold(id, due, eid, qs)
            call('HSET', K_ITEMS, id, blob)
            waiting = waiting + 1
            count = count + 1
            added = added + 1
        end
    elseif not known then
        local z = 2 * pending
        zargs[z + 1] = due
        zargs[z + 2] = id
        hargs[z + 1] = id
        hargs[z + 2] = blob
        pending = pending + 1
        count = count + 1
        if pending >= 1000 then
            flush()
        end
    end
    a = a + 5 + nq
end
flush()
return {added, count, 0}
