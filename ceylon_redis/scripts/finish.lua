-- finish: record the outcome of attempts a worker ran, and ack their entries.
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  role, ARGV[2] consumer, ARGV[3] random seed (retry jitter),
-- ARGV[4..7] the worker's defaults for tasks enqueued without their own:
--          max_attempts, backoff (ms), longest backoff (ms), jitter (0..1),
-- ARGV[8]  dead-letter TTL (seconds), then seven per task:
--          task id, entry id, attempt, status (COMPLETED|FAILED), output, error,
--          retry: 'n' final as reported (a processor's (False, payload) is an
--          outcome, not a failure), 'x' failed and not retryable, 'b' retry
--          after the task's backoff, or a number: retry after that many ms
-- A failed attempt is retried while attempts - crashes < max_attempts
-- (attempts lost to crashed workers have their own budget): SCHEDULED after
-- min(longest, backoff * 2^(failures-1)) less up to `jitter` of it, at
-- random; QUEUED at once when that is 0. A task out of attempts, or failed
-- for good, goes to the dead-letter stream.
-- Returns  {{refused task ids}, {dead-lettered task id, why, ...},
--          {retried task id, failures, allowed, delay ms, ...}}. Refused:
--          attempts that no longer own their task (reclaimed after the worker
--          was presumed dead); nothing of theirs is written, and an entry is
--          acked only by the consumer it is pending for. The outcome of an
--          attempt whose task was cancelled while it ran is dropped quietly.
--          A task whose status was edited by hand while this attempt ran (its
--          entry, attempt and worker still this attempt's: say HSET status QUEUED)
--          is failed and dead-lettered with why, in the dead-lettered list.
--!include common.lua

local base = KEYS[1]
local role, consumer = ARGV[1], ARGV[2]
math.randomseed(tonumber(ARGV[3]))
local default_attempts, default_backoff = tonumber(ARGV[4]), ARGV[5]
local longest, jitter, dead_ttl = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local stream = stream_key(base, role)
local now = now_str()
local refused, dead, retried = {}, {}, {}
journal.worker = consumer
slot_batch.on = true  -- slots freed by these outcomes go back together, at the end
dep_batch.on = true  -- and their dependents are looked for together
local unbound = {}  -- entries of prioritized tasks ({P}:bound:<role>), deleted at the end
local acked = {}  -- entries acknowledged and taken off the stream at the end (remove_acked)

-- Whether stream entry id `a` comes before `b` ("<ms>-<seq>", no leading zeros).
local function entry_before(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  if not (ams and bms) then return false end  -- not an id: XDEL says so, as before
  if #ams ~= #bms then return #ams < #bms end
  if ams ~= bms then return ams < bms end
  if #aseq ~= #bseq then return #aseq < #bseq end
  return aseq < bseq
end

-- The first entry no delivery is done with: the oldest still pending, else the one
-- after the last delivered (every entry before it was delivered, and none is pending).
local function first_unfinished(stream)
  local oldest = redis.call('XPENDING', stream, GROUP, '-', '+', 1)
  if #oldest > 0 then return oldest[1][1] end
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local info = {}
    for k = 1, #g, 2 do info[g[k]] = g[k + 1] end
    if info.name == GROUP then
      local ms, seq = string.match(info['last-delivered-id'] or '', '^(%d+)-(%d+)$')
      if ms and #seq < 15 then return ms .. '-' .. string.format('%d', tonumber(seq) + 1) end
    end
  end
  return nil
end

-- Acknowledge the batch's entries and take them off the stream, which keeps only
-- entries queued or running. All entries before the first unfinished one are done
-- with: one exact XTRIM MINID takes them (a scan of one stream node at most). Only
-- the acknowledged entries after it, behind a delivery still running, are deleted one
-- by one (XDEL: a scan of its node each, the dearest command of a finish before).
local function remove_acked(stream, acked)
  if #acked == 0 then return end
  for i = 1, #acked, 1000 do
    redis.call('XACK', stream, GROUP, unpack(acked, i, math.min(i + 999, #acked)))
  end
  local bound = first_unfinished(stream)
  local rest = acked
  if bound then
    redis.call('XTRIM', stream, 'MINID', bound)
    rest = {}
    for _, e in ipairs(acked) do
      if not entry_before(e, bound) then rest[#rest + 1] = e end
    end
  end
  for i = 1, #rest, 1000 do
    redis.call('XDEL', stream, unpack(rest, i, math.min(i + 999, #rest)))
  end
end

local function retry_delay(retry, backoff, failures)
  if retry ~= 'b' then return tonumber(retry) end
  local base_ms = tonumber(backoff or '') or tonumber(default_backoff)  -- edited: the default
  local delay = math.min(longest, base_ms * 2 ^ (failures - 1))
  return math.floor(delay * (1 - jitter * math.random()))
end

for i = 9, #ARGV, 7 do
  local tid, entry, attempt = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local status, output, err, retry = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  local hkey = task_key(base, tid)
  -- finalize's fields (common.lua), then the worker (17): read once, for both.
  local f = redis.call('HMGET', hkey, unpack(FINISH_FIELDS))
  -- status, attempt, worker, entry, priority, slots
  local cur = {f[8], f[7], f[17], f[10], f[11], f[14]}
  local current = cur[1] == 'RUNNING' and cur[4] == entry
  -- This attempt's own (RUNNING here, under this entry): the delivery is ours, as only
  -- a reclaim, which changes the entry, moves it. Otherwise the stream says.
  local mine = (current and cur[2] == attempt and cur[3] == consumer)
               or #redis.call('XPENDING', stream, GROUP, entry, entry, 1, consumer) > 0
  if mine and (not current or (cur[2] == attempt and cur[3] == consumer)) then
    -- Our delivery, and either this attempt's or one the task has moved on from.
    acked[#acked + 1] = entry
    if cur[5] then unbound[#unbound + 1] = entry end
  end
  if cur[1] == 'CANCELLED' and cur[2] == attempt and cur[3] == consumer then
    -- cancelled while it ran: the outcome is dropped, as cancel promised (a cancel by
    -- an older version may have left its slots: given back here)
    if cur[6] then
      leave_slots(base, tid, cur[6])
      redis.call('HDEL', hkey, 'slots')
    end
  elseif mine and cur[1] ~= 'RUNNING' and cur[4] == entry and cur[2] == attempt
         and cur[3] == consumer then
    -- Still this attempt's entry, attempt and worker, but not RUNNING: edited by hand
    -- (every script that moves a task on changes its entry or ends it, and a cancel is
    -- handled above). Its stream entry is gone now and no one else will end it: fail it.
    local why = 'task hash is corrupt: its status field was ' .. status_edit(cur[1]) ..
                ' while attempt ' .. attempt .. ' ran on ' .. consumer
    fail_corrupt(base, tid, why, output, err, now, dead_ttl, true)
    table.insert(dead, tid)
    table.insert(dead, why)
  elseif not mine or not current or cur[2] ~= attempt or cur[3] ~= consumer then
    redis.call('HINCRBY', base .. 'counters', 'fenced', 1)
    table.insert(refused, tid)
  elseif status == 'COMPLETED' or retry == 'n' then
    finalize(base, tid, status, output, err, now, true, f)
  else
    -- read only now: a task that completes needs none of them
    local budget = redis.call('HMGET', hkey, 'max_attempts', 'crashes', 'backoff')
    -- a number edited by hand into nonsense counts as absent: nothing may fail after
    -- the batch's earlier writes (their entries and dependents are settled at the end)
    local failures = tonumber(attempt) - (tonumber(budget[2] or '') or 0)
    local allowed = tonumber(budget[1] or '') or default_attempts
    if retry ~= 'x' and failures < allowed then
      if cur[6] then
        leave_slots(base, tid, cur[6])
        redis.call('HDEL', hkey, 'slots')
      end
      redis.call('HSET', hkey, 'error', err)
      local delay = retry_delay(retry, budget[3], failures)
      if delay > 0 then
        schedule(base, tid, hkey, role, now_ms() + delay, false)
      else
        push_ready(base, tid, hkey, role)
      end
      note_event('retried', role, delay > 0 and 'SCHEDULED' or 'QUEUED', tid, attempt)
      for _, v in ipairs({tid, failures, allowed, delay}) do table.insert(retried, v) end
    else
      finalize(base, tid, 'FAILED', output, err, now, true, f)
      local why = retry == 'x' and 'failed, not retryable'
                  or ('out of attempts (' .. failures .. ' of ' .. allowed .. ')')
      dead_letter(base, tid, why, err, now, dead_ttl)
      table.insert(dead, tid)
      table.insert(dead, why)
    end
  end
end
flush_dependents(base, now)
flush_slots(base)
remove_acked(stream, acked)
if #unbound > 0 then redis.call('HDEL', bound_key(base, role), unpack(unbound)) end
flush_events(base)
return {refused, dead, retried}
