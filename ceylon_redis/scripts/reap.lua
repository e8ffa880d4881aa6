-- reap: find workers whose heartbeat lapsed and give their tasks back.
--
-- A worker is dead when its heartbeat (score in {P}:workers, Redis clock) is
-- older than the timeout, or when it holds entries of a role stream without
-- being registered at all and has been idle that long. Liveness comes from
-- the heartbeat, never from how long a task has run. Safe to run from any
-- number of processes at once: each step is idempotent.
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  timeout in milliseconds, ARGV[2] dead-letter TTL (seconds)
-- Returns  flat list: worker id, requeued, failed, ... for each worker reaped
--!include common.lua
--!include requeue.lua

local base, timeout, dead_ttl = KEYS[1], tonumber(ARGV[1]), ARGV[2]
local now = now_str()
local cutoff = now_ms() - timeout
local reaped = {}

local function reap(wid, roles)
  local requeued, failed = 0, 0
  for _, role in ipairs(roles) do
    if redis.call('EXISTS', stream_key(base, role)) == 1 then
      local r, f = requeue_consumer(base, role, wid, 'worker ' .. wid .. ' died', now,
                                      dead_ttl)
      requeued, failed = requeued + r, failed + f
    end
  end
  redis.call('ZREM', base .. 'workers', wid)
  redis.call('DEL', base .. 'worker:' .. wid)
  table.insert(reaped, wid)
  table.insert(reaped, requeued)
  table.insert(reaped, failed)
end

for _, wid in ipairs(redis.call('ZRANGEBYSCORE', base .. 'workers', '-inf', cutoff)) do
  local roles = {}
  for role in string.gmatch(redis.call('HGET', base .. 'worker:' .. wid, 'roles') or '', '%S+') do
    table.insert(roles, role)
  end
  if #roles == 0 then roles = redis.call('SMEMBERS', base .. 'roles') end
  reap(wid, roles)
end

-- Consumers holding entries with no registration at all (registry lost or edited).
for _, role in ipairs(redis.call('SMEMBERS', base .. 'roles')) do
  local stream = stream_key(base, role)
  if redis.call('EXISTS', stream) == 1 then
    local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', stream, GROUP)
    if ok then
      for _, c in ipairs(consumers) do
        local info = {}
        for k = 1, #c, 2 do info[c[k]] = c[k + 1] end
        if not redis.call('ZSCORE', base .. 'workers', info['name'])
           and tonumber(info['idle']) > timeout then
          reap(info['name'], {role})
        end
      end
    end
  end
end
flush_events(base)
return reaped
