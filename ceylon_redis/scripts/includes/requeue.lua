-- requeue_consumer gives back every entry a consumer holds on a role stream: each task it was
-- running or about to run goes back on the stream as a new entry (the old
-- one is acked and deleted, so a late finish from that consumer is refused).
-- A task lost while RUNNING counts a crash (field `crashes`); crashes have
-- their own budget (MAX_CRASHES), apart from max_attempts, which only handler
-- failures spend. A task lost more often than that (the 4th time) ends FAILED
-- with the reason, and is dead-lettered: it is likely what kills its workers. Returns the number
-- of tasks re-queued, failed. An entry the worker took but never started (prefetched,
-- waiting for a thread) goes back as it was: no crash counted, its attempt taken back.
-- A task still under this entry but neither RUNNING nor QUEUED was edited by hand:
-- it is failed and dead-lettered (counted failed), not left stranded.

local MAX_CRASHES = 3

-- Give back one entry of a role stream; returns 1, 0 when re-queued, 0, 1 when failed, else 0, 0.
local function requeue_entry(base, role, entry, reason, now, dead_ttl, unstarted)
  local stream = stream_key(base, role)
  local rows = redis.call('XRANGE', stream, entry, entry)
  redis.call('XACK', stream, GROUP, entry)
  redis.call('XDEL', stream, entry)
  local bkey = bound_key(base, role)
  local tid = redis.call('HGET', bkey, entry)  -- the task it served, not the one it names
  if tid then
    redis.call('HDEL', bkey, entry)
  elseif #rows > 0 then
    local f = rows[1][2]
    for k = 1, #f, 2 do if f[k] == 'id' then tid = f[k + 1] end end
  end
  if tid == PLACEHOLDER then  -- taken, never started: it still stands for a waiting task
    redis.call('XADD', stream, '*', 'id', PLACEHOLDER)
    return 0, 0
  end
  if not tid then return 0, 0 end
  local hkey = task_key(base, tid)
  local cur = redis.call('HMGET', hkey, 'status', 'entry', 'attempt', 'slots')
  if cur[2] ~= entry then return 0, 0 end
  if cur[1] ~= 'RUNNING' and cur[1] ~= 'QUEUED' then
    fail_corrupt(base, tid, 'task hash is corrupt: its status field was ' ..
                 status_edit(cur[1]) .. ' while attempt ' .. (cur[3] or '?') ..
                 ' was pending (' .. reason .. ')', '', '', now, dead_ttl)
    return 0, 1
  end
  local crashes = 0
  local ran = cur[1] == 'RUNNING' and not (unstarted and unstarted[entry])
  if ran then
    crashes = redis.call('HINCRBY', hkey, 'crashes', 1)
  elseif cur[1] == 'RUNNING' then
    redis.call('HINCRBY', hkey, 'attempt', -1)
  end
  if crashes > MAX_CRASHES then
    local err = reason .. ' during attempt ' .. cur[3] .. '; lost ' .. crashes ..
                ' times, given up'
    finalize(base, tid, 'FAILED', '', err, now)
    dead_letter(base, tid, 'lost with its worker too often (a poison task?)', err, now,
                dead_ttl)
    return 0, 1
  end
  if ran then redis.call('HSET', hkey, 'error', reason) end
  if cur[4] then leave_slots(base, tid, cur[4]) end
  redis.call('HDEL', hkey, 'worker', 'slots')
  push_ready(base, tid, hkey, role)
  if ran then
    note_event('requeued', role, 'QUEUED', tid, cur[3])
  elseif cur[1] == 'RUNNING' then  -- taken, never started: its attempt is taken back
    note_event('unstarted', role, 'QUEUED', tid, cur[3])
  end
  return 1, 0
end

local function requeue_consumer(base, role, consumer, reason, now, dead_ttl, unstarted)
  local stream = stream_key(base, role)
  local requeued, failed = 0, 0
  while true do
    local pending = redis.call('XPENDING', stream, GROUP, '-', '+', 500, consumer)
    if #pending == 0 then break end
    for _, p in ipairs(pending) do
      local r, f = requeue_entry(base, role, p[1], reason, now, dead_ttl, unstarted)
      requeued, failed = requeued + r, failed + f
    end
  end
  redis.call('XGROUP', 'DELCONSUMER', stream, GROUP, consumer)
  return requeued, failed
end
