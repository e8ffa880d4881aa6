-- requeue: a worker shutting down gives back the entries it will not finish.
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  consumer (worker id), ARGV[2] reason, ARGV[3] dead-letter TTL (s),
--          ARGV[4..] roles
-- Returns  {requeued, failed}
--!include common.lua
--!include requeue.lua

local base, consumer, reason, dead_ttl = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local now = now_str()
local requeued, failed = 0, 0
for i = 4, #ARGV do
  if redis.call('EXISTS', stream_key(base, ARGV[i])) == 1 then
    local r, f = requeue_consumer(base, ARGV[i], consumer, reason, now, dead_ttl)
    requeued, failed = requeued + r, failed + f
  end
end
return {requeued, failed}
