-- Per-key ordering under retry: the functions shared by hr_park.lua (the
-- workers' park checks) and herald-guard's schedule scripts. hr_park.c and
-- the guard prepend this file to those scripts, so every script that uses
-- it takes the same first four keys (all with the hash tag {sched}):
--
-- KEYS[1]  the due set (zset: item id -> due ms)
-- KEYS[2]  the wait set (zset: item id -> when to look at it again)
-- KEYS[3]  waitev (hash: event id -> id of its item in the wait set)
-- KEYS[4]  qof (hash: item id of a waiting item -> its park record, see
--          p_encode)
--
-- A park queue (zset, one per destination and key: event id -> sequence)
-- holds the events of that key handed to the guard for that destination,
-- in the order they were handed over. Only its head may be delivered; an
-- item whose event is in a queue but not at its head waits in the wait set
-- until every queue it is in has it at the head.
local P_DUE, P_WAIT, P_WAITEV, P_QOF = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

-- "<due ms>\n" then the event id and each queue key as "<len>:<bytes>".
local function p_encode(due, eid, qs)
    local parts = {tostring(due), '\n', #eid, ':', eid}
    for _, q in ipairs(qs) do
        parts[#parts + 1] = #q
        parts[#parts + 1] = ':'
        parts[#parts + 1] = q
    end
    return table.concat(parts)
end

-- The due time, event id and queue keys of a park record.
local function p_parse(v)
    local nl = string.find(v, '\n', 1, true)
    local due = tonumber(string.sub(v, 1, nl - 1))
    local pos, eid = nl + 1, nil
    local qs = {}
    while pos <= #v do
        local colon = string.find(v, ':', pos, true)
        local len = tonumber(string.sub(v, pos, colon - 1))
        local s = string.sub(v, colon + 1, colon + len)
        if eid then
            qs[#qs + 1] = s
        else
            eid = s
        end
        pos = colon + len + 1
    end
    return due, eid, qs
end

-- Whether @eid may go as far as queue @q is concerned: at its head, or not
-- in it at all.
local function p_is_head(q, eid)
    local r = redis.call('ZRANK', q, eid)
    return not r or r == 0
end

local function p_ready(qs, eid)
    for _, q in ipairs(qs) do
        if not p_is_head(q, eid) then
            return false
        end
    end
    return true
end

-- Move waiting item @id (park record @v) to the due set.
local function p_wake(id, v, now)
    local due, eid = p_parse(v)
    redis.call('ZREM', P_WAIT, id)
    redis.call('ZADD', P_DUE, math.max(now, due), id)
    if redis.call('HGET', P_WAITEV, eid) == id then
        redis.call('HDEL', P_WAITEV, eid)
    end
    redis.call('HDEL', P_QOF, id)
end

-- The head of @q changed: wake its item if it waits and may go now.
local function p_promote(q, now)
    local h = redis.call('ZRANGE', q, 0, 0)[1]
    if not h then
        return
    end
    local id = redis.call('HGET', P_WAITEV, h)
    if not id then
        return
    end
    local v = redis.call('HGET', P_QOF, id)
    if not v then
        redis.call('HDEL', P_WAITEV, h)
        return
    end
    local _, eid, qs = p_parse(v)
    if p_ready(qs, eid) then
        p_wake(id, v, now)
    end
end

-- Event @eid is finished for queue @q (delivered or dead-lettered).
local function p_release(q, eid, now)
    local h = redis.call('ZRANGE', q, 0, 0)[1]
    if redis.call('ZREM', q, eid) == 1 and h == eid then
        p_promote(q, now)
    end
end

-- Put item @id (due at @due) in the wait set behind the heads of @qs.
local function p_hold(id, due, eid, qs)
    redis.call('ZADD', P_WAIT, due, id)
    redis.call('HSET', P_WAITEV, eid, id)
    redis.call('HSET', P_QOF, id, p_encode(due, eid, qs))
end
