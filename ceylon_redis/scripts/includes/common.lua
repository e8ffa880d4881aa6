-- Shared helpers, included at load time by every script that needs them.
-- Every key is built from the namespace base (KEYS[1], "{prefix}:"), so a
-- script only ever touches the one Cluster slot its hash tag names.

local GROUP = 'workers'

local function now_str()
  local t = redis.call('TIME')
  return string.format('%d.%03d', t[1], math.floor(t[2] / 1000))
end

local function now_ms()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end

-- SADD in slices: unpack() of a very long list overflows Lua's C stack.
local function sadd_many(key, members)
  for i = 1, #members, 1000 do
    redis.call('SADD', key, unpack(members, i, math.min(i + 999, #members)))
  end
end

local function task_key(base, id) return base .. 'task:' .. id end
local function stream_key(base, role) return base .. 'stream:' .. role end

-- Put a task on its role stream (status QUEUED); returns the entry id.
local function push_ready(base, id, hkey, role)
  local entry = redis.call('XADD', stream_key(base, role), '*', 'id', id)
  redis.call('HSET', hkey, 'status', 'QUEUED', 'entry', entry)
  return entry
end

-- Tell every client waiting on this task how it ended.
local function notify(hkey, id, status, err, output)
  local reply = redis.call('HGET', hkey, 'reply_to')
  if reply then
    local msg = id .. '\n' .. status .. '\n' .. #err .. '\n' .. err .. output
    for channel in string.gmatch(reply, '%S+') do
      redis.call('PUBLISH', channel, msg)
    end
  end
end

-- Record a final state (COMPLETED, FAILED or CANCELLED) and settle what
-- depends on it: release dependents whose last prerequisite this was, or
-- cancel them, transitively, with the reason. Done here, in the same script
-- as the state change, so no crash can come between the two.
local function finalize(base, id, status, output, err, now)
  local work = {{id, status, output, err}}
  local n = 0
  while #work > 0 do
    local item = table.remove(work)
    local tid, st, out, er = item[1], item[2], item[3], item[4]
    local hkey = task_key(base, tid)
    redis.call('HSET', hkey, 'status', st, 'finished_at', now,
               'success', st == 'COMPLETED' and '1' or '0')
    if out ~= '' then redis.call('HSET', hkey, 'output', out) end
    if er ~= '' then redis.call('HSET', hkey, 'error', er) else redis.call('HDEL', hkey, 'error') end
    redis.call('HDEL', hkey, 'entry')
    local ttl = tonumber(redis.call('HGET', hkey, 'ttl') or '86400')
    redis.call('EXPIRE', hkey, ttl)
    redis.call('DEL', hkey .. ':deps')
    notify(hkey, tid, st, er, out)
    n = n + 1
    local dkey = hkey .. ':dependents'
    local dependents = redis.call('SMEMBERS', dkey)
    redis.call('DEL', dkey)
    for _, dep in ipairs(dependents) do
      local dhkey = task_key(base, dep)
      local dstatus = redis.call('HGET', dhkey, 'status')
      if dstatus == 'WAITING' then
        if st == 'COMPLETED' then
          if redis.call('SREM', dhkey .. ':deps', tid) == 1
             and redis.call('SCARD', dhkey .. ':deps') == 0 then
            push_ready(base, dep, dhkey, redis.call('HGET', dhkey, 'role'))
          end
        else
          local why = 'dependency ' .. tid .. ' ' .. string.lower(st)
          if er ~= '' then why = why .. ': ' .. er end
          table.insert(work, {dep, 'CANCELLED', '', why})
        end
      end
    end
  end
  return n
end
