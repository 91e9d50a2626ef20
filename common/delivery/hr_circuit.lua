-- Circuit breaker and retry budget for a batch of destinations
-- (hr_circuit.c, which documents the states).
--
-- KEYS[k]: hash of destination k, fields
--   st       0 closed, 2 open, 3 auth-broken (half-open is derived:
--            st ~= 0 and now >= oat + open_ms)
--   oat      when it opened (ms)
--   ar       auth failures in a row; ac auth failures in all (a counter
--            for herald_guard_auth_failures_total)
--   ra       until when the destination asked us to wait (Retry-After)
--   pw, pn   half-open: start of the probe period (ms), probes admitted
--   t<i>     ring of W per-second buckets, i = second % W: the second,
--   s<i>     successes, f<i> destination failures, r<i> retries admitted
-- ARGV: op ('report' | 'check' | 'budget' | 'peek'), now_ms, W (window,
--   seconds), open_ms, ttl_ms, min_calls, failure_ratio, auth_threshold,
--   half_open_probes, budget_ratio, budget_floor_per_s, index (a zset of
--   the destination keys reported, by last report), then per key:
--   report: "<wait until ms>:<outcome codes in order>" (S success, T
--           transient or throttled, A auth, P permanent; 0: no wait);
--   check: calls wanted; budget: retries wanted.
-- Returns three integers per key: report: state, 0, 0; check: state,
-- calls allowed, ms to wait (state 4: throttled); budget: retries granted,
-- the per-second limit, 0.
-- peek (no KEYS; ARGV[13] how long a destination stays listed, ms):
-- {key, state, auth failures, ...} for every destination of the index.
-- States returned: 0 closed, 1 half-open, 2 open, 3 auth-broken,
-- 4 throttled.
local call = redis.call
local op = ARGV[1]
local now = tonumber(ARGV[2])
local W = tonumber(ARGV[3])
local open_ms = tonumber(ARGV[4])
local ttl = ARGV[5]
local min_calls = tonumber(ARGV[6])
local failure_ratio = tonumber(ARGV[7])
local auth_threshold = tonumber(ARGV[8])
local probes = tonumber(ARGV[9])
local budget_ratio = tonumber(ARGV[10])
local budget_floor = tonumber(ARGV[11])
local index = ARGV[12]
local FIRST = 12
local cur = math.floor(now / 1000)
local slot = cur % W
local out = {}

local function load(key)
    local raw = call('HGETALL', key)
    local h = {}
    for i = 1, #raw, 2 do
        h[raw[i]] = tonumber(raw[i + 1])
    end
    return h
end

-- Sum of bucket field p over the seconds (cur - W, cur].
local function window_sum(h, p)
    local sum = 0
    for i = 0, W - 1 do
        local t = h['t' .. i]
        if t and t > cur - W and t <= cur then
            sum = sum + (h[p .. i] or 0)
        end
    end
    return sum
end

-- Make the current slot hold the current second.
local function touch_slot(key, h)
    if h['t' .. slot] ~= cur then
        call('HSET', key, 't' .. slot, cur, 's' .. slot, 0, 'f' .. slot, 0,
             'r' .. slot, 0)
        h['t' .. slot] = cur
        h['s' .. slot] = 0
        h['f' .. slot] = 0
        h['r' .. slot] = 0
    end
end

local function effective(st, oat)
    if st == 0 then
        return 0
    end
    if now < oat + open_ms then
        return st
    end
    return 1
end

