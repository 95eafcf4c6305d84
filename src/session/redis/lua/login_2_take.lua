-- login_2_take.lua: step 2 of a login in a Redis Cluster, on the node of
-- the old session: applies the change to the old session's data (or to
-- the initial data when it is not live), checks the size, and leaves the
-- mark of a moved id in place of the old session.
--
-- KEYS[1]  the old session key
-- ARGV     now, idle_timeout, max_lifetime, max_data_bytes, initial data,
--          then the change (see apply_change in common.lua)
--
-- Returns  {'ok', data, ip or nil}: the data the new session gets, and the
--          old session's client IP;
--          {'too_large', size, max_data_bytes}, nothing changed.

local now, idle, life, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local base, ip = ARGV[5], false
local old = live(KEYS[1], now, idle, life)
if old then
  base = old.d
  ip = old.i
end
local data = apply_change(base, 6)
if #data > max then
  return {'too_large', #data, max}
end
mark_rotated(KEYS[1], now)
return {'ok', data, ip}
