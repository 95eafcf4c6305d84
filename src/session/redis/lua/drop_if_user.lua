-- drop_if_user.lua: ends a session if it belongs to a user. The user's set
-- is only an index and may name a key that no longer holds a session of
-- theirs (ended, or the mark of a moved id), so the key itself is asked.
-- Stands alone, without common.lua.
--
-- KEYS[1]  the session key
-- ARGV     user
--
-- Returns  1 if the session was deleted, 0 if not.

if redis.call('HGET', KEYS[1], 'u') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
