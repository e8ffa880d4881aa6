-- Shared helpers, included at load time by every script that needs them.
-- Every key is built from the namespace base (KEYS[1], "{prefix}:"), so a
-- script only ever touches the one Cluster slot its hash tag names.

-- The caller's cap on the lifecycle stream (Settings.events_maxlen, 0: no events) comes
-- first in ARGV (scripts.Scripts prepends it), ahead of the script's own arguments.
local EVENTS_CAP = tonumber(table.remove(ARGV, 1)) or 0

local GROUP = 'workers'
-- {P}:events' cap, in entries of 1 to 50 outcomes (~45 B each): at most about 225 MB.
local EVENTS_MAXLEN = 100000
local DEAD_MAXLEN = 100000
-- Seconds a result is kept when its task hash has no ttl (protocol.SCRIPT_DEFAULT_TTL).
local DEFAULT_TTL = 86400
-- Every status a task hash may hold (models.TaskStatus); anything else was written by hand,
-- but for CANCELLING, which cancel.lua sets and ends within the call.
local STATUSES = {WAITING = true, SCHEDULED = true, QUEUED = true, RUNNING = true,
                  COMPLETED = true, FAILED = true, CANCELLED = true}

-- Why a task whose `status` field holds no status is failed.
local function corrupt_status(status)
  return "task hash is corrupt: its status field holds '" .. status .. "', not a status"
end

-- How a task's status field was edited by hand: "changed to 'X'" or "deleted".
local function status_edit(status)
  return status and ("changed to '" .. status .. "'") or 'deleted'
end

local clock
-- Redis's clock, read once per script call: {seconds, microseconds}.
local function redis_time()
  if not clock then clock = redis.call('TIME') end
  return clock
end

-- Now as "seconds.milliseconds", the form task hashes keep times in.
local function now_str()
  local t = redis_time()
  return string.format('%d.%03d', t[1], math.floor(t[2] / 1000))
end

local function now_ms()
  local t = redis_time()
  return t[1] * 1000 + math.floor(t[2] / 1000)
end

-- Lifecycle events ({P}:lifecycle): every transition a script makes is noted as it is
-- made and written when the script ends (flush_events), one entry per kind, role and
-- status reached and per EVENTS_PER_ENTRY tasks: e kind, r role, s status, t task ids,
-- then, where the kind has them, a attempts, p progress fractions (one per id, in
-- order), w the worker. A script call thus adds a few entries however many tasks it
-- moves, and an entry stays small (the cap counts entries).
local EVENTS_PER_ENTRY = 16
local journal = {order = {}, groups = {}, worker = nil}

