-- enqueue: create tasks; queue those whose prerequisites are all settled.
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  graph id ('' for none), ARGV[2] the graph's TTL in seconds,
-- ARGV[3]  number of tasks N, then two arguments per task: its header and its data
--          (msgpack). The header is one string of lines (no field can hold a newline):
--          id, role, name, max_attempts, ttl ('' for the default, 86400 s, which is
--          then not stored), reply_to, backoff (first retry delay, ms), timeout (ms),
--          due (when to run: '+ms' from now or absolute ms on Redis's clock),
--          priority (0-9, higher first; '' for the default, 5), limit key ('' for
--          none: the key a per-key limit of the role counts it under), trace (the
--          producer's W3C traceparent, '' for none),
--          then one line per prerequisite and its policy, alternating
--          (c = cancel this task if it fails, r = run anyway, i = ignore the edge;
--          upper case C R I: the prerequisite lives in another partition, where
--          link.lua registered this task already, and its release comes from a
--          coordinator, or came early and waits in this task's :early hash)
--          max_attempts, backoff, timeout and due may be '': the worker's
--          defaults apply, and the task runs as soon as it is ready.
--          A prerequisite may be a task earlier or later in the same call.
--          One header per task, not one argument per field: redis-py packs each
--          argument on its own, so two cost the client about half what twelve would.
-- Returns  {'OK', ready (queued or scheduled), waiting}
--          {'ERR', 'EXISTS'|'UNKNOWN'|'DEPENDENCY'|'INVALID', detail}; nothing written
--!include common.lua

local OPTIONAL_FIELDS = {'max_attempts', 'reply_to', 'backoff', 'timeout', 'limit_key', 'trace'}
local base, gid, gttl = KEYS[1], ARGV[1], ARGV[2]
local n = tonumber(ARGV[3])
local tasks, in_batch = {}, {}
-- The header's twelve fixed lines, then the rest: '' or "\n<dep>\n<policy>..." pairs.
local HEADER = '^' .. string.rep('([^\n]*)\n', 11) .. '([^\n]*)(.*)$'
for t = 1, n do
  local header = ARGV[2 + 2 * t]
  local id, role, name, max_attempts, ttl, reply_to, backoff, timeout, due, priority,
        limit_key, trace, edges = string.match(header, HEADER)
  if not id or select(2, string.gsub(edges, '\n', '')) % 2 == 1 then
    return {'ERR', 'INVALID', 'task #' .. t .. ' has a malformed header'}
  end
  if priority ~= '' and not string.match(priority, '^%d$') then
    return {'ERR', 'INVALID', 'priority of task ' .. id .. ' must be 0 to 9, not ' .. priority}
  end
  local task = {id = id, role = role, name = name, data = ARGV[3 + 2 * t],
                max_attempts = max_attempts, ttl = ttl, reply_to = reply_to,
                backoff = backoff, timeout = timeout, due = due,
                priority = tonumber(priority) or DEFAULT_PRIORITY, limit_key = limit_key,
                trace = trace}
  task.deps, task.policy = {}, {}
  for dep, policy in string.gmatch(edges, '\n([^\n]*)\n([^\n]*)') do
    local lower = string.lower(policy)
    if lower ~= 'c' and lower ~= 'r' and lower ~= 'i' then
      return {'ERR', 'INVALID', 'unknown failure policy ' .. policy .. ' on ' .. dep}
    end
    if lower ~= policy then
      task.external = task.external or {}
      task.external[dep] = true
    end
    task.deps[#task.deps + 1], task.policy[dep] = dep, lower
  end
  if in_batch[task.id] then
    return {'ERR', 'INVALID', 'task id ' .. task.id .. ' appears twice in one call'}
  end
  in_batch[task.id] = true
  tasks[t] = task
end

-- Validate everything before writing anything.
if gid ~= '' and redis.call('EXISTS', graph_key(base, gid)) == 1 then
  return {'ERR', 'EXISTS', 'graph ' .. gid .. ' already exists'}
end
for _, task in ipairs(tasks) do
  if redis.call('EXISTS', task_key(base, task.id)) == 1 then
    return {'ERR', 'EXISTS', 'task ' .. task.id .. ' already exists'}
  end
  task.pending, task.failed = {}, {}
  for _, dep in ipairs(task.deps) do
    if dep == task.id then
      return {'ERR', 'DEPENDENCY', 'task ' .. task.id .. ' depends on itself'}
    end
    if in_batch[dep] or (task.external and task.external[dep]) then
      table.insert(task.pending, dep)
    else
      local st = redis.call('HGET', task_key(base, dep), 'status')
      if not st then
        return {'ERR', 'UNKNOWN', 'prerequisite ' .. dep .. ' of task ' .. task.id ..
                ' does not exist (never enqueued, or its result expired)'}
      elseif st == 'FAILED' or st == 'CANCELLED' then
        if task.policy[dep] == 'c' then
          return {'ERR', 'DEPENDENCY', 'prerequisite ' .. dep .. ' of task ' .. task.id ..
                  ' is ' .. st}
        elseif task.policy[dep] == 'r' then
          table.insert(task.failed, dep)
        end
      elseif st ~= 'COMPLETED' then
        table.insert(task.pending, dep)
      end
    end
  end
end

local queued, waiting = 0, 0
if gid ~= '' then
  redis.call('HSET', graph_key(base, gid), 'total', n, 'created_at', now_str(), 'ttl', gttl)
end
local roles_seen, ranked = {}, {}
for _, task in ipairs(tasks) do
  local hkey = task_key(base, task.id)
  -- One HSET per task: its fields are gathered first (this is the hot path of enqueue_many).
  local fields = {'role', task.role, 'data', task.data}
  if task.ttl ~= '' then fields[#fields + 1] = 'ttl'; fields[#fields + 1] = task.ttl end
  if task.name ~= '' then fields[#fields + 1] = 'name'; fields[#fields + 1] = task.name end
  for _, field in ipairs(OPTIONAL_FIELDS) do
    if task[field] ~= '' then fields[#fields + 1] = field; fields[#fields + 1] = task[field] end
  end
  local due_at
  if task.due ~= '' then
    local due_ms = tonumber(task.due)
    if string.sub(task.due, 1, 1) == '+' then due_ms = now_ms() + tonumber(string.sub(task.due, 2)) end
    due_at = string.format('%.3f', due_ms / 1000)
    fields[#fields + 1] = 'due_at'; fields[#fields + 1] = due_at
  end
  if #task.deps > 0 then
    fields[#fields + 1] = 'depends_on'; fields[#fields + 1] = table.concat(task.deps, ' ')
    local soft = {}
    for _, dep in ipairs(task.deps) do
      if task.policy[dep] ~= 'c' then table.insert(soft, dep .. '=' .. task.policy[dep]) end
    end
    if #soft > 0 then
      fields[#fields + 1] = 'dep_policy'; fields[#fields + 1] = table.concat(soft, ' ')
    end
  end
  if #task.failed > 0 then
    fields[#fields + 1] = 'failed_deps'; fields[#fields + 1] = table.concat(task.failed, ' ')
  end
  if gid ~= '' then
    fields[#fields + 1] = 'graph'; fields[#fields + 1] = gid
    redis.call('SADD', graph_key(base, gid) .. ':tasks', task.id)
  end
  if not roles_seen[task.role] then
    roles_seen[task.role] = true
    redis.call('SADD', base .. 'roles', task.role)
    ranked[task.role] = redis.call('EXISTS', priority_key(base, task.role)) == 1
  end
  if task.priority ~= DEFAULT_PRIORITY then
    fields[#fields + 1] = 'priority'; fields[#fields + 1] = task.priority
  end
  if #task.pending == 0 and not due_at
     and (ranked[task.role] or task.priority ~= DEFAULT_PRIORITY) then
    -- Prioritized (common.lua): in the role's priority zset, a placeholder on its stream.
    ranked[task.role] = true
    if task.priority == DEFAULT_PRIORITY then
      fields[#fields + 1] = 'priority'; fields[#fields + 1] = task.priority
    end
    fields[#fields + 1] = 'enqueued_at'; fields[#fields + 1] = now_str()
    fields[#fields + 1] = 'status'; fields[#fields + 1] = 'QUEUED'
    fields[#fields + 1] = 'rank'
    fields[#fields + 1] = push_prioritized(base, task.id, task.role, task.priority)
    redis.call('HSET', hkey, unpack(fields))
    note_event('enqueued', task.role, 'QUEUED', task.id)
    queued = queued + 1
  elseif #task.pending == 0 and not due_at then
    -- Ready now: on the stream, and QUEUED, in the same HSET. Neither enqueued_at
    -- nor queued_at is stored: the entry id holds that time (start writes it down).
    -- This is the hot path of enqueue_many, and these tasks' hashes are most of
    -- the memory a backlog takes.
    local entry = redis.call('XADD', stream_key(base, task.role), '*', 'id', task.id)
    fields[#fields + 1] = 'status'; fields[#fields + 1] = 'QUEUED'
    fields[#fields + 1] = 'entry'; fields[#fields + 1] = entry
    redis.call('HSET', hkey, unpack(fields))
    note_event('enqueued', task.role, 'QUEUED', task.id)
    queued = queued + 1
  elseif #task.pending == 0 then
    fields[#fields + 1] = 'enqueued_at'; fields[#fields + 1] = now_str()
    redis.call('HSET', hkey, unpack(fields))
    note_event('enqueued', task.role, release(base, task.id, hkey, task.role, due_at, false),
               task.id)
    queued = queued + 1
  else
    fields[#fields + 1] = 'enqueued_at'; fields[#fields + 1] = now_str()
    redis.call('HSET', hkey, unpack(fields))
    park(base, task.id, hkey, task.role)
    note_event('enqueued', task.role, 'WAITING', task.id)
    for _, dep in ipairs(task.pending) do
      redis.call('HSET', hkey .. ':deps', dep, task.policy[dep])
      if not (task.external and task.external[dep]) then
        redis.call('SADD', task_key(base, dep) .. ':dependents', task.id)
      end
    end
    waiting = waiting + 1
  end
end
-- Releases from other partitions that came before their dependent existed.
for _, task in ipairs(tasks) do
  if task.external then
    local early = redis.call('HGETALL', task_key(base, task.id) .. ':early')
    for k = 1, #early, 2 do
      local st, result = string.match(early[k + 1], '^(%u+)\n(.*)$')
      apply_release(base, task.id, early[k], st, result)
    end
    redis.call('DEL', task_key(base, task.id) .. ':early')
  end
end
flush_events(base)
return {'OK', queued, waiting}