local function report(key, arg)
    local colon = string.find(arg, ':', 1, true)
    local wait_until = tonumber(string.sub(arg, 1, colon - 1))
    local codes = string.sub(arg, colon + 1)
    local h = load(key)
    local st, oat, ar = h.st or 0, h.oat or 0, h.ar or 0
    local ds, df, da = 0, 0, 0
    local closed, opened = false, false

    for i = 1, #codes do
        local c = string.byte(codes, i)
        local probing = st ~= 0 and now >= oat + open_ms
        if c == 83 or c == 80 then -- 'S', 'P': the destination answered
            if c == 83 then
                ds = ds + 1
            end
            ar = 0
            if probing then
                st = 0
                closed = true
                df = 0
            end
        elseif c == 84 or c == 65 then -- 'T', 'A'
            if c == 65 then
                ar = ar + 1
                da = da + 1
            else
                df = df + 1
            end
            if probing then
                if c == 65 and ar >= auth_threshold then
                    st = 3
                end
                oat = now
                opened = true
            elseif c == 65 and ar >= auth_threshold and st ~= 3 then
                st = 3
                oat = now
                opened = true
            end
        end
    end

    if closed then
        -- Failures from before the outage must not reopen it at once.
        local del = {}
        for i = 0, W - 1 do
            del[#del + 1] = 'f' .. i
            h['f' .. i] = nil
        end
        call('HDEL', key, 'oat', 'pw', 'pn', unpack(del))
    end
    touch_slot(key, h)
    if ds > 0 then
        h['s' .. slot] = call('HINCRBY', key, 's' .. slot, ds)
    end
    if df > 0 then
        h['f' .. slot] = call('HINCRBY', key, 'f' .. slot, df)
    end
    if st == 0 then
        local fails = window_sum(h, 'f')
        local calls = window_sum(h, 's') + fails
        if calls >= min_calls and calls > 0 and
            fails >= failure_ratio * calls then
            st = 2
            oat = now
            opened = true
        end
    end
    if opened then
        call('HDEL', key, 'pw', 'pn')
    end
    if da > 0 then
        call('HINCRBY', key, 'ac', da)
    end
    if wait_until > now and wait_until > (h.ra or 0) then
        call('HSET', key, 'ra', wait_until)
    end
    call('ZADD', index, now, key)
    call('PEXPIRE', index, 86400000) -- HR_CIRCUIT_PEEK_KEEP_MS
    if st == 0 then
        call('HSET', key, 'st', 0, 'ar', ar)
    else
        call('HSET', key, 'st', st, 'oat', oat, 'ar', ar)
    end
    call('PEXPIRE', key, ttl)
    return effective(st, oat), 0, 0
end

local function check(key, want)
    local v = call('HMGET', key, 'st', 'oat', 'pw', 'pn', 'ra')
    local eff = effective(tonumber(v[1]) or 0, tonumber(v[2]) or 0)
    local ra = tonumber(v[5]) or 0
    if eff == 0 or eff == 1 then
        if ra > now then
            return 4, 0, ra - now
        end
    end
    if eff == 0 then
        return 0, want, 0
    end
    if eff ~= 1 then
        return eff, 0, 0
    end
    local pw, pn = tonumber(v[3]), tonumber(v[4]) or 0
    if not pw or now >= pw + open_ms or now < pw then
        pw = now
        pn = 0
    end
    local n = math.max(0, math.min(want, probes - pn))
    if n > 0 then
        call('HSET', key, 'pw', pw, 'pn', pn + n)
        call('PEXPIRE', key, ttl)
    end
    return 1, n, 0
end

local function budget(key, want)
    local h = load(key)
    local limit = math.floor(budget_floor +
                             budget_ratio * window_sum(h, 's') / W)
    local used = 0
    if h['t' .. slot] == cur then
        used = h['r' .. slot] or 0
    end
    local n = math.max(0, math.min(want, limit - used))
    if n > 0 then
        touch_slot(key, h)
        call('HINCRBY', key, 'r' .. slot, n)
        call('PEXPIRE', key, ttl)
    end
    return n, limit, 0
end

if op == 'peek' then
    local keep = tonumber(ARGV[13])
    call('ZREMRANGEBYSCORE', index, '-inf', now - keep)
    for _, key in ipairs(call('ZRANGE', index, 0, -1)) do
        local v = call('HMGET', key, 'st', 'oat', 'ac', 'ra')
        local eff = effective(tonumber(v[1]) or 0, tonumber(v[2]) or 0)
        if eff <= 1 and (tonumber(v[4]) or 0) > now then
            eff = 4
        end
        out[#out + 1] = key
        out[#out + 1] = eff
        out[#out + 1] = tonumber(v[3]) or 0
    end
    return out
end

for k = 1, #KEYS do
    local arg = ARGV[FIRST + k]
    local x, y, z
    if op == 'report' then
        x, y, z = report(KEYS[k], arg)
    elseif op == 'check' then
        x, y, z = check(KEYS[k], tonumber(arg))
    elseif op == 'budget' then
        x, y, z = budget(KEYS[k], tonumber(arg))
    else
        return redis.error_reply('unknown circuit op ' .. tostring(op))
    end
    out[#out + 1] = x
    out[#out + 1] = y
    out[#out + 1] = z
end
return out
