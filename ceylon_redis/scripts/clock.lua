-- clock: Redis's TIME, read on the node that holds the namespace (on a Cluster, each
-- namespace's scripts run on its own shard's clock, so its readings must come from it).
--
-- KEYS[1]  namespace base "{prefix}:" (routes the call; not read)
-- Returns  {seconds, microseconds}
local t = redis.call('TIME')
return {tonumber(t[1]), tonumber(t[2])}
