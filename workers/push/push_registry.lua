-- herald-push: apply a batch's device.registered / device.unregistered
-- events to herald:devices:{u} (SPEC section 5), in order, whatever order
-- they arrive in across batches: each carries its time, a device keeps
-- the newest registration, and an unregistration leaves a tombstone
-- (<prefix>push:gone:{u}, token -> time, expiring) so that an older
-- registration delivered late does not bring a removed device back.
--
-- KEYS: per event, its user's devices hash and tombstone hash.
-- ARGV[1]: tombstone TTL (seconds); then per event four values:
--   op ("r" register, "u" unregister), token, time (RFC 3339 with
--   milliseconds, fixed width: strings compare as times), device JSON
--   (register; "" otherwise).
-- Returns one integer per event: 1 applied, 0 ignored (older than what is
-- known).
local ttl = tonumber(ARGV[1])
local out = {}

local function registered_at(json)
  local ok, dev = pcall(cjson.decode, json)
  if ok and type(dev) == 'table' and type(dev.registered_at) == 'string' then
    return dev.registered_at
  end
  return ''
end

for i = 1, #KEYS / 2 do
  local devices, gone = KEYS[2 * i - 1], KEYS[2 * i]
  local a = 2 + (i - 1) * 4
  local op, token, at, json = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local cur = redis.call('HGET', devices, token)
  local cur_at = cur and registered_at(cur) or nil
  local dead = redis.call('HGET', gone, token)

  if op == 'r' then
    if (dead and dead >= at) or (cur_at and cur_at > at) then
      out[i] = 0
    else
      redis.call('HSET', devices, token, json)
      if dead then redis.call('HDEL', gone, token) end
      out[i] = 1
    end
  else
    if cur_at and cur_at > at then
      out[i] = 0
    else
      if cur then redis.call('HDEL', devices, token) end
      if not dead or dead < at then
        redis.call('HSET', gone, token, at)
      end
      redis.call('EXPIRE', gone, ttl)
      out[i] = 1
    end
  end
end
return out
