-- heartbeat: a worker says it is alive and keeps its in-flight entries fresh.
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  worker id, ARGV[2] number of info field/value pairs F,
--          then F pairs (roles, host, pid, concurrency, ...),
--          then triples: role, entry id, task id (in flight, idle time reset)
-- Returns  {the Redis clock in ms, task ids no longer running on this worker}:
--          cancelled, or reclaimed from it; its handler should stop.
--!include common.lua

local base, wid = KEYS[1], ARGV[1]
local nf = tonumber(ARGV[2])
local now = now_ms()
redis.call('ZADD', base .. 'workers', now, wid)
if nf > 0 then
  redis.call('HSET', base .. 'worker:' .. wid, unpack(ARGV, 3, 2 + 2 * nf))
end
redis.call('HSET', base .. 'worker:' .. wid, 'heartbeat_at', now)
local gone = {}
for i = 3 + 2 * nf, #ARGV, 3 do
  redis.call('XCLAIM', stream_key(base, ARGV[i]), GROUP, wid, 0, ARGV[i + 1], 'JUSTID')
  local t = redis.call('HMGET', task_key(base, ARGV[i + 2]), 'status', 'worker', 'entry')
  if t[1] ~= 'RUNNING' or t[2] ~= wid or t[3] ~= ARGV[i + 1] then
    table.insert(gone, ARGV[i + 2])
  end
end
return {now, gone}
