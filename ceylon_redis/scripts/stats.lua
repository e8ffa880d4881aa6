-- stats: fold a coordinator's batch of outcome events into the statistics.
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  consumer group of the coordinators, then seven per event:
--          entry id, role, status, attempt, wait ms ('' if it never ran),
--          run ms ('' likewise), finished at (Unix seconds)
-- Returns  how many events were applied.
-- An event is applied only by the call whose XACK acknowledges it, so it is
-- counted exactly once however many coordinators saw it (one died after
-- reading, another claimed it). Acked events are deleted.
--
-- {P}:stats:<role> hash: completed, failed, cancelled, retries, wait_sum,
-- run_sum, w<b> / r<b> histogram buckets of wait and run time, m<minute>
-- tasks finished in that minute. Bucket 0 holds [0, 1) ms; bucket b >= 1
-- holds [10^((b-1)/10), 10^(b/10)) ms; the last, 71, everything above.

local base, group = KEYS[1], ARGV[1]
local events = base .. 'events'
local LAST = 71

local function bucket(ms)
  if ms < 1 then return 0 end
  return math.min(LAST, math.floor(10 * math.log(ms) / math.log(10) + 1e-9) + 1)
end

local applied = 0
for i = 2, #ARGV, 7 do
  local entry, role, status, attempt = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local wait_ms, run_ms, at = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  if redis.call('XACK', events, group, entry) == 1 then
    local key = base .. 'stats:' .. role
    redis.call('HINCRBY', key, string.lower(status), 1)
    local a = tonumber(attempt) or 0
    if a > 1 then redis.call('HINCRBY', key, 'retries', a - 1) end
    if wait_ms ~= '' then
      redis.call('HINCRBY', key, 'w' .. bucket(tonumber(wait_ms)), 1)
      redis.call('HINCRBY', key, 'wait_sum', wait_ms)
    end
    if run_ms ~= '' then
      redis.call('HINCRBY', key, 'r' .. bucket(tonumber(run_ms)), 1)
      redis.call('HINCRBY', key, 'run_sum', run_ms)
    end
    redis.call('HINCRBY', key, 'm' .. math.floor(tonumber(at) / 60), 1)
    applied = applied + 1
  end
  redis.call('XDEL', events, entry)
end
return applied
