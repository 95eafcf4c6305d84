-- end.lua: ends a session (a logout), or forgets the mark a login left on
-- the id, and says whose session it was, so that the caller can take the
-- id out of that user's set and its tag's set. Stands alone, without
-- common.lua.
--
-- KEYS[1]  the session key
-- ARGV     (none)
--
-- Returns  the user of the session deleted; nil when it was anonymous,
--          a mark, or nothing.

local user = redis.call('HGET', KEYS[1], 'u')
redis.call('DEL', KEYS[1])
return user
