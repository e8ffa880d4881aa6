-- stats: fold a coordinator's batch of outcome events into the statistics.
--
-- KEYS[1]  namespace base "{prefix}:"
-- ARGV[1]  consumer group of the coordinators, ARGV[2] how many finished tasks
--          to keep listed per role, ARGV[3] seconds the list lives after its
--          last push (the results' TTL), then eight per outcome: entry id, role,
--          status, attempt, wait ms ('' or '-' if it never ran), run ms (likewise),
--          finished at (Unix seconds), task id. An entry holds up to 50 outcomes
--          (finish writes a call's together): its outcomes come one after another,
--          each with the entry's id.
-- Returns  how many outcomes were applied.
-- An entry's outcomes are applied only by the call whose XACK acknowledges it, so
-- each is counted exactly once however many coordinators saw it (one died after
-- reading, another claimed it). Acked entries are deleted.
--
-- {P}:stats:<role> hash: completed, failed, cancelled, retries, wait_sum,
-- run_sum, w<b> / r<b> histogram buckets of wait and run time, m<minute>
-- tasks finished in that minute, M<minute>w<b> / M<minute>r<b> that minute's
-- buckets (the dashboard's latency over the last hour; the coordinator
-- deletes minutes older than an hour). Bucket 0 holds [0, 1) ms; bucket
-- b >= 1 holds [10^((b-1)/10), 10^(b/10)) ms; the last, 71, everything above.
-- Counts are summed over the batch first: one HINCRBY per distinct field.
-- Acked entries are deleted together at the end (the XACK of each, one by one,
-- is what says whether this call applies its outcomes).
--
-- {P}:recent:<role> list: "<C|F|X> <finished at, s> <task id>" of the role's
-- latest finished tasks, newest first, capped at ARGV[2]; {P}:failures:<role>
-- the same of its failed and cancelled ones only (rarer: kept further back).
-- The dashboard's lists by status; each expires with the last results it names.

local base, group = KEYS[1], ARGV[1]
local keep, ttl = math.floor(tonumber(ARGV[2]) or 0), math.max(1, math.floor(tonumber(ARGV[3]) or 86400))
local LETTER = {COMPLETED = 'C', FAILED = 'F', CANCELLED = 'X'}
local events = base .. 'events'
local LAST = 71

local function bucket(ms)
  if ms < 1 then return 0 end
  return math.min(LAST, math.floor(10 * math.log(ms) / math.log(10) + 1e-9) + 1)
end

local function sane(value)
  local n = tonumber(value)
  if n and n == n and n >= 0 and n < 1e15 then return n end
  return nil
end

local sums, order, recent, failures = {}, {}, {}, {}
local function add(role, field, n)
  local t = sums[role]
  if not t then
    t = {}
    sums[role] = t
    recent[role] = {}
    failures[role] = {}
    order[#order + 1] = role
  end
  t[field] = (t[field] or 0) + n
end

-- a wait or run time (ms; nil when the task never ran) into its buckets and sum
local function timing(role, minute, kind, value, total)
  if not value then return end
  local b = bucket(value)
  add(role, kind .. b, 1)
  add(role, 'M' .. string.sub(minute, 2) .. kind .. b, 1)
  add(role, total, math.floor(value))
end

local applied, done, mine, last = 0, {}, false, nil
for i = 4, #ARGV, 8 do
  local entry, role, status, attempt = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  -- numbers checked before the XACK (nothing may fail after it): NaN, inf and
  -- absurd values are dropped, as an absent one is
  local wait_ms, run_ms, at = sane(ARGV[i + 4]), sane(ARGV[i + 5]), sane(ARGV[i + 6]) or 0
  local tid = ARGV[i + 7]
  if entry ~= last then  -- an entry's first outcome: whether this call acknowledges it
    last = entry
    mine = redis.call('XACK', events, group, entry) == 1
    done[#done + 1] = entry
  end
  if mine and role ~= '' then
    local minute = 'm' .. math.floor(at / 60)
    add(role, string.lower(status), 1)
    local a = tonumber(attempt) or 0
    if a > 1 then add(role, 'retries', a - 1) end
    timing(role, minute, 'w', wait_ms, 'wait_sum')
    timing(role, minute, 'r', run_ms, 'run_sum')
    add(role, minute, 1)
    if tid ~= '' then
      local letter = LETTER[status] or '?'
      local item = letter .. ' ' .. math.floor(at) .. ' ' .. tid
      local listed = recent[role]
      listed[#listed + 1] = item
      if letter ~= 'C' then
        listed = failures[role]
        listed[#listed + 1] = item
      end
    end
    applied = applied + 1
  end
end
for j = 1, #done, 1000 do  -- deleted together: one XDEL per thousand, not one each
  redis.call('XDEL', events, unpack(done, j, math.min(#done, j + 999)))
end
local function push(listed, list)
  if keep <= 0 then
    redis.call('DEL', list)
  elseif #listed > 0 then
    local from = math.max(1, #listed - keep + 1)
    for j = from, #listed, 1000 do
      redis.call('LPUSH', list, unpack(listed, j, math.min(#listed, j + 999)))
    end
    redis.call('LTRIM', list, 0, keep - 1)
    redis.call('EXPIRE', list, ttl)
  end
end

for _, role in ipairs(order) do
  local key = base .. 'stats:' .. role
  for field, n in pairs(sums[role]) do
    redis.call('HINCRBY', key, field, n)
  end
  push(recent[role], base .. 'recent:' .. role)
  push(failures[role], base .. 'failures:' .. role)
end
return applied
