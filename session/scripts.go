package session

import "github.com/rediskit/rediskit/retry"

// Every script touches only keys of one user slot: the session hash
// "<prefix>{<tag>}:s:<handle>" and the user's index "<prefix>{<tag>}:u".
// Scripts that walk the index build session keys from ARGV "base"
// ("<prefix>{<tag>}:s:") plus a member; those keys share the declared keys'
// hash tag, so they live in the same slot on the same node.
//
// The session hash's fields are described once, in record.go. All times
// come from ARGV[1] when it is positive (Options.Clock) and from the
// server's TIME otherwise.
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

-- parse reads the packed metadata field m: "created,lastseen,idle,deadline,version,persist".
local function parse(raw)
  local c, s, i, a, v, p = string.match(raw, '^(%d+),(%d+),(%d+),(%d+),(%d+),([01])$')
  if not c then return false end
  return {c = tonumber(c), s = tonumber(s), i = tonumber(i), a = tonumber(a), v = tonumber(v), p = p}
end

local function pack(m)
  return fmt(m.c) .. ',' .. fmt(m.s) .. ',' .. fmt(m.i) .. ',' .. fmt(m.a) .. ',' .. fmt(m.v) .. ',' .. m.p
end

-- meta reads the metadata of a session: nil when missing, false when corrupt.
local function meta(k)
  local f = redis.call('HMGET', k, 'm', 'u')
  if f[1] == false then
    if redis.call('EXISTS', k) == 1 then return false end
    return nil
  end
  local m = parse(f[1])
  if not m or f[2] == false then return false end
  m.u = f[2]
  return m
end

local function dead(m, now) return now >= m.a or now >= m.s + m.i end

-- kill removes an expired session so no caller sees it again.
local function kill(k, idx, h, now)
  redis.call('DEL', k)
  redis.call('ZREM', idx, h)
  trim(idx, now)
end

-- live returns the metadata of a session that is alive, deleting it when it
-- is past a timeout; otherwise nil and what the script must return: nil when
-- there is no live session, an error reply when the metadata is corrupt.
local function live(k, idx, h, now)
  local m = meta(k)
  if m == false then return nil, redis.error_reply('SESSCORRUPT session metadata') end
  if m == nil then return nil, nil end
  if dead(m, now) then kill(k, idx, h, now) return nil, nil end
  return m
end

-- slide records activity: last-seen = now, expiry = min(now + idle, deadline).
local function slide(k, idx, h, m, now)
  m.s = now
  local exp = math.min(now + m.i, m.a)
  redis.call('HSET', k, 'm', pack(m))
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

// KEYS: session, index. ARGV: now, handle, idle ms, absolute ms, user,
// device info, (unused), persist, max per user, refuse (1) or revoke (0),
// base, then field/value pairs.
var scriptCreate = retry.NewScript(luaCommon + `
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
      local f = redis.pcall('HMGET', base .. mem, 'm', 'u')
      if type(f) == 'table' and f[1] and f[2] == user then
        local mm = parse(f[1])
        table.insert(live, {mem, mm and mm.c or 0})
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
redis.call('HSET', k, 'm', pack({c = now, s = now, i = idle, a = abs, v = 1, p = ARGV[8]}),
  'u', user, 'x', ARGV[6])
hsetChunks(k, ARGV, 12, #ARGV)
redis.call('PEXPIREAT', k, fmt(exp))
if user ~= '' then
  redis.call('ZADD', idx, fmt(exp), h)
  trim(idx, now)
end
return {fmt(now), fmt(exp), fmt(abs)}
`)

// KEYS: session, index. ARGV: now, handle, the store's touch interval ms,
// the store's idle timeout ms. A session's own touch interval is the
// store's scaled by its idle timeout (see Store.touchEvery).
// Returns nil when missing or dead (deleting a dead one), else the session
// hash as HGETALL gives it followed by now: an odd number of elements. The
// hash is read once (HGETALL) and the metadata found in it: crossing the
// Lua boundary costs per element, so Get does it once each way. It checks
// that the session exists before writing, so a touch never brings back a
// session deleted or rotated away.
var scriptGet = retry.NewScript(luaCommon + `
local now = clock(ARGV[1])
local k, idx, h = KEYS[1], KEYS[2], ARGV[2]
local all = redis.call('HGETALL', k)
if #all == 0 then return nil end
local mi, u
for j = 1, #all, 2 do
  local f = all[j]
  if f == 'm' then mi = j + 1 elseif f == 'u' then u = all[j + 1] end
end
local m = mi and parse(all[mi])
if not m or not u then return redis.error_reply('SESSCORRUPT session metadata') end
m.u = u
if dead(m, now) then kill(k, idx, h, now) return nil end
if now - m.s >= math.floor(tonumber(ARGV[3]) * m.i / tonumber(ARGV[4])) then
  slide(k, idx, h, m, now)
  all[mi] = pack(m)
end
all[#all + 1] = fmt(now)
return all
`)

