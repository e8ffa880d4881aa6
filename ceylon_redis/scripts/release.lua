-- release: apply releases read from other partitions' releases streams to
-- dependents in this one (coordinators call it; see apply_release).
--
-- KEYS[1]  this partition's base "{prefix~k}:"
-- ARGV     groups of four: dependent id, prerequisite id, its final status,
--          its output if COMPLETED, else its error
-- Returns  how many tasks the releases ended (dependents cancelled)
--!include common.lua

local base, n = KEYS[1], 0
for i = 1, #ARGV, 4 do
  n = n + apply_release(base, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
end
flush_events(base)
return n
