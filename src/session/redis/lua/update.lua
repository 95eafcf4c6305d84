-- update.lua: applies a data change to a session, creating the session
-- only when the caller asked to and the id is neither expired nor the
-- mark of an id a login moved away.
--
-- KEYS[1]  the session key
-- ARGV     now, idle_timeout, max_lifetime, max_data_bytes,
--          create (1 or 0), created, initial data, ip ('' for none)
--          (the last three used only to create),
--          then the change (see apply_change in common.lua)
--
-- Returns  {'ok', created, last_seen, data, user, ip, groups, remember, browser}
--          (nil for those a session lacks);
--          {'gone'} when there is no session and none may be made;
--          {'too_large', size, max_data_bytes}, nothing changed.

local now, idle, life, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local r, expired = live(KEYS[1], now, idle, life)
local fresh = false
if not r then
  -- An expired session stays ended, even for an update allowed to create,
  -- and an id a login just moved away is not made a session again.
  if expired or ARGV[5] ~= '1' or rotated(KEYS[1], now) then
    return {'gone'}
  end
  fresh = true
  r = {c = tonumber(ARGV[6]), d = ARGV[7], i = ARGV[8] ~= '' and ARGV[8] or nil, idle = idle, life = life}
end
local data = apply_change(r.d, 9)
if #data > max then
  return {'too_large', #data, max}
end
if fresh then
  -- Drops a mark that is over but not yet cleaned by its TTL.
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'c', r.c)
  if r.i then
    redis.call('HSET', KEYS[1], 'i', r.i)
  end
end
redis.call('HSET', KEYS[1], 's', now, 'd', data)
redis.call('EXPIRE', KEYS[1], ttl(r.c, now, r.idle, r.life, now))
r.s, r.d = now, data
return record(r)
