-- Apply one batch of message and read events to the unread state.
--
-- The count of (user, conversation) is the number of distinct messages to
-- that user sent after the user's latest read_at for it, so the state is
-- a set and a maximum, and the order of events does not matter:
--   read marker  KEYS[3u]      hash conversation -> latest read_at (ms)
--   messages     KEYS[3U + p]  zset message_id -> sent_at (ms), only unread
--   count        KEYS[3u - 2]  hash conversation -> zcard of the zset
--   total        KEYS[3u - 1]  string, sum of the count hash
-- Invariant: HGET count == ZCARD messages <= max, for every pair.
--
-- ARGV: max, ttl, U, P, then per pair p:
--   user index u, conversation id, latest read_at in the batch (-1: none),
--   number of messages m, then m times: sent_at, message_id
-- Returns per pair {count, added, read_at}, then per user {total}.
local max = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local nusers = tonumber(ARGV[3])
local npairs = tonumber(ARGV[4])
local delta = {}
local touched_read = {}
local out = {}
local a = 5

for p = 1, npairs do
    local u = tonumber(ARGV[a])
    local conv = ARGV[a + 1]
    local batch_read = tonumber(ARGV[a + 2])
    local nmsg = tonumber(ARGV[a + 3])
    a = a + 4
    local count_key, read_key = KEYS[3 * u - 2], KEYS[3 * u]
    local zkey = KEYS[3 * nusers + p]

    local read = tonumber(redis.call('HGET', read_key, conv) or -1)
    local advanced = batch_read > read
    if advanced then
        read = batch_read
        redis.call('HSET', read_key, conv, read)
        touched_read[u] = true
    end

    local args, n = {}, 0
    for i = 1, nmsg do
        local ts = tonumber(ARGV[a])
        if ts > read then
            args[n + 1] = ts
            args[n + 2] = ARGV[a + 1]
            n = n + 2
        end
        a = a + 2
    end

    local added, removed = 0, 0
    -- unpack() is bounded by Lua's C stack: add in slices
    for first = 1, n, 2000 do
        local last = math.min(first + 1999, n)
        added = added + redis.call('ZADD', zkey, unpack(args, first, last))
    end
    if advanced then
        removed = redis.call('ZREMRANGEBYSCORE', zkey, '-inf', read)
    end

    local count
    if added ~= removed then
        count = redis.call('HINCRBY', count_key, conv, added - removed)
        if count > max then
            redis.call('ZREMRANGEBYRANK', zkey, 0, count - max - 1)
            redis.call('HSET', count_key, conv, max)
            removed = removed + (count - max)
            count = max
        elseif count <= 0 then
            redis.call('HDEL', count_key, conv)
            count = 0
        end
        delta[u] = (delta[u] or 0) + added - removed
    else
        count = tonumber(redis.call('HGET', count_key, conv) or 0)
    end
    out[#out + 1] = count
    out[#out + 1] = added
    out[#out + 1] = read
end

for u = 1, nusers do
    local total_key = KEYS[3 * u - 1]
    local total
    if delta[u] and delta[u] ~= 0 then
        total = redis.call('INCRBY', total_key, delta[u])
        if total <= 0 then
            redis.call('DEL', total_key)
            total = 0
        end
    else
        total = tonumber(redis.call('GET', total_key) or 0)
    end
    if touched_read[u] then
        redis.call('EXPIRE', KEYS[3 * u], ttl)
    end
    out[#out + 1] = total
end
return out
