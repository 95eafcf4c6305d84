-- login_3_put.lua: step 3 of a login in a Redis Cluster, on the node of
-- the new session: creates the logged-in session. Without an old id there
-- was no step 2, and the change is applied here.
--
-- KEYS[1]  the new session key
-- ARGV     now, idle_timeout, max_lifetime, max_data_bytes, user, data,
--          ip ('' for none), groups ('' for none), remember (seconds, ''
--          for none), browser ('' for none), apply (1: apply the change
--          that follows to the data; 0: the data is final, step 2 applied
--          it), then the change (see apply_change in common.lua)
--
-- Returns  {'ok', created, last_seen, data, user, ip, groups, remember,
--          browser};
--          {'too_large', size, max_data_bytes}, nothing changed.

local now, idle, life, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local data = ARGV[6]
if ARGV[11] == '1' then
  data = apply_change(data, 12)
  if #data > max then
    return {'too_large', #data, max}
  end
end
return put(KEYS[1], now, idle, life, ARGV[5], data, ARGV[7], ARGV[8], ARGV[9], ARGV[10])
