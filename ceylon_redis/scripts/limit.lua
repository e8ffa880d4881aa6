-- limit: set or remove flow-control limits of a role (limits.py; admission in
-- includes/limits.lua, slots in common.lua).
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  'set' | 'remove', ARGV[2] the role, then field/value pairs to set, or the
--          fields to remove ({P}:limit:<role>: rate, period, burst, concurrency and
--          their key_ twins)
-- Returns  the tasks that waited for a slot and were queued again: a change of limits
--          lets every blocked task of the role (of any key) try again under the new ones.
--          A change of a rate also resets the role's buckets and calls the tasks that
--          reserved a turn under the old one to ask again now.
--!include common.lua

local base, op, role = KEYS[1], ARGV[1], ARGV[2]
local lkey = base .. 'limit:' .. role
local rates = false
for i = 3, #ARGV, op == 'set' and 2 or 1 do
  if ARGV[i] == 'rate' or ARGV[i] == 'key_rate' or ARGV[i] == 'period'
     or ARGV[i] == 'key_period' or ARGV[i] == 'burst' or ARGV[i] == 'key_burst' then
    rates = true
  end
end
if op == 'set' then
  redis.call('HSET', lkey, unpack(ARGV, 3))
  redis.call('SADD', base .. 'limits', role)
else
  redis.call('HDEL', lkey, unpack(ARGV, 3))
  if redis.call('EXISTS', lkey) == 0 then redis.call('SREM', base .. 'limits', role) end
end
local released = 0
local scopes = base .. 'blocking:' .. role
for _, scope in ipairs(redis.call('SMEMBERS', scopes)) do
  while release_blocked(base, base .. 'blocked:' .. scope, scope) do
    released = released + 1
  end
end
redis.call('DEL', scopes)
if rates then
  local bset = base .. 'buckets:' .. role
  for _, scope in ipairs(redis.call('SMEMBERS', bset)) do
    redis.call('DEL', base .. 'bucket:' .. scope)
  end
  redis.call('DEL', bset)
  local zkey, now = scheduled_key(base, role), now_ms()
  for _, tid in ipairs(redis.call('ZRANGE', zkey, 0, -1)) do
    local hkey = task_key(base, tid)
    if redis.call('HGET', hkey, 'held') == 'r' then
      redis.call('HDEL', hkey, 'turn')
      redis.call('ZADD', zkey, now, tid)
    end
  end
end
return released
