-- promote: queue the SCHEDULED tasks whose time has come (delayed enqueues,
-- retries waiting out their backoff).
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  most tasks to promote in this call
-- Returns  {promoted, ms until the next scheduled task (-1: none), more (1 when
--          the limit was reached and more are due)}
-- Idempotent and safe from any number of workers and coordinators at once:
-- a member leaves the set in the same script that queues its task. A task whose
-- status was edited into nonsense is failed and dead-lettered instead.
--!include common.lua

local base, limit = KEYS[1], tonumber(ARGV[1])
local now = now_ms()
local promoted, next_due = 0, -1
for _, role in ipairs(redis.call('SMEMBERS', base .. 'roles')) do
  local zkey = scheduled_key(base, role)
  if promoted < limit then
    for _, tid in ipairs(redis.call('ZRANGEBYSCORE', zkey, '-inf', now, 'LIMIT', 0,
                                    limit - promoted)) do
      redis.call('ZREM', zkey, tid)
      local hkey = task_key(base, tid)
      local status = redis.call('HGET', hkey, 'status')
      if status == 'SCHEDULED' then
        push_ready(base, tid, hkey, role)
        note_event('queued', role, 'QUEUED', tid)
        promoted = promoted + 1
      elseif status and not STATUSES[status] then
        fail_corrupt(base, tid, corrupt_status(status), '', '', now_str(), 0)
      end
    end
  end
  -- Prioritized tasks wait but the stream is empty: a placeholder went missing (an
  -- older worker dead-lettered it). One more lets the best of them run.
  if redis.call('EXISTS', priority_key(base, role)) == 1
     and redis.call('XLEN', stream_key(base, role)) == 0 then
    redis.call('XADD', stream_key(base, role), '*', 'id', PLACEHOLDER)
  end
  local first = redis.call('ZRANGE', zkey, 0, 0, 'WITHSCORES')
  if #first > 0 then
    local wait = math.max(0, tonumber(first[2]) - now)
    if next_due < 0 or wait < next_due then next_due = wait end
  end
end
flush_events(base)
return {promoted, next_due, promoted >= limit and 1 or 0}
