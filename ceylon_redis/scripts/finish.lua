-- finish: record the outcome of attempts a worker ran, and ack their entries.
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  role, ARGV[2] consumer, then seven per task:
--          task id, entry id, attempt, status (COMPLETED|FAILED), output, error,
--          retryable ('1' when the failure may be retried: attempts lost to
--          crashed workers do not count against max_attempts)
-- Returns  {refused task ids...}: attempts that no longer own their task
--          (reclaimed after the worker was presumed dead); the outcome of an
--          attempt whose task was cancelled while it ran is dropped quietly;
--          nothing of theirs is written, and an entry is acked only by the
--          consumer it is pending for.
--!include common.lua

local base = KEYS[1]
local role, consumer = ARGV[1], ARGV[2]
local stream = stream_key(base, role)
local now = now_str()
local refused = {}

for i = 3, #ARGV, 7 do
  local tid, entry, attempt = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local status, output, err, retryable = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  local hkey = task_key(base, tid)
  local mine = #redis.call('XPENDING', stream, GROUP, entry, entry, 1, consumer) > 0
  local cur = redis.call('HMGET', hkey, 'status', 'attempt', 'worker', 'max_attempts', 'entry',
                        'crashes')
  local current = cur[1] == 'RUNNING' and cur[5] == entry
  if mine and (not current or (cur[2] == attempt and cur[3] == consumer)) then
    -- Our delivery, and either this attempt's or one the task has moved on from.
    redis.call('XACK', stream, GROUP, entry)
    redis.call('XDEL', stream, entry)
  end
  if cur[1] == 'CANCELLED' and cur[2] == attempt and cur[3] == consumer then
    -- cancelled while it ran: the outcome is dropped, as cancel promised
  elseif not mine or not current or cur[2] ~= attempt or cur[3] ~= consumer then
    redis.call('HINCRBY', base .. 'counters', 'fenced', 1)
    table.insert(refused, tid)
  elseif status == 'FAILED' and retryable == '1'
         and tonumber(attempt) - tonumber(cur[6] or '0') < tonumber(cur[4] or '1') then
    redis.call('HSET', hkey, 'error', err)
    push_ready(base, tid, hkey, role)
  else
    finalize(base, tid, status, output, err, now, true)
  end
end
return refused
