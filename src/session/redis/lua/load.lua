-- load.lua: reads a session and refreshes its idle deadline, for a lookup
-- that found the session due for it (at most once per touch_interval).
--
-- KEYS[1]  the session key
-- ARGV     now, idle_timeout, max_lifetime, touch_interval
--
-- Returns  {'ok', created, last_seen, data, user, ip, groups, remember, browser}
--          (nil for those a session lacks) for a
--          live session (last_seen and the TTL moved on when due);
--          {'rotated'} for the mark of an id a login moved away;
--          nil otherwise (an expired session is deleted on the way).

local now, idle, life, touch = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local r = live(KEYS[1], now, idle, life)
if not r then
  if rotated(KEYS[1], now) then
    return {'rotated'}
  end
  return false
end
if now - r.s >= touch and now > r.s then
  r.s = now
  redis.call('HSET', KEYS[1], 's', now)
  redis.call('EXPIRE', KEYS[1], ttl(r.c, now, r.idle, r.life, now))
end
return record(r)
