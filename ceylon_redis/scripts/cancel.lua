-- cancel: end tasks that are not final yet as CANCELLED, with a reason.
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  reason, ARGV[2] graph id ('' for none), then task ids (ignored
--          when a graph is named: then its every task is cancelled)
-- Returns  {'OK', cancelled, {id, status before, ...}} or {'ERR', 'UNKNOWN', detail}
-- A WAITING, SCHEDULED or QUEUED task never runs. A RUNNING one's worker is
-- told on {P}:control ("cancel <worker> <task id>") to cancel its handler,
-- and its outcome is dropped when reported. Each named task gets this reason;
-- dependents not named are settled as for a failure ("dependency X cancelled: ...").
-- A task whose status was edited into nonsense is cancelled too (its entry
-- deleted and its worker told, as it may be queued or running).
--!include common.lua

local base, reason, gid = KEYS[1], ARGV[1], ARGV[2]
local now = now_str()
local ids = {}
if gid ~= '' then
  local gkey = graph_key(base, gid)
  if redis.call('EXISTS', gkey) == 0 then
    return {'ERR', 'UNKNOWN', 'graph ' .. gid .. ' does not exist (or expired)'}
  end
  redis.call('HSET', gkey, 'cancelled_at', now)
  ids = redis.call('SMEMBERS', gkey .. ':tasks')
else
  for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
end

local cancelled, before = 0, {}
for _, tid in ipairs(ids) do
  local status = redis.call('HGET', task_key(base, tid), 'status')
  table.insert(before, tid)
  table.insert(before, status or false)
  if status == 'WAITING' then
    -- Out of the cascade's reach, so each gets this reason, not "dependency X cancelled".
    redis.call('HSET', task_key(base, tid), 'status', 'CANCELLING')
  end
end
for _, tid in ipairs(ids) do
  local f = redis.call('HMGET', task_key(base, tid), 'status', 'entry', 'role', 'worker')
  local corrupt = f[1] and f[1] ~= 'CANCELLING' and not STATUSES[f[1]]
  if f[1] == 'CANCELLING' or f[1] == 'QUEUED' or f[1] == 'RUNNING' or f[1] == 'SCHEDULED'
     or corrupt then
    if (f[1] == 'QUEUED' or corrupt) and f[2] then
      redis.call('XDEL', stream_key(base, f[3] or ''), f[2])
    end
    if (f[1] == 'RUNNING' or corrupt) and f[4] then
      redis.call('PUBLISH', base .. 'control', 'cancel ' .. f[4] .. ' ' .. tid)
    end
    cancelled = cancelled + finalize(base, tid, 'CANCELLED', '', reason, now, false)
  end
end
flush_events(base)
return {'OK', cancelled, before}
