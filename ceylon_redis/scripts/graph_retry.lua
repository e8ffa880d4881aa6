-- graph_retry: run a graph's FAILED and CANCELLED tasks again, and what ran
-- downstream of them (say, on an on_failure="run" edge).
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  graph id; ARGV[2] '1' when the namespace has partitions, so every
--          prerequisite outside the graph was linked (see link.lua)
-- Returns  {'OK', tasks retried, {task id, prerequisite, policy, ...}} or
--          {'ERR', 'UNKNOWN', detail}
-- With partitions, a retried task waits again on each prerequisite outside
-- the graph, and the caller links those edges again (link.lua, policy in upper
-- case), the third element: a prerequisite already final is released at once
-- through a coordinator. Edges of tasks still WAITING on such a prerequisite
-- are returned too, so a retry cut off before linking is mended by another.
-- Each such task starts over (attempts and crashes at 0): QUEUED when its
-- prerequisites are settled, else WAITING on those being retried or still
-- running. A task whose cancel-policy prerequisite failed outside the graph
-- (and so is not retried) stays as it is, and so does what depends on it.
-- Other completed tasks keep their outputs; the graph runs again, its TTL lifted.
-- A retried task's dead letter is removed.
--!include common.lua

local base, gid, linked = KEYS[1], ARGV[1], ARGV[2] == '1'
local gkey = graph_key(base, gid)
if redis.call('EXISTS', gkey) == 0 then
  return {'ERR', 'UNKNOWN', 'graph ' .. gid .. ' does not exist (or expired)'}
end
local ids = redis.call('SMEMBERS', gkey .. ':tasks')
local info, retry = {}, {}
for _, tid in ipairs(ids) do
  local f = redis.call('HMGET', task_key(base, tid), 'status', 'depends_on', 'dep_policy', 'role')
  local t = {status = f[1], role = f[4], deps = {}, policy = {}}
  for dep in string.gmatch(f[2] or '', '%S+') do table.insert(t.deps, dep) end
  for dep, p in string.gmatch(f[3] or '', '(%S+)=(%a)') do t.policy[dep] = p end
  info[tid] = t
  if f[1] == 'FAILED' or f[1] == 'CANCELLED' then retry[tid] = true end
end

local function outside(dep) return linked and not info[dep] end
local function status_of(tid)
  if info[tid] then return info[tid].status end
  return redis.call('HGET', task_key(base, tid), 'status')
end
local function failed(st) return st == 'FAILED' or st == 'CANCELLED' end

-- Until nothing changes: set retry[tid] = value for each task `eligible(tid)`
-- that has a prerequisite dep with `edge(tid, dep)`.
local function spread(value, eligible, edge)
  local changed = true
  while changed do
    changed = false
    for _, tid in ipairs(ids) do
      if eligible(tid) then
        for _, dep in ipairs(info[tid].deps) do
          if edge(tid, dep) then
            retry[tid], changed = value, true
            break
          end
        end
      end
    end
  end
end

-- What ran on the output (or the failure) of a task being retried runs again
-- too, as its input will change; an ignore-edge does not carry this.
spread(true,
  function(tid) return not retry[tid] and info[tid].status == 'COMPLETED' end,
  function(tid, dep) return retry[dep] and info[tid].policy[dep] ~= 'i' end)

-- A failure that is not retried would cancel these again: leave them be.
spread(nil,
  function(tid) return retry[tid] end,
  function(tid, dep)
    return (info[tid].policy[dep] or 'c') == 'c' and not retry[dep] and failed(status_of(dep))
  end)

local n, relink = 0, {}
for _, tid in ipairs(ids) do
  if not retry[tid] and info[tid].status == 'WAITING' and linked then
    local deps = redis.call('HGETALL', task_key(base, tid) .. ':deps')
    for k = 1, #deps, 2 do
      if outside(deps[k]) then
        for _, v in ipairs({tid, deps[k], deps[k + 1]}) do relink[#relink + 1] = v end
      end
    end
  end
  if retry[tid] then
    local t, hkey = info[tid], task_key(base, tid)
    reset_for_rerun(base, hkey)
    redis.call('HDEL', hkey, 'failed_deps')
    redis.call('DEL', hkey .. ':deps')
    redis.call('HINCRBY', gkey, string.lower(t.status), -1)
    local pending, failed_deps = {}, {}
    for _, dep in ipairs(t.deps) do
      local st = status_of(dep)
      if outside(dep) then
        table.insert(pending, dep)
        for _, v in ipairs({tid, dep, t.policy[dep] or 'c'}) do relink[#relink + 1] = v end
      elseif retry[dep] or st == 'WAITING' or st == 'QUEUED' or st == 'RUNNING'
         or st == 'SCHEDULED' then
        table.insert(pending, dep)
      elseif failed(st) and t.policy[dep] == 'r' then
        table.insert(failed_deps, dep)
      end
    end
    if #failed_deps > 0 then redis.call('HSET', hkey, 'failed_deps', table.concat(failed_deps, ' ')) end
    if #pending == 0 then
      push_ready(base, tid, hkey, t.role)
      note_event('resubmitted', t.role or '', 'QUEUED', tid)
    else
      park(base, tid, hkey, t.role)
      note_event('resubmitted', t.role or '', 'WAITING', tid)
      for _, dep in ipairs(pending) do
        redis.call('HSET', hkey .. ':deps', dep, t.policy[dep] or 'c')
        if not outside(dep) then redis.call('SADD', task_key(base, dep) .. ':dependents', tid) end
      end
    end
    n = n + 1
  end
end
if n > 0 then
  redis.call('HDEL', gkey, 'finished_at', 'cancelled_at')
  redis.call('PERSIST', gkey)
  redis.call('PERSIST', gkey .. ':tasks')
  for _, tid in ipairs(ids) do redis.call('PERSIST', task_key(base, tid)) end
end
flush_events(base)
return {'OK', n, relink}
