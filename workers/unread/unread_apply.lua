-- Apply one batch of message and read events to the unread state.
--
-- The count of (user, conversation) is the number of distinct messages to
-- that user sent after the user's latest read_at for it, so the state is
-- a set and a maximum, and the order of events does not matter:
--   count        KEYS[3u - 2]  hash conversation -> zcard of the zset
--   total        KEYS[3u - 1]  string, sum of the count hash
--   read marker  KEYS[3u]      hash conversation -> latest read_at (ms)
--   messages     KEYS[3U + p]  zset message_id -> sent_at (ms), only unread
-- Invariant: HGET count == ZCARD messages <= max, for every pair.
--
-- ARGV: max, ttl, U, P, then per user u (pairs grouped by user, in KEYS
-- order): k, then the k conversation ids, then per pair:
--   latest read_at in the batch ('-1': none), number of messages m, then
--   m times: sent_at, message_id
-- Returns an array of integers: per pair count, added, read_at (-1: none),
-- then per user the total. (Integers, not one string: Lua formats numbers
-- into strings with sprintf("%.14g"), a measurable share of the script.)
--
-- Redis does not roll a script back when a command fails midway (a key of
-- the wrong type, say), so the writes are ordered to make a redo repair
-- whatever a failed run left:
--   1. per user, everything that can fail on a key's type is read first
--      (HMGET of the read and count hashes);
--   2. zset writes, which are idempotent;
--   3. INCRBY of the total, the one remaining command that can fail;
--   4. HSET/HDEL of the count fields, which can no longer fail.
-- A failure in 2 or 3 leaves zsets ahead of their count fields and the
-- total consistent with the fields. The redo's ZADD then adds fewer than
-- offered (or the batch carries a read), and such a pair takes its count
-- from ZCARD, adjusting the total by the difference from the stored field.
local call = redis.call
local max = tonumber(ARGV[1])
local ttl = ARGV[2]
local nusers = tonumber(ARGV[3])
local SLICE = 4000 -- unpack() is bounded by Lua's C stack
local out = {}
local totals = {}
local a = 5
local p = 0

-- cmd key ARGV[first..last]..., in slices; returns the concatenated
-- replies (tables) or the sum of integer replies.
local function sliced(cmd, key, first, last, step)
    local res, sum = nil, 0
    for s = first, last, step do
        local e = math.min(s + step - 1, last)
        local r = call(cmd, key, unpack(ARGV, s, e))
        if type(r) == 'table' then
            if not res then
                res = r
            else
                for i = 1, #r do
                    res[#res + 1] = r[i]
                end
            end
        else
            sum = sum + r
        end
    end
    return res or sum
end

local function sliced_table(cmd, key, t)
    local sum = 0
    for s = 1, #t, SLICE do
        sum = sum + call(cmd, key, unpack(t, s, math.min(s + SLICE - 1, #t)))
    end
    return sum
end

for u = 1, nusers do
    local count_key, total_key, read_key =
        KEYS[3 * u - 2], KEYS[3 * u - 1], KEYS[3 * u]
    local k = tonumber(ARGV[a])
    local c0 = a + 1
    a = c0 + k
    local reads = sliced('HMGET', read_key, c0, c0 + k - 1, SLICE)
    local olds = sliced('HMGET', count_key, c0, c0 + k - 1, SLICE)
    local delta = 0
    local any_read = false
    local set, del = {}, {}

    for i = 1, k do
        p = p + 1
        local conv = ARGV[c0 + i - 1]
        local zkey = KEYS[3 * nusers + p]
        local batch_read = ARGV[a]
        local nmsg = tonumber(ARGV[a + 1])
        local m0 = a + 2
        a = m0 + 2 * nmsg
        local read = reads[i] or '-1'
        local readn = reads[i] and tonumber(read) or -1
        local old = olds[i] and tonumber(olds[i]) or 0
        local has_read = batch_read ~= '-1'

        if has_read then
            any_read = true
            local br = tonumber(batch_read)
            if br > readn then
                readn, read = br, batch_read
                call('HSET', read_key, conv, read)
            end
        end

        local added, offered = 0, nmsg
        if nmsg > 0 then
            if readn < 0 then
                added = sliced('ZADD', zkey, m0, a - 1, SLICE)
            else
                local args = {}
                for j = m0, a - 1, 2 do
                    if tonumber(ARGV[j]) > readn then
                        args[#args + 1] = ARGV[j]
                        args[#args + 1] = ARGV[j + 1]
                    end
                end
                offered = #args / 2
                added = sliced_table('ZADD', zkey, args)
            end
        end

        local count
        if has_read or added < offered then
            -- possibly a redo: the zset is the truth
            if has_read then
                call('ZREMRANGEBYSCORE', zkey, '-inf', read)
            end
            count = call('ZCARD', zkey)
        else
            count = old + added
        end
        if count > max then
            call('ZREMRANGEBYRANK', zkey, 0, count - max - 1)
            count = max
        end
        if count ~= old then
            delta = delta + count - old
            if count > 0 then
                set[#set + 1] = conv
                set[#set + 1] = count
            else
                del[#del + 1] = conv
            end
        end
        local o = #out
        out[o + 1] = count
        out[o + 2] = added
        out[o + 3] = readn
    end

    local total
    if delta ~= 0 then
        total = call('INCRBY', total_key, delta)
        if total <= 0 then
            call('DEL', total_key)
            total = 0
        end
    else
        total = tonumber(call('GET', total_key) or 0)
    end
    if #set > 0 then
        sliced_table('HSET', count_key, set)
    end
    if #del > 0 then
        sliced_table('HDEL', count_key, del)
    end
    if any_read then
        call('EXPIRE', read_key, ttl)
    end
    totals[u] = total
end

local o = #out
for u = 1, nusers do
    out[o + u] = totals[u]
end
return out
