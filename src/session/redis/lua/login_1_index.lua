-- login_1_index.lua: step 1 of a login in a Redis Cluster, on the node of
-- the user's set: adds the new id to it. Should a later step fail, the
-- member points at no session, which is harmless: listings drop it.
--
-- KEYS[1]  the user's set
-- ARGV     new id (base64url), now, max_lifetime
--
-- Returns  {'ok'}.

index(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
return {'ok'}
