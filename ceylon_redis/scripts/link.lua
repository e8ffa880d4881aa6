-- link: register a dependent that lives in another partition with its
-- prerequisites in this one, before the dependent is enqueued there.
--
-- KEYS[1]  this partition's base "{prefix~k}:"
-- ARGV[1]  the dependent's partition base, ARGV[2] the dependent's id,
--          then pairs: prerequisite id, policy (c, r or i; see enqueue.lua).
--          Upper case C R I (a graph's retry linking an edge again): never
--          refused; a failed prerequisite is released like any other and the
--          dependent's own policy settles it there.
-- Returns  {'OK'}; or {'UNKNOWN', id} (not in this partition: it may be a
--          graph's task elsewhere) or {'DEPENDENCY', id, status} (failed on a
--          cancel edge), and nothing written. A prerequisite not yet final
--          gets the dependent in its :xdependents, so its finish releases it;
--          one already final is released at once, through the releases stream.
--!include common.lua

local base, to, dep = KEYS[1], ARGV[1], ARGV[2]
local found = {}
for i = 3, #ARGV, 2 do
  local p, policy = ARGV[i], ARGV[i + 1]
  local f = redis.call('HMGET', task_key(base, p), 'status', 'output', 'error')
  if not f[1] then return {'UNKNOWN', p} end
  if (f[1] == 'FAILED' or f[1] == 'CANCELLED') and policy == 'c' then
    return {'DEPENDENCY', p, f[1]}
  end
  found[#found + 1] = {p, f}
end
for _, pf in ipairs(found) do
  local p, f = pf[1], pf[2]
  if f[1] == 'COMPLETED' or f[1] == 'FAILED' or f[1] == 'CANCELLED' then
    redis.call('XADD', base .. 'releases', '*', 'to', to, 't', dep, 'p', p, 's', f[1],
               'o', (f[1] == 'COMPLETED' and f[2] or f[3]) or '')
  else
    redis.call('SADD', task_key(base, p) .. ':xdependents', to .. ' ' .. dep)
  end
end
return {'OK'}