// KEYS: session, index. ARGV: now, handle, if-version (0 = none), persist
// (” = keep, '0', '1'), number of set pairs, pairs..., fields to delete...
// Returns {now, expiry, version}.
var scriptUpdate = retry.NewScript(luaCommon + `
local now = clock(ARGV[1])
local k, idx, h = KEYS[1], KEYS[2], ARGV[2]
local m, reply = live(k, idx, h, now)
if not m then return reply end
local ifv = tonumber(ARGV[3])
if ifv ~= 0 and ifv ~= m.v then return redis.error_reply('SESSCONFLICT version ' .. fmt(m.v)) end
local nset = tonumber(ARGV[5])
if nset > 0 then hsetChunks(k, ARGV, 6, 5 + 2 * nset) end
for j = 6 + 2 * nset, #ARGV, 200 do
  redis.call('HDEL', k, unpack(ARGV, j, math.min(j + 199, #ARGV)))
end
if ARGV[4] ~= '' then m.p = ARGV[4] end
m.v = m.v + 1
redis.call('HSET', k, 'm', pack(m))
-- Unchanged in normal operation; restores the invariant that Get relies on
-- (TTL = min(last-seen + idle, deadline)) if anything removed the TTL.
local exp = math.min(m.s + m.i, m.a)
redis.call('PEXPIREAT', k, fmt(exp))
if m.u ~= '' then trim(idx, now) end
return {fmt(now), fmt(exp), m.v}
`)

// KEYS: session, index. ARGV: now, handle. Returns 1 if a session was deleted.
var scriptDelete = retry.NewScript(luaCommon + `
local now = clock(ARGV[1])
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
trim(KEYS[2], now)
return n
`)

// KEYS: session, index. ARGV: now, handle, extension ms.
// Returns {now, expiry, deadline}.
var scriptExtend = retry.NewScript(luaCommon + `
local now = clock(ARGV[1])
local k, idx, h = KEYS[1], KEYS[2], ARGV[2]
local m, reply = live(k, idx, h, now)
if not m then return reply end
local a = now + tonumber(ARGV[3])
if a > m.a then m.a = a end
local exp = slide(k, idx, h, m, now)
return {fmt(now), fmt(exp), fmt(m.a)}
`)

// KEYS: old session, new session, index. ARGV: now, old handle, new handle.
// Returns {now, expiry}.
var scriptRotate = retry.NewScript(luaCommon + `
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
m.v = m.v + 1
if m.u ~= '' then redis.call('ZREM', idx, ARGV[2]) end
local exp = slide(new, idx, ARGV[3], m, now)
return {fmt(now), fmt(exp)}
`)

// KEYS: index. ARGV: now, base, user.
// Returns {{handle, m, x}, ...} for the user's live sessions.
var scriptList = retry.NewScript(luaCommon + `
local now = clock(ARGV[1])
local idx, base, user = KEYS[1], ARGV[2], ARGV[3]
trim(idx, now)
local out = {}
for _, h in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
  local k = base .. h
  local f = redis.pcall('HMGET', k, 'm', 'u', 'x')
  if type(f) == 'table' then
    if f[1] == false then
      redis.call('ZREM', idx, h)
    else
      local m = parse(f[1])
      if m and f[2] == user then
        if dead(m, now) then
          redis.call('DEL', k)
          redis.call('ZREM', idx, h)
        else
          table.insert(out, {h, f[1], f[3] or ''})
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
var scriptDeleteUser = retry.NewScript(luaCommon + `
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
var scriptCleanup = retry.NewScript(luaCommon + `
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

var allScripts = []retry.Script{
	scriptCreate, scriptGet, scriptUpdate, scriptDelete, scriptExtend,
	scriptRotate, scriptList, scriptDeleteUser, scriptCleanup,
}
