package session

import "github.com/redis/go-redis/v9"

// Every script touches only keys of one user slot: the session hash
// "<prefix>{<tag>}:s:<handle>" and the user's index "<prefix>{<tag>}:u".
// Scripts that walk the index build session keys from ARGV "base"
// ("<prefix>{<tag>}:s:") plus a member; those keys share the declared keys'
// hash tag, so they live in the same slot on the same node.
//
// Session hash fields: c created-at, s last-seen, i idle timeout, a absolute
// deadline (all ms), v version, u user ID ("" = anonymous), ip, ua, p persist
// flag, and d:<key> for each value. All times come from ARGV[1] when it is
// positive (Options.Clock) and from the server's TIME otherwise.
const luaCommon = `
local function fmt(x) return string.format('%d', x) end

local function clock(arg)
  local now = tonumber(arg)
  if now == nil or now <= 0 then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end

-- trim drops index members whose expiry has passed and gives the index the
-- TTL of its latest member. Redis deletes an emptied sorted set by itself.
local function trim(idx, now)
  redis.call('ZREMRANGEBYSCORE', idx, '-inf', fmt(now))
  local top = redis.call('ZRANGE', idx, -1, -1, 'WITHSCORES')
  if #top == 2 then
    redis.call('PEXPIREAT', idx, fmt(tonumber(top[2])))
  end
end

-- meta reads the metadata of a session: nil when missing, false when corrupt.
local function meta(k)
  local f = redis.call('HMGET', k, 'c', 's', 'i', 'a', 'v', 'u')
  if f[1] == false then
    if redis.call('EXISTS', k) == 1 then return false end
    return nil
  end
  local m = {c = tonumber(f[1]), s = tonumber(f[2]), i = tonumber(f[3]), a = tonumber(f[4]), v = tonumber(f[5]), u = f[6]}
  if not (m.c and m.s and m.i and m.a and m.v) or m.u == false then return false end
  return m
end

local function dead(m, now) return now >= m.a or now >= m.s + m.i end

-- kill removes an expired session so no caller sees it again.
local function kill(k, idx, h, now)
  redis.call('DEL', k)
  redis.call('ZREM', idx, h)
  trim(idx, now)
end

-- slide records activity: last-seen = now, expiry = min(now + idle, deadline).
local function slide(k, idx, h, m, now)
  local exp = math.min(now + m.i, m.a)
  redis.call('HSET', k, 's', fmt(now))
  redis.call('PEXPIREAT', k, fmt(exp))
  if m.u ~= '' then
    redis.call('ZADD', idx, fmt(exp), h)
    trim(idx, now)
  end
  return exp
end

local function hsetChunks(k, args, from, to)
  for j = from, to, 200 do
    redis.call('HSET', k, unpack(args, j, math.min(j + 199, to)))
  end
end
`

// KEYS: session, index. ARGV: now, handle, idle ms, absolute ms, user, ip,
// ua, persist, max per user, refuse (1) or revoke (0), base, then
// field/value pairs.
var scriptCreate = redis.NewScript(luaCommon + `
local now = clock(ARGV[1])
local k, idx, h = KEYS[1], KEYS[2], ARGV[2]
local idle, absttl, user = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local m = meta(k)
if m then
  -- Tokens are 256-bit random: an existing key is this very Create, retried.
  return {fmt(now), fmt(math.min(m.s + m.i, m.a)), fmt(m.a)}
elseif m == false then
  return redis.error_reply('SESSCORRUPT session hash')
end
if user ~= '' then
  trim(idx, now)
  local max, base = tonumber(ARGV[9]), ARGV[11]
  if max > 0 and redis.call('ZCARD', idx) >= max then
    local live = {}
    for _, mem in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
      local f = redis.pcall('HMGET', base .. mem, 'c', 'u')
      if type(f) == 'table' and f[1] and f[2] == user then
        table.insert(live, {mem, tonumber(f[1]) or 0})
      elseif type(f) == 'table' and f[1] == false then
        redis.call('ZREM', idx, mem)
      end
    end
    if #live >= max then
      if ARGV[10] == '1' then return redis.error_reply('SESSLIMIT too many sessions') end
      table.sort(live, function(x, y) return x[2] < y[2] end)
      for j = 1, #live - max + 1 do
        redis.call('DEL', base .. live[j][1])
        redis.call('ZREM', idx, live[j][1])
      end
    end
  end
end
local abs = now + absttl
local exp = math.min(now + idle, abs)
redis.call('HSET', k, 'c', fmt(now), 's', fmt(now), 'i', fmt(idle), 'a', fmt(abs), 'v', '1',
  'u', user, 'ip', ARGV[6], 'ua', ARGV[7], 'p', ARGV[8])
hsetChunks(k, ARGV, 12, #ARGV)
redis.call('PEXPIREAT', k, fmt(exp))
if user ~= '' then
  redis.call('ZADD', idx, fmt(exp), h)
  trim(idx, now)
end
return {fmt(now), fmt(exp), fmt(abs)}
`)

