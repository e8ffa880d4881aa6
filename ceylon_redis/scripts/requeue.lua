-- requeue: a worker shutting down gives back the entries it will not finish.
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  consumer (worker id), ARGV[2] reason, ARGV[3] dead-letter TTL (s),
--          ARGV[4] n, ARGV[5..4+n] entries it took but never started (given back
--          without counting a crash), then the roles
-- Returns  {requeued, failed}
--!include common.lua
--!include requeue.lua

local base, consumer, reason, dead_ttl = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local now = now_str()
local requeued, failed = 0, 0
local n = tonumber(ARGV[4])
local unstarted = {}
journal.worker = consumer
for i = 5, 4 + n do unstarted[ARGV[i]] = true end
for i = 5 + n, #ARGV do
  if redis.call('EXISTS', stream_key(base, ARGV[i])) == 1 then
    local r, f = requeue_consumer(base, ARGV[i], consumer, reason, now, dead_ttl, unstarted)
    requeued, failed = requeued + r, failed + f
  end
end
flush_events(base)
return {requeued, failed}
