-- login_1_index.lua: step 1 of a login in a Redis Cluster, run twice: on
-- the node of the user's set, and on the node of the set of the new id's
-- tag, adding the new id to each. Should a later step fail, the member
-- points at no session, which is harmless: listings drop it.
--
-- KEYS[1]  the user's set, or the tag's set
-- ARGV     new id (base64url), now, the new session's lifetime
--
-- Returns  {'ok'}.

index(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
return {'ok'}
