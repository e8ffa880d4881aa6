-- limit: set or remove flow-control limits of a role (limits.py; admission in
-- includes/limits.lua, slots in common.lua).
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  'set' | 'remove', ARGV[2] the role, then field/value pairs to set, or the
--          fields to remove ({P}:limit:<role>: rate, period, burst, concurrency and
--          their key_ twins)
-- Returns  the tasks that waited for a slot and were queued again: a change of limits
--          lets every blocked task of the role (of any key) try again under the new ones.
--!include common.lua

local base, op, role = KEYS[1], ARGV[1], ARGV[2]
local lkey = base .. 'limit:' .. role
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
return released
