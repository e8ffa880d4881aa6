-- tick: claim due ticks of schedules and enqueue each tick's task, in one step.
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  S, then per schedule 6 + K arguments: id, the next tick it was read with
--          (ms), the version it was read with, its next tick after these (ms), missed
--          ticks skipped, K, then K tick times (ms)
-- Returns  {schedules claimed, tasks enqueued}
-- A schedule whose next tick or version moved since it was read was claimed by
-- another scheduler (or changed): it is left alone. So however many schedulers
-- run, each tick is enqueued once; a scheduler that dies before this call
-- leaves the tick to the others. A tick's task id is "<schedule id>.<tick ms>",
-- so a tick whose task exists is not enqueued again.
--!include common.lua

local base = KEYS[1]
local zkey = base .. 'schedules'
local claimed, enqueued = 0, 0
local i = 2
for _ = 1, tonumber(ARGV[1]) do
  local id, read_tick, version, next_tick = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local skipped, k = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
  local ticks = {unpack(ARGV, i + 6, i + 5 + k)}
  i = i + 6 + k
  local skey = base .. 'schedule:' .. id
  local s = redis.call('HMGET', skey, 'version', 'role', 'name', 'data', 'max_attempts', 'ttl',
                       'backoff', 'timeout', 'priority', 'limit_key')
  local score = redis.call('ZSCORE', zkey, id)
  if not s[1] then  -- no version: its hash deleted or edited by hand, it ticks no more
    redis.call('ZREM', zkey, id)
  elseif s[1] == version and s[2] and score and tonumber(score) == tonumber(read_tick) then
    claimed = claimed + 1
    local role, last = s[2], nil
    for _, tick in ipairs(ticks) do
      local tid = id .. '.' .. tick
      local hkey = task_key(base, tid)
      if redis.call('EXISTS', hkey) == 0 then
        -- A field missing (a hash edited by hand) leaves the task the workers' default.
        local fields = {'role', role, 'data', s[4] or '', 'name', s[3] or '', 'schedule', id,
                        'tick', tick}
        if fields[6] == '' then fields[6] = id end
        if s[5] and s[5] ~= '' then fields[#fields + 1] = 'max_attempts'; fields[#fields + 1] = s[5] end
        if s[6] and s[6] ~= '86400' then fields[#fields + 1] = 'ttl'; fields[#fields + 1] = s[6] end
        if s[7] and s[7] ~= '' then fields[#fields + 1] = 'backoff'; fields[#fields + 1] = s[7] end
        if s[8] and s[8] ~= '' then fields[#fields + 1] = 'timeout'; fields[#fields + 1] = s[8] end
        if s[10] and s[10] ~= '' then fields[#fields + 1] = 'limit_key'; fields[#fields + 1] = s[10] end
        local priority = tonumber(s[9] or '') or DEFAULT_PRIORITY
        fields[#fields + 1] = 'status'; fields[#fields + 1] = 'QUEUED'
        if prioritized(base, role, priority) then
          fields[#fields + 1] = 'priority'; fields[#fields + 1] = priority
          fields[#fields + 1] = 'enqueued_at'; fields[#fields + 1] = now_str()
          fields[#fields + 1] = 'rank'
          fields[#fields + 1] = push_prioritized(base, tid, role, priority)
          redis.call('HSET', hkey, unpack(fields))
        else
          local entry = redis.call('XADD', stream_key(base, role), '*', 'id', tid)
          fields[#fields + 1] = 'entry'; fields[#fields + 1] = entry
          redis.call('HSET', hkey, unpack(fields))
        end
        note_event('tick', role, 'QUEUED', tid)
        enqueued = enqueued + 1
      end
      last = tid
    end
    redis.call('SADD', base .. 'roles', role)
    if last then
      redis.call('HSET', skey, 'last_tick', ticks[#ticks], 'last_task', last)
      redis.call('HINCRBY', skey, 'ticks', #ticks)
    end
    if skipped > 0 then redis.call('HINCRBY', skey, 'skipped', skipped) end
    redis.call('ZADD', zkey, 'XX', next_tick, id)
  end
end
flush_events(base)
return {claimed, enqueued}
