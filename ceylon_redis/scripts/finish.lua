-- finish: record the outcome of attempts a worker ran, and ack their entries.
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  role, ARGV[2] consumer, then six per task:
--          task id, entry id, attempt, status (COMPLETED|FAILED), output, error,
--          retryable ('1' when the failure may be retried)
-- Returns  {refused task ids...}: attempts that no longer own their task
--          (reclaimed after the worker was presumed dead, or cancelled);
--          nothing of theirs is written.
--!include common.lua

local base = KEYS[1]
local role, consumer = ARGV[1], ARGV[2]
local stream = stream_key(base, role)
local now = now_str()
local refused = {}

for i = 3, #ARGV, 7 do
  local tid, entry, attempt = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local status, output, err, retryable = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  local acked = redis.call('XACK', stream, GROUP, entry)
  redis.call('XDEL', stream, entry)
  local hkey = task_key(base, tid)
  local cur = redis.call('HMGET', hkey, 'status', 'attempt', 'worker', 'max_attempts')
  if acked == 0 or cur[1] ~= 'RUNNING' or cur[2] ~= attempt or cur[3] ~= consumer then
    redis.call('HINCRBY', base .. 'counters', 'fenced', 1)
    table.insert(refused, tid)
  elseif status == 'FAILED' and retryable == '1'
         and tonumber(attempt) < tonumber(cur[4] or '1') then
    redis.call('HSET', hkey, 'error', err)
    push_ready(base, tid, hkey, role)
  else
    finalize(base, tid, status, output, err, now)
  end
end
return refused
