-- common.lua: the functions every script but drop_if_user.lua and end.lua
-- shares.
--
-- Not a script of its own: scripts.rs writes `local ROTATED_FOR = <seconds>`
-- (the one constant shared with Rust) in front of it and a script's body
-- after it, and loads the whole as that script.
--
-- Times are whole seconds from the proxy's clock; TTLs are relative, so
-- Redis's own clock never decides expiry.
--
-- A session key is a hash: c created, s last_seen, d data (urlencoded),
-- u user (absent while anonymous), i client IP, g the groups the backend
-- gave the user (absent when none), k the seconds a "remember me" session
-- lasts, idle or not (absent for an ordinary session), b a short
-- description of the browser that signed in (absent when unknown); or, once a login
-- moved the session away, only r, the time of that login.

local function expires_at(created, last_seen, idle, life)
  return math.min(last_seen + idle, created + life)
end

local function ttl(created, last_seen, idle, life, now)
  return math.max(expires_at(created, last_seen, idle, life) - now, 1)
end

-- Sets key k to v in an ordered map {keys, vals, at}: a new key goes last,
-- a key already there keeps its place.
local function ordered_set(map, k, v)
  local at = map.at[k]
  if at then
    map.vals[at] = v
  else
    map.keys[#map.keys + 1] = k
    map.vals[#map.keys] = v
    map.at[k] = #map.keys
  end
end

-- The largest counter magnitude (MAX_COUNTER in data.rs): integers up to
-- 2^53 - 1 are exact in Lua's numbers.
local MAX_COUNTER = 9007199254740991

-- A stored value as a counter, as counter_value in data.rs reads it: an
-- optional '-' and at most 16 digits within MAX_COUNTER; else 0.
local function counter_value(v)
  local digits = string.match(v, '^%-?(%d+)$')
  if not digits or #digits > 16 then
    return 0
  end
  local n = tonumber(v)
  if not n or n > MAX_COUNTER or n < -MAX_COUNTER then
    return 0
  end
  return n
end

-- Applies the change found in ARGV from position i on to urlencoded data:
-- ndel, keys..., nset, key, value, ..., nincr, key, amount, ... (keys and
-- values urlencoded like the data, amounts decimal within MAX_COUNTER).
-- Mirrors DataChange::apply: deletes first, then sets in order, then
-- increments in order; a key set twice keeps its first position, empty
-- keys are dropped when read back.
local function apply_change(data, i)
  local old = {keys = {}, vals = {}, at = {}}
  for piece in string.gmatch(data, '[^&]+') do
    local eq = string.find(piece, '=', 1, true)
    local k, v = piece, ''
    if eq then
      k = string.sub(piece, 1, eq - 1)
      v = string.sub(piece, eq + 1)
    end
    if k ~= '' then
      ordered_set(old, k, v)
    end
  end
  local deleted = {}
  local ndel = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, ndel do
    deleted[ARGV[i]] = true
    i = i + 1
  end
  local new = {keys = {}, vals = {}, at = {}}
  for j = 1, #old.keys do
    if not deleted[old.keys[j]] then
      ordered_set(new, old.keys[j], old.vals[j])
    end
  end
  local nset = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, nset do
    ordered_set(new, ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  local nincr = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, nincr do
    local k = ARGV[i]
    local at = new.at[k]
    local now = at and counter_value(new.vals[at]) or 0
    local sum = math.max(-MAX_COUNTER, math.min(MAX_COUNTER, now + tonumber(ARGV[i + 1])))
    ordered_set(new, k, string.format('%d', sum))
    i = i + 2
  end
  local parts = {}
  for j = 1, #new.keys do
    parts[j] = new.keys[j] .. '=' .. new.vals[j]
  end
  return table.concat(parts, '&')
end

-- The idle timeout and lifetime of a session remembered for k seconds
-- (k nil: an ordinary session), as Policy::lifetimes computes them.
local function lifetimes(idle, life, k)
  if k then
    return math.max(idle, k), math.max(life, k)
  end
  return idle, life
end

-- A live session's fields, with its own idle timeout and lifetime; or nil,
-- and true when it existed but had expired (it is deleted on the way).
local function live(key, now, idle, life)
  local r = redis.call('HMGET', key, 'c', 's', 'd', 'u', 'i', 'g', 'k', 'b')
  local c, s = tonumber(r[1]), tonumber(r[2])
  if not c or not s then
    return nil, false
  end
  idle, life = lifetimes(idle, life, tonumber(r[7]))
  if now >= expires_at(c, s, idle, life) then
    redis.call('DEL', key)
    return nil, true
  end
  return {c = c, s = s, d = r[3] or '', u = r[4], i = r[5], g = r[6], k = r[7], b = r[8], idle = idle, life = life}
end

-- The reply that carries a session's record, as record.rs reads it.
local function record(r)
  return {'ok', r.c, r.s, r.d, r.u or false, r.i or false, r.g or false, r.k or false, r.b or false}
end

-- Whether key holds the mark a login leaves on the id it moved a session
-- away from, still in force at now (the proxy's clock, as for sessions;
-- the key's TTL only does the cleaning).
local function rotated(key, now)
  local at = tonumber(redis.call('HGET', key, 'r'))
  return at ~= nil and now < at + ROTATED_FOR
end

-- Puts that mark in place of whatever key held: a session, or nothing (an
-- anonymous session that never held anything is moved by a login too).
local function mark_rotated(key, now)
  redis.call('DEL', key)
  redis.call('HSET', key, 'r', now)
  redis.call('EXPIRE', key, ROTATED_FOR)
end

-- Creates a logged-in session under a new id; ip, groups, remember and
-- browser ('' for none) as the login scripts take them.
local function put(key, now, idle, life, user, data, ip, groups, remember, browser)
  redis.call('DEL', key)
  redis.call('HSET', key, 'c', now, 's', now, 'u', user, 'd', data)
  local r = {c = now, s = now, d = data, u = user}
  if ip ~= '' then
    redis.call('HSET', key, 'i', ip)
    r.i = ip
  end
  if groups ~= '' then
    redis.call('HSET', key, 'g', groups)
    r.g = groups
  end
  if remember ~= '' then
    redis.call('HSET', key, 'k', remember)
    r.k = remember
  end
  if browser ~= '' then
    redis.call('HSET', key, 'b', browser)
    r.b = browser
  end
  idle, life = lifetimes(idle, life, tonumber(remember))
  redis.call('EXPIRE', key, ttl(now, now, idle, life, now))
  return record(r)
end

-- Adds an id to a user's set (or a tag's set), drops the ids whose
-- absolute lifetime is over, and keeps the set until every session in it
-- has ended.
local function index(key, id, now, life)
  redis.call('ZADD', key, now + life, id)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('TTL', key) < life then
    redis.call('EXPIRE', key, life)
  end
end
