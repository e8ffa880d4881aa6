-- progress: record how far running attempts have got, as their worker reported it.
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  consumer (worker id), ARGV[2] role, then four per task: task id, attempt,
--          fraction done ("0".."1"), info (JSON text, '' for none)
-- Fenced like a finish: written only while the task is RUNNING this attempt on this
-- consumer, so a late report of an attempt that was reclaimed (its worker presumed
-- dead) or that ended changes nothing. Sets progress, progress_info (deleted when ''),
-- progress_at (Redis's clock); notes a `progress` event for each.
-- Returns  the ids of tasks whose report was refused.
--!include common.lua

local base, consumer, role = KEYS[1], ARGV[1], ARGV[2]
local now = now_str()
local refused = {}
journal.worker = consumer
for i = 3, #ARGV, 4 do
  local tid, attempt, fraction, info = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local hkey = task_key(base, tid)
  local f = redis.call('HMGET', hkey, 'status', 'attempt', 'worker', 'progress_info')
  if f[1] == 'RUNNING' and f[2] == attempt and f[3] == consumer then
    if info ~= '' then
      redis.call('HSET', hkey, 'progress', fraction, 'progress_info', info, 'progress_at', now)
    else
      redis.call('HSET', hkey, 'progress', fraction, 'progress_at', now)
      if f[4] then redis.call('HDEL', hkey, 'progress_info') end
    end
    note_event('progress', role, 'RUNNING', tid, attempt, fraction)
  else
    refused[#refused + 1] = tid
  end
end
flush_events(base)
return refused
