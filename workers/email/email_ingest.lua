-- herald-email: add a batch's notification.email events to their windows
-- (workers/email/README.md, "Windows in Redis"), one call per batch.
--
-- KEYS[1]: the due index (<prefix>email:due, zset "<category>:<user>" ->
--   due time, ms); KEYS[2]: the ingest marks (<prefix>email:offsets, hash
--   "<topic>:<partition>" -> the last offset ingested); then per event
--   three keys: its window hash (<prefix>email:win:{<user>}:<category>),
--   the window's items list (<prefix>email:items:{<user>}:<category>) and
--   the user's seen set (<prefix>email:seen:{<user>}, zset event id ->
--   time first seen; for sources without offsets).
-- ARGV[1]: now (ms); ARGV[2]: how long an event id is remembered (ms);
--   then per event ten values: event id, user, category, mode ("d"
--   digest, "l" leading), window length (ms), item cap, "to" ("" when
--   none), locale ("" when none), item JSON, and its position
--   "<topic>:<partition>:<offset>" ("" when the source has no offsets).
--
-- Exactly once: an event at or below its partition's mark was ingested
-- before (a redelivery after a crash, or a batch redone), and the marks
-- move in this same call as the windows; an event id the window already
-- holds (the same event produced twice upstream, at two offsets) is a
-- duplicate too: the ids of a window's first <item cap> events are fields
-- "e:<id>" of its hash, which go with the window (past the cap a copy
-- could only move the "and N more" count). Events without a position are
-- remembered by id in their user's seen set instead.
-- A window's recipient and locale are its first event's "to" and
-- "locale" (when given). A window counts its events in "n": 1 means this
-- event opened it. A leading window holds its first event only; a quiet
-- one (email_claim.lua) starts at 1, so that all it receives is
-- suppressed.
-- Returns one integer per event: 0 already ingested, 1 opened a window, 2
-- added to an open digest window, 3 suppressed (leading), 4 counted past
-- the item cap.
local now = tonumber(ARGV[1])
local keep = tonumber(ARGV[2])
local due, offsets = KEYS[1], KEYS[2]
local out = {}
local marks, moved = {}, {}

local function seen_before(pos, seen, id)
  if pos == '' then
    return redis.call('ZADD', seen, 'NX', now, id) == 0
  end
  local tp, off = string.match(pos, '^(.*):(%d+)$')
  off = tonumber(off)
  local mark = marks[tp]
  if mark == nil then
    mark = tonumber(redis.call('HGET', offsets, tp) or '-1')
    marks[tp] = mark
  end
  if off <= mark then
    return true
  end
  marks[tp] = off
  moved[tp] = true
  return false
end

for i = 1, (#KEYS - 2) / 3 do
  local win, items, seen = KEYS[3 * i], KEYS[3 * i + 1], KEYS[3 * i + 2]
  local a = 3 + (i - 1) * 10
  local id, user, cat, mode = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local len, cap = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  local to, locale, item, pos = ARGV[a + 6], ARGV[a + 7], ARGV[a + 8], ARGV[a + 9]

  local n = 0
  if not seen_before(pos, seen, id) then
    n = redis.call('HINCRBY', win, 'n', 1)
    if pos ~= '' and n <= cap and
       redis.call('HSETNX', win, 'e:' .. id, 1) == 0 then
      redis.call('HINCRBY', win, 'n', -1)
      n = 0
    end
  end
  if n == 0 then
    out[i] = 0
  else
    if n == 1 then
      local at = now + len
      if mode == 'l' then at = now end
      redis.call('HSET', win, 'state', 'open', 'user', user, 'cat', cat,
                 'mode', mode, 'opened', now, 'due', at, 'len', len,
                 'first', id, 'to', to, 'locale', locale)
      redis.call('RPUSH', items, item)
      redis.call('ZADD', due, at, cat .. ':' .. user)
      if pos == '' then
        -- kept alive and trimmed whenever one of its windows opens
        redis.call('ZREMRANGEBYSCORE', seen, '-inf', now - keep)
        redis.call('PEXPIRE', seen, math.max(keep, 2 * len))
      end
      out[i] = 1
    elseif mode == 'l' then
      out[i] = 3
    elseif n <= cap then
      redis.call('RPUSH', items, item)
      out[i] = 2
    else
      out[i] = 4
    end
  end
end
for tp in pairs(moved) do
  redis.call('HSET', offsets, tp, marks[tp])
end
return out
