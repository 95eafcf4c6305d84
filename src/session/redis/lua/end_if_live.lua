-- end_if_live.lua: ends a signed-in session that is still live at the
-- proxy's clock, for an operator who names it by its tag. The tag's set is
-- only an index and may name a key that no longer holds such a session
-- (ended, expired, or the mark of a moved id), so the key itself is asked.
--
-- KEYS[1]  the session key
-- ARGV     now, idle_timeout, max_lifetime
--
-- Returns  the user of the session ended; nil when there was no live
--          signed-in session (an expired one is deleted on the way).

local r = live(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
if not r or not r.u then
  return false
end
redis.call('DEL', KEYS[1])
return r.u
