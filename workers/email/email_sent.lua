-- herald-email: each email.send's record of sending (<prefix>email:sent:
-- {<user>}:<window id>, a string "<state> <attempt> <lease end ms>",
-- expiring after the idempotency TTL), so that a window is sent once
-- across redeliveries, and a re-send after a crash is known and counted.
--
-- KEYS: one per email.send. ARGV[1]: "claim" or "settle"; ARGV[2]: now
-- (ms); ARGV[3]: lease (ms); ARGV[4]: TTL (ms); then per key:
--   claim: nothing. Returns per key: 0 already sent; a negative number:
--     another attempt is in flight for that many more ms; else
--     attempt * 2 + 1 when the previous attempt ended without an answer
--     (it may have sent: a possible duplicate), attempt * 2 otherwise.
--   settle: the attempt and its result ("sent" or "failed"). Returns per
--     key 1, or 0 when a newer attempt took the send over.
local op, now = ARGV[1], tonumber(ARGV[2])
local lease, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}

local function read(k)
  local v = redis.call('GET', k)
  if not v then return nil end
  local s, a, u = string.match(v, '^(%a+) (%d+) (%d+)$')
  return s, tonumber(a), tonumber(u)
end

for i, k in ipairs(KEYS) do
  local state, attempt, untl = read(k)
  if op == 'claim' then
    if state == 'sent' then
      out[i] = 0
    elseif state == 'sending' and untl > now then
      out[i] = now - untl
    else
      local next = (attempt or 0) + 1
      redis.call('SET', k, 'sending ' .. next .. ' ' .. (now + lease), 'PX', ttl)
      out[i] = next * 2 + ((state == 'sending') and 1 or 0)
    end
  else
    local a, result = tonumber(ARGV[4 + 2 * i - 1]), ARGV[4 + 2 * i]
    if state == 'sending' and attempt == a then
      redis.call('SET', k, result .. ' ' .. a .. ' 0', 'PX', ttl)
      out[i] = 1
    else
      out[i] = 0
    end
  end
end
return out
