-- Admission under a role's flow-control limits (limits.py), on Redis's clock.
--
-- {P}:limit:<role> holds them: `rate` tasks per `period` ms with a `burst`, and a
-- `concurrency`, for the role as a whole; `key_rate`, `key_period`, `key_burst`,
-- `key_concurrency` for each limit key apart. A rate is a GCRA bucket (a string
-- {P}:bucket:<scope>: the theoretical arrival time, ms, expiring once it is past).
-- A task over a rate reserves its turn in every bucket it needs, so it waits once
-- and starts at that turn without asking again; concurrency slots are common.lua's.
-- Within one call each bucket and slot count is read once and written once, at
-- flush_limits(), which the caller runs before it returns.

-- The role's limits as numbers by field, or nil when it has none.
local function limit_spec(base, role)
  local raw = redis.call('HGETALL', base .. 'limit:' .. role)
  if #raw == 0 then return nil end
  local spec = {}
  for i = 1, #raw, 2 do spec[raw[i]] = tonumber(raw[i + 1]) end
  return spec
end

local buckets, counts, taken = {}, {}, {}

local function bucket(base, scope, rate, period, burst, now)
  local b = buckets[scope]
  if not b then
    b = {key = base .. 'bucket:' .. scope, interval = period / rate, burst = burst,
         tat = tonumber(redis.call('GET', base .. 'bucket:' .. scope) or '0') or 0}
    buckets[scope] = b
  end
  return b, math.max(now, b.tat - (b.burst - 1) * b.interval)
end

-- Tasks holding a slot of `scope` now, those this call admitted included.
local function slots_used(base, scope)
  if not counts[scope] then counts[scope] = redis.call('SCARD', base .. 'running:' .. scope) end
  return counts[scope]
end

-- Whether task `tid` (limit key `key`, '' for none) may start now. Returns 'ok' and
-- the scopes of the slots it took ('' for none: the caller writes them in `slots`),
-- 'conc' and the scope with no slot free, or 'rate' and the time (ms) of the turn it
-- reserved. `reserved`: it waited for a turn already, so no bucket is asked again.
local function admit(base, role, spec, tid, key, reserved, now)
  local scopes = {}
  if spec.concurrency then
    if slots_used(base, role) >= spec.concurrency then return 'conc', role end
    scopes[#scopes + 1] = role
  end
  if key ~= '' and spec.key_concurrency then
    local scope = role .. ':' .. key
    if slots_used(base, scope) >= spec.key_concurrency then return 'conc', scope end
    scopes[#scopes + 1] = scope
  end
  if not reserved then
    local needed, at = {}, now
    if spec.rate then
      local b, earliest = bucket(base, role, spec.rate, spec.period, spec.burst or 1, now)
      needed[#needed + 1], at = b, math.max(at, earliest)
    end
    if key ~= '' and spec.key_rate then
      local b, earliest = bucket(base, role .. ':' .. key, spec.key_rate, spec.key_period,
                                 spec.key_burst or 1, now)
      needed[#needed + 1], at = b, math.max(at, earliest)
    end
    for _, b in ipairs(needed) do
      b.tat, b.dirty = math.max(b.tat, at) + b.interval, true
    end
    if at >= now + 1 then return 'rate', math.ceil(at) end
  end
  for _, scope in ipairs(scopes) do
    counts[scope] = counts[scope] + 1
    taken[scope] = taken[scope] or {}
    table.insert(taken[scope], tid)
  end
  return 'ok', table.concat(scopes, ' ')
end

-- Write what admit() changed: each bucket's turn, each scope's new slot holders.
local function flush_limits(base, role, now)
  local written = {}
  for scope, b in pairs(buckets) do
    if b.dirty then
      redis.call('SET', b.key, string.format('%.3f', b.tat), 'PX',
                 math.ceil(b.tat - now) + 1000)
      written[#written + 1] = scope
    end
  end
  -- which buckets the role has, so that a change of its rates can reset them
  if #written > 0 then sadd_many(base .. 'buckets:' .. role, written) end
  for scope, ids in pairs(taken) do sadd_many(base .. 'running:' .. scope, ids) end
end
