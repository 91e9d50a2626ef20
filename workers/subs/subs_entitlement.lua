-- herald-subs: apply one verified store notification to the entitlements
-- (subs_entitlement.h has the keys and the rules). Every read comes before
-- the first write, so a failing call (a key of the wrong type) writes
-- nothing, not even the seen marker.
--
-- KEYS[1] <prefix>subs:sub:<provider>:<subscription_id>  the record
-- KEYS[2] <prefix>subs:seen:<provider>:<notification_id> the dedupe marker
-- KEYS[3] <prefix>subs_owner:<subscription_id>           the app's owner
-- ARGV: prefix, provider, subscription_id, app_user_id ("" absent),
--   product_id ("" keep), state ("" keep), expires_ms ("0" keep),
--   auto_renew ("1", "0", "-1" keep), environment ("" keep), snapshot_ms,
--   dedupe TTL (seconds), the longest owner the caller takes (bytes).
--   Integers in decimal, below 2^53.
-- Returns {result, owner, previous_state, state, changed, product}: result
-- 0 applied, 1 duplicate, 2 stale, 3 unknown (no record, no state or
-- product); changed 1 or 0; product the one applied, else the record's
-- ("" when none).
local rec_key, seen_key, owner_key = KEYS[1], KEYS[2], KEYS[3]
local prefix, provider, sub = ARGV[1], ARGV[2], ARGV[3]
local snapshot = ARGV[10]
local ttl = tonumber(ARGV[11])
local owner_max = tonumber(ARGV[12])

local rec = {}
local flat = redis.call('HGETALL', rec_key)
for i = 1, #flat, 2 do
  rec[flat[i]] = flat[i + 1]
end
local old_state = rec.state or ''
local old_owner = rec.owner or ''

-- The seen marker of an applied change keeps what it did (owner, state
-- before and after, changed), so that a redelivery after a crash that
-- lost its entitlement.changed can emit the same event again.
local seen = redis.call('GET', seen_key)
if seen then
  local o, p, s, c = string.match(seen, '^(.*)\31(.*)\31(.*)\31([01])$')
  if o then
    return {1, o, p, s, tonumber(c), rec.product_id or ''}
  end
  return {1, old_owner, old_state, old_state, 0, rec.product_id or ''}
end
if rec.snapshot_ms and tonumber(snapshot) < tonumber(rec.snapshot_ms) then
  redis.call('SET', seen_key, '1', 'EX', ttl)
  return {2, old_owner, old_state, old_state, 0, rec.product_id or ''}
end

-- The owner: the store's word, else the record's unless it is the
-- fallback, else the app's, else the fallback.
local fallback = provider .. ':' .. sub
local owner = ARGV[4]
if owner == '' then
  if old_owner ~= '' and old_owner ~= fallback then
    owner = old_owner
  else
    local app = redis.call('GET', owner_key)
    if app and app ~= '' then
      owner = app
    else
      owner = fallback
    end
  end
end
if #owner > owner_max then
  return redis.error_reply('owner of ' .. fallback .. ' is longer than ' ..
                           owner_max .. ' bytes')
end

local function keep(v, unset, stored)
  if v ~= unset then return v end
  return stored
end
local product = keep(ARGV[5], '', rec.product_id)
local state = keep(ARGV[6], '', rec.state)
local expires = keep(ARGV[7], '0', rec.expires_ms or '0')
local auto_renew = keep(ARGV[8], '-1', rec.auto_renew or '-1')
local env = keep(ARGV[9], '', rec.environment or '')

if not product or not state then
  redis.call('SET', seen_key, '1', 'EX', ttl)
  return {3, owner, old_state, old_state, 0, product or ''}
end

local changed = state ~= old_state or expires ~= (rec.expires_ms or '0') or
  auto_renew ~= (rec.auto_renew or '-1') or product ~= rec.product_id or
  owner ~= old_owner

-- ---- the JSON entry ---------------------------------------------------

