-- watch: a client subscribes a reply channel to a task, or learns it is final.
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  reply channel, then task ids
-- Returns  per task {status, output, error}; status false for an unknown task.
--          A task not yet final gets the channel added to its reply_to, so
--          its finish will publish there: no completion can be missed.
--!include common.lua

local base, channel = KEYS[1], ARGV[1]
local out = {}
for i = 2, #ARGV do
  local hkey = task_key(base, ARGV[i])
  local f = redis.call('HMGET', hkey, 'status', 'output', 'error', 'reply_to')
  if f[1] and f[1] ~= 'COMPLETED' and f[1] ~= 'FAILED' and f[1] ~= 'CANCELLED' then
    local reply = f[4] or ''
    if not string.find(' ' .. reply .. ' ', ' ' .. channel .. ' ', 1, true) then
      redis.call('HSET', hkey, 'reply_to', (reply == '' and '' or reply .. ' ') .. channel)
    end
  end
  table.insert(out, {f[1], f[2], f[3]})
end
return out
