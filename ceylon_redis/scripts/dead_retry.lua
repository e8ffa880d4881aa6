-- dead_retry: run dead-lettered tasks again, each with a fresh attempt budget.
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV     task ids
-- Returns  {retried, {graph ids}, {task id, why skipped, ...}}
-- A task that is not FAILED with a dead letter is skipped with the reason. A
-- graph's task is not retried here: its graph id is returned, for graph_retry,
-- which also re-runs what its failure cancelled. Dependents a standalone task's
-- failure cancelled stay cancelled.
--!include common.lua

local base = KEYS[1]
local retried, graphs, seen, skipped = 0, {}, {}, {}
for _, tid in ipairs(ARGV) do
  local hkey = task_key(base, tid)
  local f = redis.call('HMGET', hkey, 'status', 'dead', 'graph', 'role')
  local why
  if not f[1] then
    why = 'unknown task (never enqueued, or its result expired)'
  elseif f[1] ~= 'FAILED' or not f[2] then
    why = 'not dead-lettered (status ' .. f[1] .. ')'
  elseif f[3] then
    if not seen[f[3]] then table.insert(graphs, f[3]) end
    seen[f[3]] = true
  else
    reset_for_rerun(base, hkey)
    redis.call('PERSIST', hkey)
    redis.call('PERSIST', hkey .. ':xout')
    push_ready(base, tid, hkey, f[4])
    note_event('resubmitted', f[4] or '', 'QUEUED', tid)
    retried = retried + 1
  end
  if why then
    table.insert(skipped, tid)
    table.insert(skipped, why)
  end
end
flush_events(base)
return {retried, graphs, skipped}
