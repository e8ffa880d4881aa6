-- start: a worker takes the entries it just read; each becomes RUNNING.
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  role, ARGV[2] consumer (worker id), then pairs: entry id, task id
--          (task id '' for an entry without one): the entries it just read;
--          or ARGV[3] '>' and ARGV[4] a count: read up to that many new entries
--          here (XREADGROUP, not blocking), saving a busy worker a round trip
-- Returns  one item per pair, in order (after '>': each item follows its entry id):
--          {task id, attempt, name, data, timeout (ms, '' for the worker's),
--           tick (ms: the schedule's tick that enqueued it, '' for none),
--           trace (the producer's traceparent, '' for none),
--           F, F pairs (failed prerequisite, its error), then pairs
--           (completed prerequisite, its output)}                      run it
--          {task id, 0, reason}                                       skip it
--          The failed prerequisites are those of run-anyway edges.
-- While a role has prioritized tasks waiting (common.lua), an entry serves the best
-- task waiting: its own, or a better one (recorded in {P}:bound:<role>); a
-- placeholder whose task was cancelled is dropped quietly (reason '').
-- Starting the same entries again (a retry after a lost reply) returns the same
-- attempts: a task RUNNING under this consumer and entry is not started twice, and
-- its entry is not dropped (that would strand it RUNNING with nothing pending).
-- An entry whose task is gone, not QUEUED, or queued under another entry is
-- acknowledged and deleted; a malformed one is also dead-lettered. A task whose
-- hash was edited into nonsense (a status that is none, an attempt not a number)
-- is failed and dead-lettered, the reason naming the field.
--!include common.lua
--!include limits.lua

local base = KEYS[1]
local role, consumer = ARGV[1], ARGV[2]
local stream = stream_key(base, role)
local now = now_str()
local out = {}
journal.worker = consumer

local function drop(entry, tid, reason, dead)
  redis.call('XACK', stream, GROUP, entry)
  redis.call('XDEL', stream, entry)
  if dead then
    redis.call('XADD', base .. 'dead', 'MAXLEN', '~', DEAD_MAXLEN, '*', 'task', tid,
               'role', role, 'name', '', 'reason', reason, 'error', '', 'attempts', '0',
               'at', now, 'entry', entry)
  end
  return {tid, 0, reason}
end

-- The run item of a started attempt: its fields, then its prerequisites' outcomes.
local function started_item(base, hkey, tid, fields, attempt)
  local item = {tid, tonumber(attempt), fields[3] or '', fields[4] or '', fields[7] or '',
                fields[10] or '', fields[16] or '', 0}
  for dep in string.gmatch(fields[6] or '', '%S+') do
    item[8] = item[8] + 1
    table.insert(item, dep)
    table.insert(item, redis.call('HGET', task_key(base, dep), 'error')
                       or redis.call('HGET', hkey .. ':xout', '!' .. dep) or '')
  end
  for dep in string.gmatch(fields[5] or '', '%S+') do
    local d = redis.call('HMGET', task_key(base, dep), 'status', 'output')
    if not d[1] then  -- expired, or in another partition (its release left it here)
      d[2] = redis.call('HGET', hkey .. ':xout', dep)
      if not d[2] and redis.call('HEXISTS', hkey .. ':xout', '!' .. dep) == 1 then
        d[1] = 'FAILED'
      end
    end
    if d[1] == 'COMPLETED' or not d[1] then
      table.insert(item, dep)
      table.insert(item, d[2] or '')
    end
  end
  return item
end

local entries, taking = {}, ARGV[3] == '>'
if taking then
  local reply = redis.call('XREADGROUP', 'GROUP', GROUP, consumer, 'COUNT', ARGV[4],
                           'STREAMS', stream, '>')
  -- {{stream, entries}}, or false when there are none (fakeredis: {stream, entries})
  local read = reply and (type(reply[1]) == 'table' and reply[1][2] or reply[2]) or {}
  for _, e in ipairs(read) do
    local tid = ''
    for k = 1, #e[2], 2 do
      if e[2][k] == 'id' then tid = e[2][k + 1] end
    end
    table.insert(entries, e[1])
    table.insert(entries, tid)
  end
else
  for i = 3, #ARGV do entries[i - 2] = ARGV[i] end
end

-- Priorities (common.lua): whether the role has tasks waiting in its priority zset,
-- or entries serving a task other than the one they name.
local pkey, bkey = priority_key(base, role), bound_key(base, role)
local ranked = redis.call('EXISTS', pkey, bkey) > 0
local bindings = {}  -- entry, task id: written in one HSET at the end
local limits = limit_spec(base, role)
local waiting = ranked

-- The task an entry serves, and whether it is not the one the entry names: a
-- placeholder serves the best waiting prioritized task; a task's own entry serves a
-- better one if one waits, and its own task then waits in the zset in its place, to
-- be served by the placeholder that better one leaves. nil: a placeholder of a task
-- that no longer waits (cancelled).
local function serve(entry, tid)
  if not ranked then return tid ~= PLACEHOLDER and tid or nil, false end
  if not taking then  -- a start again after a lost reply: the entry is bound already
    local bound = redis.call('HGET', bkey, entry)
    if bound then return bound, false end
  end
  if tid == PLACEHOLDER then
    local top = waiting and redis.call('ZPOPMIN', pkey) or {}
    if #top == 0 then
      waiting = false
      return nil, false
    end
    return ranked_task(top[1]), true
  end
  local top = waiting and redis.call('ZRANGE', pkey, 0, 0, 'WITHSCORES') or {}
  if #top == 0 then
    waiting = false
    return tid, false
  end
  do
    local own_score, own_member = 9 - DEFAULT_PRIORITY, rank_member(entry, tid)
    local score = tonumber(top[2])
    if score > own_score or (score == own_score and top[1] > own_member) then
      return tid, false
    end
    local hkey = task_key(base, tid)
    local own = redis.call('HMGET', hkey, 'status', 'entry', 'enqueued_at')
    if own[1] ~= 'QUEUED' or own[2] ~= entry then
      -- not waiting under this entry: RUNNING on it (a start again after a lost reply)
      -- or stale; the caller deals with it, and the better task keeps its place
      return tid, false
    end
    redis.call('ZADD', pkey, own_score, own_member)
    redis.call('HSET', hkey, 'priority', DEFAULT_PRIORITY, 'rank', own_member,
               'enqueued_at', own[3] or entry_time(entry))
    redis.call('HDEL', hkey, 'entry')
  end
  redis.call('ZREM', pkey, top[1])
  return ranked_task(top[1]), true
end

-- Whether a limit holds the task back (then it waits, its entry gone, no attempt
-- spent: SCHEDULED for its turn under a rate, or blocked until a slot frees).
local function hold(entry, tid, hkey, fields, bound)
  local verdict, arg = admit(base, role, limits, tid, fields[12] or '', fields[14] and true,
                             now_ms())
  if verdict == 'ok' then
    fields.slots = arg ~= '' and arg or nil
    return false
  end
  redis.call('XACK', stream, GROUP, entry)
  redis.call('XDEL', stream, entry)
  if not fields[9] then redis.call('HSET', hkey, 'enqueued_at', entry_time(entry)) end
  if not fields[13] then count_held(base, role, 1) end
  if verdict == 'rate' then  -- its turn stays reserved (`turn`) until it starts
    schedule(base, tid, hkey, role, arg, false)
    redis.call('HSET', hkey, 'held', 'r', 'turn', arg)
    note_event('held', role, 'SCHEDULED', tid)
  else
    redis.call('RPUSH', base .. 'blocked:' .. arg, tid)
    redis.call('SADD', base .. 'blocking:' .. role, arg)
    redis.call('HSET', hkey, 'held', arg)
    if not bound then redis.call('HDEL', hkey, 'entry') end
    note_event('held', role, 'QUEUED', tid)
  end
  return true
end

for i = 1, #entries, 2 do
  local entry, tid, bound = entries[i], entries[i + 1], false
  if taking then table.insert(out, entry) end
  local owned = taking or #redis.call('XPENDING', stream, GROUP, entry, entry, 1, consumer) > 0
  if owned and tid ~= '' then tid, bound = serve(entry, tid) end
  if not owned then
    table.insert(out, {tid, 0, 'entry ' .. entry .. ' is not pending for ' .. consumer})
  elseif not tid then
    table.insert(out, drop(entry, PLACEHOLDER, '', false))  -- quietly: nothing to say
  elseif tid == '' then
    table.insert(out, drop(entry, tid, 'malformed entry: no id field', true))
  else
    local hkey = task_key(base, tid)
    local fields = redis.call('HMGET', hkey, 'status', 'entry', 'name', 'data', 'depends_on',
                              'failed_deps', 'timeout', 'attempt', 'enqueued_at', 'tick',
                              'worker', 'limit_key', 'held', 'turn', 'progress', 'trace')
    local status = fields[1]
    if not status then
      table.insert(out, drop(entry, tid, 'entry names unknown task ' .. tid, true))
    elseif not STATUSES[status] then
      -- edited by hand into nonsense: fail it (settling its dependents), do not strand it
      local why = corrupt_status(status)
      table.insert(out, drop(entry, tid, why, false))
      fail_corrupt(base, tid, why, '', '', now, 0)
    elseif status == 'RUNNING' and fields[2] == entry and fields[11] == consumer
           and not taking then
      -- this very start again: a retry whose first reply was lost (a dropped connection,
      -- a failover after the write reached the replica). The same attempt, run once.
      table.insert(out, started_item(base, hkey, tid, fields, tonumber(fields[8])))
    elseif status ~= 'QUEUED' or (fields[2] ~= entry and not bound) then
      if ranked then redis.call('HDEL', bkey, entry) end  -- a binding it may have had
      table.insert(out, drop(entry, tid, 'stale entry: task is ' .. status, false))
    elseif not tonumber(fields[8] or '0') then
      local why = 'task hash is corrupt: attempt is not a number'
      table.insert(out, drop(entry, tid, why, false))
      fail_corrupt(base, tid, why, '', '', now, 0)
    elseif limits and hold(entry, tid, hkey, fields, bound) then
      table.insert(out, {tid, 0, ''})  -- held back by a limit: nothing to say
    else
      if fields[13] then count_held(base, role, -1) end
      if fields[13] or fields[14] then redis.call('HDEL', hkey, 'held', 'turn') end
      if fields[15] then redis.call('HDEL', hkey, 'progress', 'progress_info', 'progress_at') end
      local attempt = fields[8] and tonumber(fields[8]) + 1 or '1'  -- '1': no number to format
      local set = {'status', 'RUNNING', 'worker', consumer, 'started_at', now,
                   'attempt', attempt}
      if bound then  -- it waited in the priority zset: it runs on this entry now
        bindings[#bindings + 1] = entry; bindings[#bindings + 1] = tid
        set[#set + 1] = 'entry'; set[#set + 1] = entry
      end
      if not fields[9] then  -- enqueued ready: its entry's id is when
        set[#set + 1] = 'enqueued_at'; set[#set + 1] = entry_time(entry)
      end
      if fields.slots then set[#set + 1] = 'slots'; set[#set + 1] = fields.slots end
      redis.call('HSET', hkey, unpack(set))
      note_event('started', role, 'RUNNING', tid, attempt)
      table.insert(out, started_item(base, hkey, tid, fields, attempt))
    end
  end
end
for i = 1, #bindings, 1000 do
  redis.call('HSET', bkey, unpack(bindings, i, math.min(i + 999, #bindings)))
end
if limits then flush_limits(base, role, now_ms()) end
flush_events(base)
return out
