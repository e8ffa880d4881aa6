-- schedule: add (or update), pause, resume or remove a periodic task's schedule.
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  'add' | 'pause' | 'resume' | 'remove', ARGV[2] the schedule id
--   add:    ARGV[3] its first tick (ms, Redis's clock) if it is new or changed,
--           ARGV[4] N, then N field/value pairs: its definition, 'digest' and 'role'
--           among them (schedules.py ScheduleDef.fields)
--   resume: ARGV[3] its next tick (ms), counted from now
-- Returns  add: {'created'|'updated'|'unchanged', next tick ms ('inf' while paused)}
--          pause, resume, remove: 1, or 0 when there is no such schedule
-- An add whose digest is the schedule's own changes nothing (an app may add its
-- schedules at every start without moving them in time); a changed one starts
-- again from ARGV[3] and keeps its history (last tick, counts) and its pause.
-- Every change bumps 'version', so a tick computed from the old one is refused.

local base, op, id = KEYS[1], ARGV[1], ARGV[2]
local hkey, zkey, roles = base .. 'schedule:' .. id, base .. 'schedules', base .. 'schedule_roles'

local function count_role(role, by)
  if redis.call('HINCRBY', roles, role, by) <= 0 then redis.call('HDEL', roles, role) end
end

if op == 'add' then
  local fields, role, digest = {}, nil, nil
  for i = 5, 4 + 2 * tonumber(ARGV[4]), 2 do
    fields[#fields + 1], fields[#fields + 2] = ARGV[i], ARGV[i + 1]
    if ARGV[i] == 'role' then role = ARGV[i + 1] end
    if ARGV[i] == 'digest' then digest = ARGV[i + 1] end
  end
  local old = redis.call('HMGET', hkey, 'digest', 'role', 'paused')
  if old[1] == digest then
    return {'unchanged', redis.call('ZSCORE', zkey, id)}
  end
  redis.call('HSET', hkey, unpack(fields))
  redis.call('HINCRBY', hkey, 'version', 1)
  if old[2] ~= role then
    if old[2] then count_role(old[2], -1) end
    count_role(role, 1)
  end
  local next_tick = old[3] and '+inf' or ARGV[3]
  redis.call('ZADD', zkey, next_tick, id)
  if not old[1] then
    local t = redis.call('TIME')
    redis.call('HSET', hkey, 'created_at', t[1])
    return {'created', next_tick}
  end
  return {'updated', next_tick}
end

if redis.call('EXISTS', hkey) == 0 then return 0 end
if op == 'remove' then
  count_role(redis.call('HGET', hkey, 'role'), -1)
  redis.call('DEL', hkey)
  redis.call('ZREM', zkey, id)
elseif op == 'pause' then
  redis.call('HSET', hkey, 'paused', '1')
  redis.call('HINCRBY', hkey, 'version', 1)
  redis.call('ZADD', zkey, '+inf', id)
elseif op == 'resume' and redis.call('HDEL', hkey, 'paused') == 1 then
  redis.call('HINCRBY', hkey, 'version', 1)
  redis.call('ZADD', zkey, ARGV[3], id)
end
return 1
