-- Compare-and-delete for hr_shared.c: delete KEYS[1] only if it still
-- holds what this caller put or saw there, so that a newer value written
-- by another replica survives.
--
-- KEYS[1]: a token key ("<refresh_at_ms> <expires_ms> <token>") or a lock
--          key (owner id)
-- ARGV[1]: 'token' (compare the part after the second space) or 'lock'
--          (compare the whole value)
-- ARGV[2]: the token, or the owner id
-- Returns 1 when the key was deleted, 0 otherwise.
local v = redis.call('GET', KEYS[1])
if not v then
    return 0
end
if ARGV[1] == 'token' then
    local sp = string.find(v, ' ', 1, true)
    if sp then
        sp = string.find(v, ' ', sp + 1, true)
    end
    if not sp then
        return 0
    end
    v = string.sub(v, sp + 1)
end
if v ~= ARGV[2] then
    return 0
end
redis.call('DEL', KEYS[1])
return 1
