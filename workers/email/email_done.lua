-- herald-email: complete claimed windows (email_claim.lua) once their
-- email.send records are durable: only the holder of the newest fencing
-- token can, so an owner whose lease ran out cannot complete a window
-- another replica claimed since.
--
-- KEYS[1]: the leases; then per window its out-hash and out-items keys.
-- ARGV: per window its lease member ("<category>:<user>") and token.
-- Returns one integer per window: 1 completed, 0 lost (claimed again).
local leases = KEYS[1]
local out = {}
for i = 1, #ARGV / 2 do
  local x, xi = KEYS[2 * i], KEYS[2 * i + 1]
  local member, token = ARGV[2 * i - 1], ARGV[2 * i]
  if redis.call('HGET', x, 'fence') == token then
    redis.call('DEL', x, xi)
    redis.call('ZREM', leases, member)
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
