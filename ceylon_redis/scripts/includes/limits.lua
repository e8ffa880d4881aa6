-- Admission under a role's flow-control limits (limits.py), on Redis's clock.
--
-- {P}:limit:<role> holds them: `rate` tasks per `period` ms with a `burst`, and a
-- `concurrency`, for the role as a whole; `key_rate`, `key_period`, `key_burst`,
-- `key_concurrency` for each limit key apart. A rate is a GCRA bucket (a string
-- {P}:bucket:<scope>: the theoretical arrival time, ms, expiring once it is past).
-- A task over a rate reserves its turn in every bucket it needs, so it waits once
-- and starts at that turn without asking again; concurrency slots are common.lua's.

-- The role's limits as numbers by field, or nil when it has none.
local function limit_spec(base, role)
  local raw = redis.call('HGETALL', base .. 'limit:' .. role)
  if #raw == 0 then return nil end
  local spec = {}
  for i = 1, #raw, 2 do spec[raw[i]] = tonumber(raw[i + 1]) end
  return spec
end

local function bucket(base, scope, rate, period, burst, now)
  local key = base .. 'bucket:' .. scope
  local interval = period / rate
  local tat = tonumber(redis.call('GET', key) or '0') or 0
  return {key = key, interval = interval, tat = tat,
          earliest = math.max(now, tat - (burst - 1) * interval)}
end

local function reserve(b, at, now)
  local tat = math.max(b.tat, at) + b.interval
  redis.call('SET', b.key, string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
end

-- Whether task `tid` (limit key `key`, '' for none) may start now. Returns 'ok' and
-- the scopes of the slots it took ('' for none: the caller writes them in `slots`),
-- 'conc' and the scope with no slot free, or 'rate' and the time (ms) of the turn it
-- reserved. `reserved`: it waited for a turn already, so no bucket is asked again.
local function admit(base, role, spec, tid, key, reserved, now)
  local scopes = {}
  if spec.concurrency then
    if redis.call('SCARD', base .. 'running:' .. role) >= spec.concurrency then
      return 'conc', role
    end
    scopes[#scopes + 1] = role
  end
  if key ~= '' and spec.key_concurrency then
    local scope = role .. ':' .. key
    if redis.call('SCARD', base .. 'running:' .. scope) >= spec.key_concurrency then
      return 'conc', scope
    end
    scopes[#scopes + 1] = scope
  end
  if not reserved then
    local buckets, at = {}, now
    if spec.rate then
      buckets[#buckets + 1] = bucket(base, role, spec.rate, spec.period, spec.burst or 1, now)
    end
    if key ~= '' and spec.key_rate then
      buckets[#buckets + 1] = bucket(base, role .. ':' .. key, spec.key_rate,
                                     spec.key_period, spec.key_burst or 1, now)
    end
    for _, b in ipairs(buckets) do at = math.max(at, b.earliest) end
    for _, b in ipairs(buckets) do reserve(b, at, now) end
    if at >= now + 1 then return 'rate', math.ceil(at) end
  end
  for _, scope in ipairs(scopes) do redis.call('SADD', base .. 'running:' .. scope, tid) end
  return 'ok', table.concat(scopes, ' ')
end
