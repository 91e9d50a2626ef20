-- herald-push: after a batch's calls, in one round trip: release the
-- claims of deliveries that will be retried (the guard redelivers their
-- event and only they are sent again), and remove dead tokens from
-- herald:devices:{u} — unless the device registered again after the
-- provider's "unregistered since" time (APNs 410), so a token that came
-- back is kept — leaving a tombstone like device.unregistered does.
--
-- KEYS: per operation: release: the claim key; remove: the devices hash
--   and the tombstone hash.
-- ARGV[1]: tombstone TTL; ARGV[2]: now (RFC 3339 ms); then per operation:
--   "c" (release: one key), "s" (the call is going out: its claim, one
--   key, becomes "s"), or "i", token, since (RFC 3339 ms, "" when unknown)
--   (remove: two keys).
-- Returns one integer per operation: 1 done (claim released, token
-- removed), 0 not (the token had re-registered, or was gone already).
local ttl, now = tonumber(ARGV[1]), ARGV[2]
local out, k, a = {}, 1, 3

local function registered_at(json)
  local ok, dev = pcall(cjson.decode, json)
  if ok and type(dev) == 'table' and type(dev.registered_at) == 'string' then
    return dev.registered_at
  end
  return ''
end

while a <= #ARGV do
  if ARGV[a] == 'c' then
    out[#out + 1] = redis.call('DEL', KEYS[k])
    k, a = k + 1, a + 1
  elseif ARGV[a] == 's' then
    out[#out + 1] = redis.call('SET', KEYS[k], 's', 'XX', 'KEEPTTL') and 1 or 0
    k, a = k + 1, a + 1
  else
    local devices, gone = KEYS[k], KEYS[k + 1]
    local token, since = ARGV[a + 1], ARGV[a + 2]
    local cur = redis.call('HGET', devices, token)
    if cur and (since == '' or registered_at(cur) <= since) then
      redis.call('HDEL', devices, token)
      redis.call('HSET', gone, token, since ~= '' and since or now)
      redis.call('EXPIRE', gone, ttl)
      out[#out + 1] = 1
    else
      out[#out + 1] = 0
    end
    k, a = k + 2, a + 3
  end
end
return out