local function note_event(kind, role, status, tid, attempt, fraction)
  if EVENTS_CAP == 0 then return end
  local key = kind .. ' ' .. role .. ' ' .. status
  local g = journal.groups[key]
  if not g then
    g = {kind = kind, role = role, status = status, t = {}, a = {}, p = {}}
    journal.groups[key] = g
    journal.order[#journal.order + 1] = g
  end
  g.t[#g.t + 1] = tid
  if attempt then g.a[#g.a + 1] = attempt end
  if fraction then g.p[#g.p + 1] = fraction end
end

-- Final outcomes for the events stream the coordinators consume ({P}:events), only
-- once a coordinator has created it, so a queue without one stores nothing. Noted as
-- they happen and written by flush_events, one entry per role and OUTCOMES_PER_ENTRY
-- outcomes: r role, f finished at, then space-separated, one per task in order:
-- t ids, s statuses, a attempts, w wait ms and x run ms ('-' when it never ran).
local OUTCOMES_PER_ENTRY = 50
local events_exist
local outcomes = {order = {}, groups = {}}
local function emit_event(base, id, role, status, attempt, queued_at, started_at, now)
  if events_exist == nil then events_exist = redis.call('EXISTS', base .. 'events') == 1 end
  if not events_exist then return end
  local wait_ms, run_ms = '-', '-'  -- unless an attempt of it ran (queued_at, started_at)
  if queued_at and started_at then
    wait_ms = string.format('%d', math.max(0, (tonumber(started_at) - tonumber(queued_at)) * 1000))
    run_ms = string.format('%d', math.max(0, (tonumber(now) - tonumber(started_at)) * 1000))
  end
  local key = role .. ' ' .. now
  local g = outcomes.groups[key]
  if not g then
    g = {role = role, now = now, t = {}, s = {}, a = {}, w = {}, x = {}}
    outcomes.groups[key] = g
    outcomes.order[#outcomes.order + 1] = g
  end
  local n = #g.t + 1
  g.t[n], g.s[n], g.a[n], g.w[n], g.x[n] = id, status, attempt or '0', wait_ms, run_ms
end

local function flush_outcomes(base)
  for _, g in ipairs(outcomes.order) do
    for i = 1, #g.t, OUTCOMES_PER_ENTRY do
      local j = math.min(i + OUTCOMES_PER_ENTRY - 1, #g.t)
      redis.call('XADD', base .. 'events', 'MAXLEN', '~', EVENTS_MAXLEN, '*',
                 't', table.concat(g.t, ' ', i, j), 'r', g.role,
                 's', table.concat(g.s, ' ', i, j), 'a', table.concat(g.a, ' ', i, j),
                 'w', table.concat(g.w, ' ', i, j), 'x', table.concat(g.x, ' ', i, j),
                 'f', g.now)
    end
  end
  outcomes.order, outcomes.groups = {}, {}
end

-- Write the lifecycle entries noted, and the outcomes (flush_outcomes).
local function flush_events(base)
  flush_outcomes(base)
  for _, g in ipairs(journal.order) do
    for i = 1, #g.t, EVENTS_PER_ENTRY do
      local j = math.min(i + EVENTS_PER_ENTRY - 1, #g.t)
      local fields = {'e', g.kind, 'r', g.role, 's', g.status,
                      't', table.concat(g.t, ' ', i, j)}
      if #g.a > 0 then
        fields[#fields + 1] = 'a'; fields[#fields + 1] = table.concat(g.a, ' ', i, j)
      end
      if #g.p > 0 then
        fields[#fields + 1] = 'p'; fields[#fields + 1] = table.concat(g.p, ' ', i, j)
      end
      if journal.worker then fields[#fields + 1] = 'w'; fields[#fields + 1] = journal.worker end
      redis.call('XADD', base .. 'lifecycle', 'MAXLEN', '~', EVENTS_CAP, '*', unpack(fields))
    end
  end
  journal.order, journal.groups = {}, {}
end

-- SADD in slices: unpack() of a very long list overflows Lua's C stack.
local function sadd_many(key, members)
  for i = 1, #members, 1000 do
    redis.call('SADD', key, unpack(members, i, math.min(i + 999, #members)))
  end
end

local function task_key(base, id) return base .. 'task:' .. id end
local function stream_key(base, role) return base .. 'stream:' .. role end
local function waiting_key(base, role) return base .. 'waiting:' .. role end
local function graph_key(base, gid) return base .. 'graph:' .. gid end
local function scheduled_key(base, role) return base .. 'scheduled:' .. role end

-- Priorities, 0 to 9, higher first. While no task of a role waits at another level
-- than DEFAULT_PRIORITY, each queued task has a stream entry of its own (`id` = its id).
-- Otherwise every newly queued task of the role waits in the role's priority zset
-- (best first) and the stream gets a placeholder (`id` = PLACEHOLDER): whichever
-- entry a worker reads serves the best waiting task (start.lua), and
-- `{P}:bound:<role>` (entry -> task id) says which, for a reclaim.
local DEFAULT_PRIORITY = 5
local PLACEHOLDER = '~'
local function priority_key(base, role) return base .. 'priority:' .. role end
local function bound_key(base, role) return base .. 'bound:' .. role end

-- A task's member of the priority zset, scored 9 - priority: the entry id that
-- queued it, zero-padded so that members of one score sort first come, first
-- served, then its id. The task hash keeps it (`rank`) for a cancel.
local function rank_member(entry, id)
  local ms, seq = string.match(entry, '^(%d+)-(%d+)$')
  return string.format('%013d-%010d:', tonumber(ms), tonumber(seq)) .. id
end

local function ranked_task(member) return string.match(member, ':(.*)$') end

-- Whether a task of `priority` queued now on `role` waits in the priority zset.
local function prioritized(base, role, priority)
  return priority ~= DEFAULT_PRIORITY or redis.call('EXISTS', priority_key(base, role)) == 1
end

-- Queue a task in the role's priority zset, with a placeholder on its stream;
-- returns its member (`rank`).
local function push_prioritized(base, id, role, priority)
  local entry = redis.call('XADD', stream_key(base, role), '*', 'id', PLACEHOLDER)
  local member = rank_member(entry, id)
  redis.call('ZADD', priority_key(base, role), 9 - priority, member)
  return member
end

-- "seconds.milliseconds" of a stream entry id ("<ms>-<seq>"): when it was added.
local function entry_time(entry)
  local ms = tonumber(string.match(entry, '^(%d+)'))
  return string.format('%d.%03d', math.floor(ms / 1000), ms % 1000)
end

-- A prioritized task no longer waits (cancelled): delete a placeholder no worker has
-- read yet, if one is among the stream's last 100 entries (else a worker drops it).
local function drop_placeholder(base, role)
  local stream = stream_key(base, role)
  for _, e in ipairs(redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 100)) do
    if e[2][1] == 'id' and e[2][2] == PLACEHOLDER then
      -- no group yet (no worker ever read the role): nothing was delivered
      local ok, read = pcall(redis.call, 'XPENDING', stream, GROUP, e[1], e[1], 1)
      if not ok or #read == 0 then
        redis.call('XDEL', stream, e[1])
        return
      end
    end
  end
end

-- Put a task on its role stream (status QUEUED); returns the entry id.
-- `was_waiting`: it leaves the role's set of WAITING tasks.
-- A task enqueued ready has no enqueued_at: its first entry's id tells the time,
-- so it is written down here, before that entry is replaced.
-- A prioritized task (see above) has no entry of its own while QUEUED.
local function push_ready(base, id, hkey, role, was_waiting)
  local old = redis.call('HMGET', hkey, 'entry', 'enqueued_at', 'priority')
  if old[1] and not old[2] then
    redis.call('HSET', hkey, 'enqueued_at', entry_time(old[1]))
  end
  local priority = tonumber(old[3] or '') or DEFAULT_PRIORITY
  if prioritized(base, role, priority) then
    redis.call('HSET', hkey, 'status', 'QUEUED', 'queued_at', now_str(), 'priority', priority,
               'rank', push_prioritized(base, id, role, priority))
    if old[1] then redis.call('HDEL', hkey, 'entry') end
  else
    local entry = redis.call('XADD', stream_key(base, role), '*', 'id', id)
    redis.call('HSET', hkey, 'status', 'QUEUED', 'entry', entry, 'queued_at', now_str())
  end
  if was_waiting then redis.call('SREM', waiting_key(base, role), id) end
end

-- Park a task until its prerequisites settle (status WAITING).
local function park(base, id, hkey, role)
  redis.call('HSET', hkey, 'status', 'WAITING')
  redis.call('SADD', waiting_key(base, role), id)
end

-- Flow control (limits.lua admits): a task that took concurrency slots names their
-- scopes in `slots` (`<role>` and/or `<role>:<limit key>`, space-separated); each is a
-- set {P}:running:<scope> of task ids. A task held back waits with `held` set: 'r'
-- (SCHEDULED until the turn it reserved from a rate), a scope (QUEUED, in the list
-- {P}:blocked:<scope>, until one of its slots frees), or 'c' (released from that list,
-- QUEUED again); {P}:held counts them per role. A reserved turn (`turn`, ms) is kept
-- through a wait for a slot, so a task asks a rate once.
local function count_held(base, role, by)
  if redis.call('HINCRBY', base .. 'held', role, by) <= 0 then
    redis.call('HDEL', base .. 'held', role)
  end
end

-- Queue again, for another look at its limits, the oldest task waiting in `blocked`.
local function release_blocked(base, blocked, scope)
  while true do
    local id = redis.call('LPOP', blocked)
    if not id then return false end
    local hkey = task_key(base, id)
    local f = redis.call('HMGET', hkey, 'status', 'held', 'role')
    if f[1] == 'QUEUED' and f[2] == scope then
      redis.call('HSET', hkey, 'held', 'c')
      push_ready(base, id, hkey, f[3])
      return true
    end
  end
end

-- Slots given back, by scope, while `slot_batch.on` (finish.lua, many outcomes per
-- call): flush_slots() gives them back together before the script returns.
local slot_batch = {on = false, freed = {}}

local function give_back(base, scope, ids)
  local running = base .. 'running:' .. scope
  for i = 1, #ids, 1000 do
    redis.call('SREM', running, unpack(ids, i, math.min(i + 999, #ids)))
  end
  local blocked = base .. 'blocked:' .. scope
  for _ = 1, #ids do
    if not release_blocked(base, blocked, scope) then break end
  end
end

local function flush_slots(base)
  for scope, ids in pairs(slot_batch.freed) do give_back(base, scope, ids) end
  slot_batch.freed = {}
end

-- A task stops running: its slots go back, and each lets one blocked task in. The
-- caller deletes the task's `slots` field (with others, in one HDEL).
local function leave_slots(base, tid, slots)
  for scope in string.gmatch(slots, '%S+') do
    if slot_batch.on then
      slot_batch.freed[scope] = slot_batch.freed[scope] or {}
      table.insert(slot_batch.freed[scope], tid)
    else
      give_back(base, scope, {tid})
    end
  end
end

-- Hold a task until `due_ms` on Redis's clock (status SCHEDULED); the
-- scheduler (promote.lua) queues it then.
local function schedule(base, id, hkey, role, due_ms, was_waiting)
  redis.call('ZADD', scheduled_key(base, role), due_ms, id)
  redis.call('HSET', hkey, 'status', 'SCHEDULED', 'due_at', string.format('%.3f', due_ms / 1000))
  redis.call('HDEL', hkey, 'entry')
  if was_waiting then redis.call('SREM', waiting_key(base, role), id) end
end

-- A task whose prerequisites are settled: queued now, or scheduled when the
-- time it was enqueued to run at (`due_at`, seconds) is still ahead. Returns the
-- status it now has; a task that was waiting notes its release.
local function release(base, id, hkey, role, due_at, was_waiting)
  local due_ms = due_at and math.floor(tonumber(due_at) * 1000)
  local status = 'QUEUED'
  if due_ms and due_ms > now_ms() then
    schedule(base, id, hkey, role, due_ms, was_waiting)
    status = 'SCHEDULED'
  else
    push_ready(base, id, hkey, role, was_waiting)
  end
  if was_waiting then note_event('released', role, status, id) end
  return status
end

-- Tell every client waiting on this task how it ended.
local function notify(hkey, id, status, err, output, reply)
  if reply then
    local msg = id .. '\n' .. status .. '\n' .. #err .. '\n' .. err .. output
    for channel in string.gmatch(reply, '%S+') do
      redis.call('PUBLISH', channel, msg)
    end
  end
end

-- Put a FAILED task on the dead-letter stream with why it was given up and
-- its last error. Its hash outlives the result TTL (`dead_ttl` seconds, if
-- longer) so that it can be inspected and retried; a graph's tasks keep the
-- graph's TTL.
local function dead_letter(base, id, reason, err, now, dead_ttl)
  local hkey = task_key(base, id)
  local f = redis.call('HMGET', hkey, 'role', 'name', 'attempt', 'graph', 'ttl')
  note_event('dead', f[1] or '', 'FAILED', id, f[3] or '0')
  local entry = redis.call('XADD', base .. 'dead', 'MAXLEN', '~', DEAD_MAXLEN, '*',
                           'task', id, 'role', f[1] or '', 'name', f[2] or '',
                           'reason', reason, 'error', err or '', 'attempts', f[3] or '0',
                           'at', now)
  redis.call('HSET', hkey, 'dead', entry)
  local ttl = tonumber(dead_ttl or '0')
  if not f[4] and ttl > (tonumber(f[5] or '') or DEFAULT_TTL) then
    redis.call('EXPIRE', hkey, ttl)
    redis.call('EXPIRE', hkey .. ':xout', ttl)
  end
  return entry
end

-- Clear a final task's outcome so that it runs again from attempt 0; its dead
-- letter, if any, is removed.
local function reset_for_rerun(base, hkey)
  local dead = redis.call('HGET', hkey, 'dead')
  if dead then redis.call('XDEL', base .. 'dead', dead) end
  -- (`success`: a field finalize wrote before 2026-12-04, in hashes still kept)
  redis.call('HDEL', hkey, 'error', 'output', 'success', 'finished_at', 'entry', 'worker',
             'started_at', 'crashes', 'dead', 'due_at', 'progress', 'progress_info',
             'progress_at')
  redis.call('HSET', hkey, 'attempt', 0)
end

-- Count a graph task's final state; when it was the graph's last, expire all
-- of the graph's keys together.
local function graph_settled(base, gid, status)
  local gkey = graph_key(base, gid)
  redis.call('HINCRBY', gkey, string.lower(status), 1)
  local g = redis.call('HMGET', gkey, 'total', 'completed', 'failed', 'cancelled', 'ttl')
  local done = tonumber(g[2] or '0') + tonumber(g[3] or '0') + tonumber(g[4] or '0')
  if done < tonumber(g[1] or '0') then return end
  redis.call('HSET', gkey, 'finished_at', now_str())
  local ttl = tonumber(g[5] or '') or DEFAULT_TTL
  for _, tid in ipairs(redis.call('SMEMBERS', gkey .. ':tasks')) do
    redis.call('EXPIRE', task_key(base, tid), ttl)
  end
  redis.call('EXPIRE', gkey, ttl)
  redis.call('EXPIRE', gkey .. ':tasks', ttl)
end

-- How a dependent treats the failure of one prerequisite: the policy letter
-- its :deps hash holds for that edge. c = cancel it, r = run it anyway (the
-- failure listed in failed_deps), i = ignore the edge.
local function edge_policy(dhkey, prerequisite)
  return redis.call('HGET', dhkey .. ':deps', prerequisite) or 'c'
end

-- Settle one WAITING dependent `dep` of `tid`, which ended `st` (error `er`):
-- release it if this was its last prerequisite, or follow its edge's policy on
-- a failure; a dependent to cancel is added to `work` for finalize. Doing it
-- twice changes nothing (HDEL of a settled edge is 0), so releases from other
-- partitions may be applied more than once.
local function settle_dependent(base, dep, tid, st, er, work)
  local dhkey = task_key(base, dep)
  local status = redis.call('HGET', dhkey, 'status')
  if status ~= 'WAITING' then
    -- a waiting task edited by hand into nonsense ends here, instead of waiting forever
    -- (CANCELLING: cancel.lua's own, while it cancels this one too)
    if status and status ~= 'CANCELLING' and not STATUSES[status]
       and redis.call('HEXISTS', dhkey .. ':deps', tid) == 1 then
      table.insert(work, {dep, 'FAILED', '', corrupt_status(status), false})
    end
    return
  end
  if redis.call('HEXISTS', dhkey .. ':deps', tid) == 0 then return end
  local policy = st == 'COMPLETED' and 'ok' or edge_policy(dhkey, tid)
  if policy == 'c' then
    local why = 'dependency ' .. tid .. ' ' .. string.lower(st)
    if er ~= '' then why = why .. ': ' .. er end
    table.insert(work, {dep, 'CANCELLED', '', why, false})
    return
  end
  if policy == 'r' then
    local failed = redis.call('HGET', dhkey, 'failed_deps')
    redis.call('HSET', dhkey, 'failed_deps', failed and (failed .. ' ' .. tid) or tid)
  end
  redis.call('HDEL', dhkey .. ':deps', tid)
  if redis.call('HLEN', dhkey .. ':deps') == 0 then
    local d = redis.call('HMGET', dhkey, 'role', 'due_at')
    release(base, dep, dhkey, d[1], d[2], true)
  end
end

-- Tell the dependents of `tid` that live in other partitions (its :xdependents,
-- members "<their base> <id>") how it ended: one entry each on this partition's
-- releases stream, which coordinators apply there (release.lua). `result` is
-- the output of a completed task, else its error.
local function release_elsewhere(base, hkey, tid, st, result)
  local xkey = hkey .. ':xdependents'
  local members = redis.call('SMEMBERS', xkey)
  if #members == 0 then return end
  redis.call('DEL', xkey)
  for _, m in ipairs(members) do
    local to, dep = string.match(m, '^(%S+) (%S+)$')
    redis.call('XADD', base .. 'releases', '*', 'to', to, 't', dep, 'p', tid, 's', st,
               'o', result)
  end
end

-- Settle the dependents of `tid`, which ended `st` (error `er`, output `out`), here and
-- in other partitions; a dependent to cancel is added to `work`. One look at both sets
-- for the common task that has none.
local function settle_dependents(base, tid, st, er, out, work)
  local hkey = task_key(base, tid)
  local dkey = hkey .. ':dependents'
  if redis.call('EXISTS', dkey, hkey .. ':xdependents') == 0 then return end
  local dependents = redis.call('SMEMBERS', dkey)
  redis.call('DEL', dkey)
  for _, dep in ipairs(dependents) do
    settle_dependent(base, dep, tid, st, er, work)
  end
  release_elsewhere(base, hkey, tid, st, st == 'COMPLETED' and out or er)
end

-- While `dep_batch.on`, finalize leaves the dependents of the tasks it ends to
-- flush_dependents (tid, status, error, output: four items each, in `items`).
local dep_batch = {on = false, items = {}}

-- Record a final state (COMPLETED, FAILED or CANCELLED) and settle what
-- depends on it: release dependents whose last prerequisite this was, or
-- cancel them, transitively, with the reason. Done here, in the same script
-- as the state change, so no crash can come between the two. `ran` is true
-- when a worker's attempt ended here (its wait and run time are measured).
local FINAL_FIELDS = {'role', 'ttl', 'graph', 'reply_to', 'queued_at', 'started_at',
                      'attempt', 'status', 'enqueued_at', 'entry', 'priority', 'rank', 'held',
                      'slots', 'depends_on', 'progress'}
-- finish.lua's read: FINAL_FIELDS, then the worker (17).
local FINISH_FIELDS = {unpack(FINAL_FIELDS)}
FINISH_FIELDS[#FINISH_FIELDS + 1] = 'worker'

-- `read`: the task's FINAL_FIELDS if the caller read them already (HMGET, unchanged since).
local function finalize(base, id, status, output, err, now, ran, read)
  local work = {{id, status, output, err, ran}}
  local n = 0
  while #work > 0 do
    local item = table.remove(work)
    local tid, st, out, er = item[1], item[2], item[3], item[4]
    local hkey = task_key(base, tid)
    local f = read or redis.call('HMGET', hkey, unpack(FINAL_FIELDS))
    read = nil
    local fields = {'status', st, 'finished_at', now}  -- no `success`: the status says it
    if f[16] and st == 'COMPLETED' then  -- it reported progress: done is all of it
      fields[#fields + 1] = 'progress'; fields[#fields + 1] = '1'
    end
    if not f[9] and f[10] then  -- never started, enqueued ready: keep when, as the entry goes
      f[9] = entry_time(f[10])
      fields[#fields + 1] = 'enqueued_at'; fields[#fields + 1] = f[9]
    end
    f[5] = f[5] or f[9]
    if out ~= '' then fields[#fields + 1] = 'output'; fields[#fields + 1] = out end
    local gone = {'entry', 'slots', 'held', 'turn'}
    if er ~= '' then
      fields[#fields + 1] = 'error'; fields[#fields + 1] = er
    else
      gone[#gone + 1] = 'error'
    end
    if f[16] and st == 'COMPLETED' then gone[#gone + 1] = 'progress_info' end
    if f[4] then gone[#gone + 1] = 'reply_to' end  -- told below; a later watch sees it final
    redis.call('HDEL', hkey, unpack(gone))
    redis.call('HSET', hkey, unpack(fields))
    -- A standalone task keeps the outputs it was given from other partitions
    -- (:xout) as long as itself, for a dead-letter retry; a graph's retry links again.
    -- Only a task with prerequisites has :xout, :deps or :early.
    local deps = f[15]
    if f[3] then
      graph_settled(base, f[3], st)
      if deps then redis.call('DEL', hkey .. ':xout') end
    else
      local ttl = tonumber(f[2] or '') or DEFAULT_TTL
      redis.call('EXPIRE', hkey, ttl)
      if deps then redis.call('EXPIRE', hkey .. ':xout', ttl) end
    end
    if deps then redis.call('DEL', hkey .. ':deps', hkey .. ':early') end
    if f[8] == 'WAITING' or f[8] == 'CANCELLING' then
      redis.call('SREM', waiting_key(base, f[1] or ''), tid)
    elseif f[8] == 'SCHEDULED' then
      redis.call('ZREM', scheduled_key(base, f[1] or ''), tid)
    elseif f[8] == 'QUEUED' and f[13] and f[13] ~= 'r' and f[13] ~= 'c' then
      redis.call('LREM', base .. 'blocked:' .. f[13], 1, tid)
    elseif f[8] == 'QUEUED' and f[12] and not f[10] then
      redis.call('ZREM', priority_key(base, f[1] or ''), f[12])
      drop_placeholder(base, f[1] or '')
    elseif f[8] and not STATUSES[f[8]] then  -- edited by hand: it may be in either
      redis.call('SREM', waiting_key(base, f[1] or ''), tid)
      redis.call('ZREM', scheduled_key(base, f[1] or ''), tid)
    end
    if f[13] then count_held(base, f[1] or '', -1) end
    if f[14] then leave_slots(base, tid, f[14]) end
    notify(hkey, tid, st, er, out, f[4])
    emit_event(base, tid, f[1] or '', st, f[7], item[5] and f[5], item[5] and f[6], now)
    note_event(string.lower(st), f[1] or '', st, tid, f[7] or '0')
    n = n + 1
    if dep_batch.on then  -- looked at for the whole batch at once (flush_dependents)
      local b, k = dep_batch.items, #dep_batch.items
      b[k + 1] = tid; b[k + 2] = st; b[k + 3] = er; b[k + 4] = out
    else
      settle_dependents(base, tid, st, er, out, work)
    end
  end
  return n
end

-- The dependents of the tasks finalize ended while `dep_batch.on` (finish.lua): one
-- EXISTS per 500 tasks finds whether any has some, the common batch having none.
local function flush_dependents(base, now)
  local b = dep_batch.items
  dep_batch.on, dep_batch.items = false, {}
  for i = 1, #b, 2000 do
    local last = math.min(i + 1999, #b)
    local keys = {}
    for j = i, last, 4 do
      local hkey = task_key(base, b[j])
      keys[#keys + 1] = hkey .. ':dependents'
      keys[#keys + 1] = hkey .. ':xdependents'
    end
    if redis.call('EXISTS', unpack(keys)) > 0 then
      for j = i, last, 4 do
        local work = {}
        settle_dependents(base, b[j], b[j + 1], b[j + 2], b[j + 3], work)
        for _, w in ipairs(work) do finalize(base, w[1], w[2], w[3], w[4], now, w[5]) end
      end
    end
  end
end

-- End a task whose hash was edited by hand into a state no script can go on from
-- (`why` names the field): FAILED with `why` as its error, its dependents settled, and
-- dead-lettered with `err` (its attempt's error, if one ran), so that it is seen and can
-- be retried. `ran`: as for finalize.
local function fail_corrupt(base, tid, why, output, err, now, dead_ttl, ran)
  finalize(base, tid, 'FAILED', output or '', why, now, ran)
  return dead_letter(base, tid, why, err or '', now, dead_ttl)
end

-- Apply a release from another partition: prerequisite `p` of task `dep` ended
-- `st`, with `result` its output if it completed, else its error. A dependent
-- not enqueued yet keeps it in its :early hash, which its enqueue applies.
-- Idempotent: an edge already settled is left alone. Returns tasks it ended.
local function apply_release(base, dep, p, st, result)
  local dhkey = task_key(base, dep)
  local status = redis.call('HGET', dhkey, 'status')
  if not status then
    redis.call('HSET', dhkey .. ':early', p, st .. '\n' .. result)
    redis.call('EXPIRE', dhkey .. ':early', DEFAULT_TTL)
    return 0
  end
  if status ~= 'WAITING' or redis.call('HEXISTS', dhkey .. ':deps', p) == 0 then return 0 end
  -- What start hands the handler: the output of a completed prerequisite, the
  -- error (field '!<id>') of a failed one.
  redis.call('HSET', dhkey .. ':xout', st == 'COMPLETED' and p or ('!' .. p), result)
  local work = {}
  settle_dependent(base, dep, p, st, st == 'COMPLETED' and '' or result, work)
  local n = 0
  for _, w in ipairs(work) do n = n + finalize(base, w[1], w[2], w[3], w[4], now_str(), false) end
  return n
end
