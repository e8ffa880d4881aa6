-- schedules_due: the schedules whose next tick has come, for a scheduler to claim.
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  most schedules to return
-- Returns  {now (ms, Redis's clock), ms until the next tick not returned (-1: none,
--          0: more are due), then per due schedule: id, next tick (ms), version,
--          cron, tz, every (ms), missed}
-- Read-only; touches only the due schedules and the first one after them, never
-- all of them (an idle second with 10,000 schedules costs two ZRANGEBYSCOREs).

local base, limit = KEYS[1], tonumber(ARGV[1])
local zkey = base .. 'schedules'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', zkey, '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
local out = {now, -1}
for i = 1, #due, 2 do
  local f = redis.call('HMGET', base .. 'schedule:' .. due[i], 'version', 'cron', 'tz', 'every',
                       'missed')
  table.insert(out, due[i])
  table.insert(out, due[i + 1])
  for k = 1, 5 do table.insert(out, f[k] or '') end
end
if #due / 2 >= limit then
  out[2] = 0
else
  local first = redis.call('ZRANGEBYSCORE', zkey, '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  local score = #first > 0 and tonumber(first[2])
  if score and score ~= math.huge then out[2] = score - now end
end
return out