local escapes = {['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b',
                 ['\f'] = '\\f', ['\n'] = '\\n', ['\r'] = '\\r',
                 ['\t'] = '\\t'}
local function jstr(s)
  local body = string.gsub(s, '[%c"\\]', function(ch)
    return escapes[ch] or string.format('\\u%04x', string.byte(ch))
  end)
  return '"' .. body .. '"'
end

local function fdiv(a, b)
  return math.floor(a / b)
end

-- ms since the epoch (0 .. year 9999) as "YYYY-MM-DDTHH:MM:SS.mmmZ", the
-- text hr_time_format_rfc3339() writes (days to civil date: H. Hinnant's
-- algorithm). Lua numbers are doubles: exact for these integers.
local function rfc3339(ms)
  local s = fdiv(ms, 1000)
  local days = fdiv(s, 86400)
  local sod = s - days * 86400
  local z = days + 719468
  local era = fdiv(z, 146097)
  local doe = z - era * 146097
  local yoe = fdiv(doe - fdiv(doe, 1460) + fdiv(doe, 36524) -
                   fdiv(doe, 146096), 365)
  local doy = doe - (365 * yoe + fdiv(yoe, 4) - fdiv(yoe, 100))
  local mp = fdiv(5 * doy + 2, 153)
  local d = doy - fdiv(153 * mp + 2, 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400 + (m <= 2 and 1 or 0)
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d,
                       fdiv(sod, 3600), fdiv(sod % 3600, 60), sod % 60,
                       ms - s * 1000)
end

local function entry_json()
  local exp = tonumber(expires)
  return '{"state":' .. jstr(state) ..
    ',"provider":' .. jstr(provider) ..
    ',"subscription_id":' .. jstr(sub) ..
    ',"expires_at":' .. (exp > 0 and jstr(rfc3339(exp)) or 'null') ..
    ',"auto_renew":' .. (auto_renew == '1' and 'true' or
                         auto_renew == '0' and 'false' or 'null') ..
    ',"environment":' .. (env ~= '' and jstr(env) or 'null') ..
    ',"updated_at":' .. jstr(rfc3339(tonumber(snapshot))) .. '}'
end

local function ent_key(o)
  return prefix .. 'entitlements:{' .. o .. '}'
end

-- The entry of @prod in @key, decoded: nil when absent or not a JSON
-- object (then it is nobody's, and may be replaced).
local function entry(key, prod)
  local json = redis.call('HGET', key, prod)
  if not json then return nil end
  local ok, e = pcall(cjson.decode, json)
  if ok and type(e) == 'table' then return e end
  return nil
end

local function ours(e)
  return e ~= nil and e.provider == provider and e.subscription_id == sub
end

local function grants(st)
  return st == 'active' or st == 'grace_period'
end

-- ---- reads: the old entry, the entry we are about to write -------------

local new_key = ent_key(owner)
local drop_old = false
if rec.product_id and rec.owner and
   (rec.owner ~= owner or rec.product_id ~= product) then
  drop_old = ours(entry(ent_key(rec.owner), rec.product_id))
end
local write_new = true
local held = entry(new_key, product)
if held and not ours(held) and grants(held.state) and not grants(state) then
  write_new = false
end

-- ---- writes ----------------------------------------------------------

redis.call('SET', seen_key, owner .. '\31' .. old_state .. '\31' .. state ..
           '\31' .. (changed and '1' or '0'), 'EX', ttl)
redis.call('HSET', rec_key, 'owner', owner, 'product_id', product,
           'state', state, 'expires_ms', expires, 'auto_renew', auto_renew,
           'environment', env, 'snapshot_ms', snapshot)
if drop_old then
  redis.call('HDEL', ent_key(rec.owner), rec.product_id)
end
if write_new then
  redis.call('HSET', new_key, product, entry_json())
end
return {0, owner, old_state, state, changed and 1 or 0, product}
