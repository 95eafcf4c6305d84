-- take_kept.lua: takes a request kept across a sign-in, once: reads and
-- deletes it in one step, so that of two requests racing for it only one
-- gets it (GETDEL does the same from Redis 6.2 on; this runs on any).
-- Stands alone, without common.lua.
--
-- KEYS[1]  the kept request's key
-- ARGV     (none)
--
-- Returns  the value kept (8 bytes of its end, big-endian, then the
--          request), or nil.

local kept = redis.call('GET', KEYS[1])
if kept then
  redis.call('DEL', KEYS[1])
end
return kept
