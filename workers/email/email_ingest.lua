-- herald-email: add a batch's notification.email events to their windows
-- (workers/email/README.md, "Windows in Redis"), one call per batch.
--
-- KEYS[1]: the due index (<prefix>email:due, zset "<category>:<user>" ->
--   due time, ms); then per event three keys: its window hash
--   (<prefix>email:win:{<user>}:<category>), the window's items list
--   (<prefix>email:items:{<user>}:<category>) and the user's seen set
--   (<prefix>email:seen:{<user>}, zset event id -> time first seen).
-- ARGV[1]: now (ms); ARGV[2]: how long an event id is remembered (ms);
--   then per event nine values: event id, user, category, mode ("d"
--   digest, "l" leading), window length (ms), item cap, "to" ("" when
--   none), locale ("" when none), item JSON.
-- Returns one integer per event: 0 already seen (a redelivery), 1 opened a
-- window, 2 added to an open digest window, 3 suppressed (a leading
-- window was already open), 4 counted past the item cap.
local now = tonumber(ARGV[1])
local keep = tonumber(ARGV[2])
local due = KEYS[1]
local out = {}
local trimmed = {}

for i = 1, (#KEYS - 1) / 3 do
  local win, items, seen = KEYS[3 * i - 1], KEYS[3 * i], KEYS[3 * i + 1]
  local a = 3 + (i - 1) * 9
  local id, user, cat, mode = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local len, cap = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  local to, locale, item = ARGV[a + 6], ARGV[a + 7], ARGV[a + 8]

  if not trimmed[seen] then
    trimmed[seen] = true
    redis.call('ZREMRANGEBYSCORE', seen, '-inf', now - keep)
    redis.call('PEXPIRE', seen, keep)
  end
  if redis.call('ZADD', seen, 'NX', now, id) == 0 then
    out[i] = 0
  else
    local h = redis.call('HMGET', win, 'state', 'mode')
    local state = h[1]
    if not state then
      local at = now + len
      if mode == 'l' then at = now end
      redis.call('HSET', win, 'state', 'open', 'user', user, 'cat', cat,
                 'mode', mode, 'opened', now, 'due', at, 'len', len,
                 'n', 1, 'sup', 0, 'first', id, 'to', to, 'locale', locale)
      redis.call('RPUSH', items, item)
      redis.call('ZADD', due, at, cat .. ':' .. user)
      out[i] = 1
    elseif h[2] == 'l' then
      redis.call('HINCRBY', win, 'sup', 1)
      out[i] = 3
    else
      local n = redis.call('HINCRBY', win, 'n', 1)
      if to ~= '' then redis.call('HSET', win, 'to', to) end
      if locale ~= '' then redis.call('HSET', win, 'locale', locale) end
      if n <= cap then
        redis.call('RPUSH', items, item)
        out[i] = 2
      else
        out[i] = 4
      end
    end
  end
end
return out
