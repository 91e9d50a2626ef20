-- herald-push: plan a batch's pushes in one round trip. For each
-- push.requested: the devices of its user (herald:devices:{u}) or the
-- tokens it names, the user's unread total when its badge asks for it
-- (herald:unread_total:{u}), and a claim per (event, device) so that no
-- device gets one event twice, across redeliveries and crashes. A claim is
-- "p" (planned) when taken here, "s" once its call is about to go out
-- (push_settle.lua, per group of calls in flight), and deleted when the
-- delivery will be retried. A planned claim left by a crash is taken
-- again (that call never started); a device whose claim says "s" is
-- skipped (it was sent, or was in flight when the worker died: at most
-- once).
--
-- KEYS: per push three keys in its user's slot (or its event's, for named
--   tokens): the devices hash, the total, the claim prefix (a key name
--   the claims extend with the token's SHA-1).
-- ARGV[1]: claim TTL (seconds); ARGV[2]: JSON array, per push
--   {"u": 1 when the devices come from the user, "b": 1 when the badge is
--    the total, "t": [[token, platform], ...] named tokens}.
-- Returns a JSON array, per push {"b": total or -1,
--   "d": [[token, device JSON or platform name, claimed 1/0], ...]}.
local ttl = tonumber(ARGV[1])
local pushes = cjson.decode(ARGV[2])
local out = {}

local taken = {} -- claims taken by this call: an event twice in one batch

local function claim(prefix, token)
  local key = prefix .. redis.sha1hex(token)
  if taken[key] then return 0 end
  if redis.call('SET', key, 'p', 'NX', 'EX', ttl) or
     redis.call('GET', key) == 'p' then
    taken[key] = true
    return 1
  end
  return 0
end

for i, p in ipairs(pushes) do
  local devices, total, prefix = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local res = {b = -1, d = {}}
  if p.b == 1 then
    res.b = tonumber(redis.call('GET', total) or '0') or 0
  end
  if p.u == 1 then
    local all = redis.call('HGETALL', devices)
    for k = 1, #all, 2 do
      res.d[#res.d + 1] = {all[k], all[k + 1], claim(prefix, all[k])}
    end
  end
  if type(p.t) == 'table' then
    for _, t in ipairs(p.t) do
      res.d[#res.d + 1] = {t[1], t[2], claim(prefix, t[1])}
    end
  end
  out[i] = res
end
return cjson.encode(out)