// KEYS: session, index. ARGV: now, handle, touch interval ms.
// Returns nil when missing, else {now, expiry, {field, value, ...}}.
var scriptGet = redis.NewScript(luaCommon + `
local now = clock(ARGV[1])
local k, idx, h = KEYS[1], KEYS[2], ARGV[2]
local m = meta(k)
if m == nil then return nil end
if m == false then return redis.error_reply('SESSCORRUPT session metadata') end
if dead(m, now) then kill(k, idx, h, now) return nil end
local exp = math.min(m.s + m.i, m.a)
if now - m.s >= tonumber(ARGV[3]) then exp = slide(k, idx, h, m, now) end
return {fmt(now), fmt(exp), redis.call('HGETALL', k)}
`)

// KEYS: session, index. ARGV: now, handle, if-version (0 = none), persist
// (” = keep, '0', '1'), number of set pairs, pairs..., fields to delete...
// Returns {now, expiry, version}.
var scriptUpdate = redis.NewScript(luaCommon + `
local now = clock(ARGV[1])
local k, idx, h = KEYS[1], KEYS[2], ARGV[2]
local m = meta(k)
if m == nil then return nil end
if m == false then return redis.error_reply('SESSCORRUPT session metadata') end
if dead(m, now) then kill(k, idx, h, now) return nil end
local ifv = tonumber(ARGV[3])
if ifv ~= 0 and ifv ~= m.v then return redis.error_reply('SESSCONFLICT version ' .. fmt(m.v)) end
local nset = tonumber(ARGV[5])
if nset > 0 then hsetChunks(k, ARGV, 6, 5 + 2 * nset) end
for j = 6 + 2 * nset, #ARGV, 200 do
  redis.call('HDEL', k, unpack(ARGV, j, math.min(j + 199, #ARGV)))
end
if ARGV[4] ~= '' then redis.call('HSET', k, 'p', ARGV[4]) end
local v = redis.call('HINCRBY', k, 'v', 1)
if m.u ~= '' then trim(idx, now) end
return {fmt(now), fmt(math.min(m.s + m.i, m.a)), v}
`)

// KEYS: session, index. ARGV: now, handle. Returns 1 if a session was deleted.
var scriptDelete = redis.NewScript(luaCommon + `
local now = clock(ARGV[1])
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
trim(KEYS[2], now)
return n
`)

// KEYS: session, index. ARGV: now, handle, extension ms.
// Returns {now, expiry, deadline}.
var scriptExtend = redis.NewScript(luaCommon + `
local now = clock(ARGV[1])
local k, idx, h = KEYS[1], KEYS[2], ARGV[2]
local m = meta(k)
if m == nil then return nil end
if m == false then return redis.error_reply('SESSCORRUPT session metadata') end
if dead(m, now) then kill(k, idx, h, now) return nil end
local a = now + tonumber(ARGV[3])
if a > m.a then
  m.a = a
  redis.call('HSET', k, 'a', fmt(a))
end
local exp = slide(k, idx, h, m, now)
return {fmt(now), fmt(exp), fmt(m.a)}
`)

