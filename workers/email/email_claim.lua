-- herald-email: claim windows to send (workers/email/README.md). Every
-- replica calls it on its timer; each window is claimed by one of them.
--
-- A due digest window (or a leading window's first event) is moved out of
-- the way of new events: its hash and items are renamed to the window's
-- out-keys (<prefix>email:out:{<user>}:<category>, ...:outitems:...), so
-- that events arriving from now on open the next window. A leading window
-- is replaced by a quiet one that lives until the window's end and counts
-- what it suppresses. Each claim takes a new fencing token from
-- <prefix>email:fence and a lease in <prefix>email:leases; a claim whose
-- lease ran out (its owner died or stalled) is claimed again, with its
-- attempt count raised, and only the newest token can complete it
-- (email_done.lua).
--
-- KEYS[1]: the due index, KEYS[2]: the leases, KEYS[3]: the fence counter.
-- ARGV: now (ms), lease (ms), most windows to claim, key prefix.
-- Returns a flat array, 17 values per claimed window and then its items:
--   category, user, fence, attempts, mode, opened, due, n, n again, first,
--   to,
--   locale, profile email, profile name, profile locale, profile
--   email_opt_out, item count; then that many item JSON strings.
local due, leases, fence = KEYS[1], KEYS[2], KEYS[3]
local now, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local limit, prefix = tonumber(ARGV[3]), ARGV[4]
local out = {}
local claimed = 0

local function split(member)
  local c = string.find(member, ':', 1, true)
  return string.sub(member, 1, c - 1), string.sub(member, c + 1)
end

local function emit(member, cat, user, x, xi)
  local f = redis.call('INCR', fence)
  local attempts = redis.call('HINCRBY', x, 'attempts', 1)
  redis.call('HSET', x, 'fence', f)
  redis.call('ZADD', leases, now + lease, member)
  local h = redis.call('HMGET', x, 'mode', 'opened', 'due', 'n', 'n',
                      'first', 'to', 'locale')
  local p = redis.call('HMGET', prefix .. 'profiles:{' .. user .. '}',
                      'email', 'name', 'locale', 'email_opt_out')
  local items = redis.call('LRANGE', xi, 0, -1)
  local row = {cat, user, f, attempts}
  for _, v in ipairs(h) do row[#row + 1] = v or '' end
  for _, v in ipairs(p) do row[#row + 1] = v or '' end
  row[#row + 1] = #items
  for _, v in ipairs(row) do out[#out + 1] = v end
  for _, v in ipairs(items) do out[#out + 1] = v end
  claimed = claimed + 1
end

-- Claims whose owner is gone: again, with a new token.
for _, member in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now,
                                   'LIMIT', 0, limit)) do
  local cat, user = split(member)
  local x = prefix .. 'email:out:{' .. user .. '}:' .. cat
  if redis.call('EXISTS', x) == 0 then
    redis.call('ZREM', leases, member)
  else
    emit(member, cat, user, x, prefix .. 'email:outitems:{' .. user .. '}:' .. cat)
  end
end

if claimed < limit then
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', now,
                                     'LIMIT', 0, limit - claimed)) do
    local cat, user = split(member)
    local tag = '{' .. user .. '}:' .. cat
    local win, items = prefix .. 'email:win:' .. tag, prefix .. 'email:items:' .. tag
    local x, xi = prefix .. 'email:out:' .. tag, prefix .. 'email:outitems:' .. tag
    local h = redis.call('HMGET', win, 'state', 'mode', 'opened', 'len')
    if not h[1] then
      redis.call('ZREM', due, member)
    elseif h[1] == 'quiet' and redis.call('EXISTS', items) == 0 then
      -- a leading window's end: nothing to send (a quiet window with items
      -- collected them as a digest after its category changed mode: it is
      -- sent as one, below)
      redis.call('DEL', win, items)
      redis.call('ZREM', due, member)
    elseif redis.call('ZSCORE', leases, member) then
      -- the previous window of this user and category is still out:
      -- this one waits for it, and is looked at again when its lease ends
      redis.call('ZADD', due, now + lease, member)
    else
      redis.call('RENAME', win, x)
      if redis.call('EXISTS', items) == 1 then
        redis.call('RENAME', items, xi)
      end
      if h[1] == 'quiet' then
        redis.call('HSET', x, 'mode', 'd', 'n', redis.call('HGET', x, 'n') - 1)
        redis.call('ZREM', due, member)
      elseif h[2] == 'l' then
        local ends = tonumber(h[3]) + tonumber(h[4])
        redis.call('HSET', win, 'state', 'quiet', 'user', user, 'cat', cat,
                   'mode', 'l', 'opened', h[3], 'due', ends, 'len', h[4],
                   'n', 1)
        redis.call('ZADD', due, ends, member)
      else
        redis.call('ZREM', due, member)
      end
      emit(member, cat, user, x, xi)
    end
  end
end
return out
