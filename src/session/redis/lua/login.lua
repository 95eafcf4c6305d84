-- login.lua: the whole login in one step, when every key is in one slot
-- (one server, or a key_prefix with a hash tag). The old session's data,
-- with the change applied, goes to a new logged-in session under the new
-- id; the old session (stored or not) gives way to the mark of a moved id;
-- the new id joins the user's set and its tag's set.
--
-- KEYS[1]  the new session key
-- KEYS[2]  the user's set
-- KEYS[3]  the set of the new id's tag
-- KEYS[4]  the old session key (absent when there is no old id)
-- ARGV     now, idle_timeout, max_lifetime, max_data_bytes, user, new id
--          (base64url, the set's member), initial data (used when the old
--          session is not live), ip ('' to keep the old session's),
--          groups ('' for none), remember (seconds, '' for none),
--          browser ('' for none),
--          then the change (see apply_change in common.lua)
--
-- Returns  {'ok', created, last_seen, data, user, ip, groups, remember,
--          browser};
--          {'too_large', size, max_data_bytes}, nothing changed.

local now, idle, life, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local base, ip = ARGV[7], ARGV[8]
if KEYS[4] then
  local old = live(KEYS[4], now, idle, life)
  if old then
    base = old.d
    if ip == '' and old.i then
      ip = old.i
    end
  end
end
local data = apply_change(base, 12)
if #data > max then
  return {'too_large', #data, max}
end
if KEYS[4] then
  mark_rotated(KEYS[4], now)
end
local _, new_life = lifetimes(idle, life, tonumber(ARGV[10]))
index(KEYS[2], ARGV[6], now, new_life)
index(KEYS[3], ARGV[6], now, new_life)
return put(KEYS[1], now, idle, life, ARGV[5], data, ip, ARGV[9], ARGV[10], ARGV[11])