// KEYS: old session, new session, index. ARGV: now, old handle, new handle.
// Returns {now, expiry}.
var scriptRotate = redis.NewScript(luaCommon + `
local now = clock(ARGV[1])
local old, new, idx = KEYS[1], KEYS[2], KEYS[3]
local m = meta(old)
if m == false then return redis.error_reply('SESSCORRUPT session metadata') end
if m == nil then
  -- The new token is 256-bit random: if it exists, this is a retried Rotate
  -- that already succeeded.
  local n = meta(new)
  if n then return {fmt(now), fmt(math.min(n.s + n.i, n.a))} end
  return nil
end
if dead(m, now) then kill(old, idx, ARGV[2], now) return nil end
redis.call('RENAME', old, new)
redis.call('HINCRBY', new, 'v', 1)
if m.u ~= '' then redis.call('ZREM', idx, ARGV[2]) end
local exp = slide(new, idx, ARGV[3], m, now)
return {fmt(now), fmt(exp)}
`)

// KEYS: index. ARGV: now, base, user.
// Returns {{handle, c, s, i, a, ip, ua, p}, ...} for the user's live sessions.
var scriptList = redis.NewScript(luaCommon + `
local now = clock(ARGV[1])
local idx, base, user = KEYS[1], ARGV[2], ARGV[3]
trim(idx, now)
local out = {}
for _, h in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
  local k = base .. h
  local f = redis.pcall('HMGET', k, 'c', 's', 'i', 'a', 'u', 'ip', 'ua', 'p')
  if type(f) == 'table' then
    if f[1] == false then
      redis.call('ZREM', idx, h)
    else
      local c, s, i, a = tonumber(f[1]), tonumber(f[2]), tonumber(f[3]), tonumber(f[4])
      if c and s and i and a and f[5] == user then
        if now >= a or now >= s + i then
          redis.call('DEL', k)
          redis.call('ZREM', idx, h)
        else
          table.insert(out, {h, f[1], f[2], f[3], f[4], f[6] or '', f[7] or '', f[8] or '0'})
        end
      end
    end
  end
end
trim(idx, now)
return out
`)

// KEYS: index. ARGV: now, base, user, handle (” = all).
// Deletes the user's sessions (or the one with the handle) and returns how
// many existed.
var scriptDeleteUser = redis.NewScript(luaCommon + `
local now = clock(ARGV[1])
local idx, base, user, only = KEYS[1], ARGV[2], ARGV[3], ARGV[4]
local members
if only ~= '' then members = {only} else members = redis.call('ZRANGE', idx, 0, -1) end
local n = 0
for _, h in ipairs(members) do
  local k = base .. h
  local u = redis.pcall('HGET', k, 'u')
  if u == user then
    n = n + redis.call('DEL', k)
    redis.call('ZREM', idx, h)
  elseif u == false then
    redis.call('ZREM', idx, h)
  end
end
trim(idx, now)
return n
`)

// KEYS: index. ARGV: now, base. Prunes index members whose session expired
// or vanished; returns how many were pruned.
var scriptCleanup = redis.NewScript(luaCommon + `
local now = clock(ARGV[1])
local idx, base = KEYS[1], ARGV[2]
local before = redis.call('ZCARD', idx)
if before == 0 then return 0 end
redis.call('ZREMRANGEBYSCORE', idx, '-inf', fmt(now))
for _, h in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
  if redis.call('EXISTS', base .. h) == 0 then redis.call('ZREM', idx, h) end
end
trim(idx, now)
return before - redis.call('ZCARD', idx)
`)

var allScripts = []*redis.Script{
	scriptCreate, scriptGet, scriptUpdate, scriptDelete, scriptExtend,
	scriptRotate, scriptList, scriptDeleteUser, scriptCleanup,
}
