-- heartbeat: a worker says it is alive and keeps its in-flight entries fresh.
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  worker id, ARGV[2] number of info field/value pairs F,
--          then F pairs (roles, host, pid, concurrency, ...),
--          then pairs: role, entry id  (entries in flight, idle time reset)
-- Returns  the Redis clock in milliseconds
--!include common.lua

local base, wid = KEYS[1], ARGV[1]
local nf = tonumber(ARGV[2])
local now = now_ms()
redis.call('ZADD', base .. 'workers', now, wid)
if nf > 0 then
  redis.call('HSET', base .. 'worker:' .. wid, unpack(ARGV, 3, 2 + 2 * nf))
end
redis.call('HSET', base .. 'worker:' .. wid, 'heartbeat_at', now)
for i = 3 + 2 * nf, #ARGV, 2 do
  redis.call('XCLAIM', stream_key(base, ARGV[i]), GROUP, wid, 0, ARGV[i + 1], 'JUSTID')
end
return now
