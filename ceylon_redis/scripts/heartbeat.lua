-- heartbeat: a worker says it is alive, keeps its in-flight entries fresh, and gives
-- back entries pending to it that it does not know of (an orphan: its finish or its
-- requeue was lost, as a failover to a replica that never got them loses writes).
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  worker id, ARGV[2] orphan age in ms (an entry pending to this worker, not in
--          flight and idle this long, is given back; 0 checks none), ARGV[3] dead-letter
--          TTL (s), ARGV[4] number of info field/value pairs F, then F pairs (roles, host,
--          pid, concurrency, ...), then triples: role, entry id, task id (in flight, idle
--          time reset)
-- Returns  {the Redis clock in ms, task ids no longer running on this worker (cancelled,
--          or reclaimed from it; its handler should stop), orphans given back}
--!include common.lua
--!include requeue.lua

local base, wid, orphan_ms, dead_ttl = KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3]
local nf = tonumber(ARGV[4])
local now = now_ms()
local wkey = base .. 'worker:' .. wid
journal.worker = wid
redis.call('ZADD', base .. 'workers', now, wid)
if nf > 0 then
  redis.call('HSET', wkey, unpack(ARGV, 5, 4 + 2 * nf))
end
redis.call('HSET', wkey, 'heartbeat_at', now)
local gone, inflight = {}, {}
for i = 5 + 2 * nf, #ARGV, 3 do
  inflight[ARGV[i + 1]] = true
  redis.call('XCLAIM', stream_key(base, ARGV[i]), GROUP, wid, 0, ARGV[i + 1], 'JUSTID')
  local t = redis.call('HMGET', task_key(base, ARGV[i + 2]), 'status', 'worker', 'entry')
  if t[1] ~= 'RUNNING' or t[2] ~= wid or t[3] ~= ARGV[i + 1] then
    table.insert(gone, ARGV[i + 2])
  end
end
local orphans = 0
if orphan_ms > 0 then
  local reason = 'worker ' .. wid .. ' no longer had it (its outcome was lost: a failover?)'
  local stamp = now_str()
  for role in string.gmatch(redis.call('HGET', wkey, 'roles') or '', '%S+') do
    local stream = stream_key(base, role)
    if redis.call('EXISTS', stream) == 1 then
      local ok, pending = pcall(redis.call, 'XPENDING', stream, GROUP, 'IDLE', orphan_ms,
                                '-', '+', 100, wid)
      if ok then
        for _, p in ipairs(pending) do
          if not inflight[p[1]] then
            local r, f = requeue_entry(base, role, p[1], reason, stamp, dead_ttl)
            orphans = orphans + r + f
          end
        end
      end
    end
  end
end
flush_events(base)
return {now, gone, orphans}
