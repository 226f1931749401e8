package session

import "github.com/rediskit/rediskit/retry"

// Every script touches only keys of one user slot: the session
// "<prefix>{<tag>}:s:<handle>" and the user's index "<prefix>{<tag>}:u".
// Scripts that walk the index build session keys from ARGV "base"
// ("<prefix>{<tag>}:s:") plus a member; those keys share the declared keys'
// hash tag, so they live in the same slot on the same node.
//
// The stored form of a session is described once, in record.go. All times
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

-- Events (Options.Events, events.go). With events on, ARGV[1] is
-- "now,maxlen,grace" and the event stream is the key after the script's
-- own keys; setup reads both. emit appends one event to the stream, in the
-- same script as the change it reports. Every session has events; an
-- anonymous one's name an empty user. The side hash idx..'e' keeps, per
-- indexed handle, "deadline,user", so a timeout found by trim names its user
-- and cause. With events on, an anonymous session is indexed too, alone in
-- the index "<prefix>{<tag>}:a" of its own random tag (ixof), so that the
-- sweep reports its timeout as it does a user's.
local EV, EVMAX, EVGRACE = nil, '0', 0

local function setup(nkeys)
  local t, mx, gr = string.match(ARGV[1], '^(%-?%d+),(%d+),(%d+)$')
  if t then
    EV, EVMAX, EVGRACE = KEYS[nkeys + 1], mx, tonumber(gr)
    return clock(t)
  end
  return clock(ARGV[1])
end

local function emit(kind, cause, h, user, at, old)
  if not EV then return end
  redis.call('XADD', EV, 'MAXLEN', '~', EVMAX, '*', 'k', kind, 'c', cause, 'h', h, 'u', user, 't', fmt(at), 'o', old or '')
end

-- ixof returns the index of a session of user u, given its user index
-- idx ("<prefix>{<tag>}:u"): idx for a user; for an anonymous session,
-- with events on, "<prefix>{<tag>}:a" (same tag, so same slot), and nil
-- without events (an anonymous session is not indexed).
local function ixof(idx, u)
  if u ~= '' then return idx end
  if EV then return string.sub(idx, 1, -2) .. 'a' end
  return nil
end

-- unindex removes h from the user's index (and its side record).
local function unindex(idx, h)
  redis.call('ZREM', idx, h)
  if EV then redis.call('HDEL', idx .. 'e', h) end
end

-- trim drops index members whose expiry has passed and gives the index the
-- TTL of its latest member (plus the events grace, so a sweeper can still
-- report the last timeouts). Redis deletes an emptied sorted set by itself.
local function trim(idx, now)
  if EV then
    local due = redis.call('ZRANGEBYSCORE', idx, '-inf', fmt(now), 'WITHSCORES')
    for j = 1, #due, 2 do
      local h, exp = due[j], tonumber(due[j + 1])
      local rec = redis.call('HGET', idx .. 'e', h)
      if rec then
        local a, user = string.match(rec, '^(%d+),(.*)$')
        if a then
          emit('expired', (exp >= tonumber(a)) and 'absolute' or 'idle', h, user, exp)
        end
        redis.call('HDEL', idx .. 'e', h)
      end
    end
  end
  redis.call('ZREMRANGEBYSCORE', idx, '-inf', fmt(now))
  local top = redis.call('ZRANGE', idx, -1, -1, 'WITHSCORES')
  if #top == 2 then
    local until_ = tonumber(top[2]) + EVGRACE
    redis.call('PEXPIREAT', idx, fmt(until_))
    if EV then redis.call('PEXPIREAT', idx .. 'e', fmt(until_)) end
  end
end

-- parse reads the metadata line: "created,lastseen,idle,deadline,version,persist".
local function parse(raw)
  local c, s, i, a, v, p = string.match(raw, '^(%d+),(%d+),(%d+),(%d+),(%d+),([01])$')
  if not c then return false end
  local m = {c = tonumber(c), s = tonumber(s), i = tonumber(i), a = tonumber(a), v = tonumber(v), p = p}
  -- Lua numbers are doubles: past 2^53 they are not the integers Go reads.
  for _, x in ipairs({m.c, m.s, m.i, m.a, m.v}) do
    if x > 9007199254740991 then return false end
  end
  return m
end

local function pack(m)
  return fmt(m.c) .. ',' .. fmt(m.s) .. ',' .. fmt(m.i) .. ',' .. fmt(m.a) .. ',' .. fmt(m.v) .. ',' .. m.p
end

-- ns reads the netstring at pos of s: its bytes and the position after it,
-- or nil when malformed.
local function ns(s, pos)
  local c = string.find(s, ':', pos, true)
  if not c or c - pos > 10 then return nil end
  local n = tonumber(string.sub(s, pos, c - 1))
  if not n or n < 0 or c + n > #s then return nil end
  return string.sub(s, c + 1, c + n), c + n + 1
end

local function netstr(v) return #v .. ':' .. v end

-- decode reads a stored session: its metadata, with u (user), x (device)
-- and body (everything after the metadata line); false when unreadable.
local function decode(raw)
  if string.byte(raw, 1) ~= 2 then return false end
  local nl = string.find(raw, '\n', 2, true)
  if not nl then return false end
  local m = parse(string.sub(raw, 2, nl - 1))
  if not m then return false end
  local u, pos = ns(raw, nl + 1)
  if not u then return false end
  local x = ns(raw, pos)
  if not x then return false end
  m.u, m.x, m.body = u, x, string.sub(raw, nl + 1)
  return m
end

local function encode(m) return '\2' .. pack(m) .. '\n' .. m.body end

-- upgrade rewrites a session stored by the first version (a hash: m, u,
-- x, d:<key>) in the current form, keeping its TTL; false when unreadable.
local function upgrade(k)
  local all = redis.call('HGETALL', k)
  local f = {}
  for j = 1, #all, 2 do f[all[j]] = all[j + 1] end
  if not f.m or not f.u or not parse(f.m) then return false end
  local parts = {netstr(f.u), netstr(f.x or '')}
  for j = 1, #all, 2 do
    if string.sub(all[j], 1, 2) == 'd:' then
      parts[#parts + 1] = netstr(string.sub(all[j], 3))
      parts[#parts + 1] = netstr(all[j + 1])
    end
  end
  local raw = '\2' .. f.m .. '\n' .. table.concat(parts)
  local ttl = redis.call('PTTL', k)
  redis.call('DEL', k)
  if ttl > 0 then redis.call('SET', k, raw, 'PX', ttl) else redis.call('SET', k, raw) end
  return raw
end

-- read returns the stored session: nil when missing, false when it is not
-- a session.
local function read(k)
  local raw = redis.pcall('GET', k)
  if raw == false then return nil end
  if type(raw) == 'table' then
    if redis.call('TYPE', k)['ok'] == 'hash' then return upgrade(k) end
    return false
  end
  return raw
end

-- meta reads a session: nil when missing, false when unreadable.
local function meta(k)
  local raw = read(k)
  if not raw then return raw end
  return decode(raw)
end

local function dead(m, now) return now >= m.a or now >= m.s + m.i end

-- kill removes an expired session (metadata m) so no caller sees it again.
local function kill(k, idx, h, now, m)
  if redis.call('DEL', k) == 1 then
    local exp = math.min(m.s + m.i, m.a)
    emit('expired', (m.a <= m.s + m.i) and 'absolute' or 'idle', h, m.u, exp)
  end
  local ix = ixof(idx, m.u)
  if ix then
    unindex(ix, h)
    trim(ix, now)
  end
end

-- live returns the metadata of a session that is alive, deleting it when it
-- is past a timeout; otherwise nil and what the script must return: nil when
-- there is no live session, an error reply when it is unreadable.
local function live(k, idx, h, now)
  local m = meta(k)
  if m == false then return nil, redis.error_reply('SESSCORRUPT session metadata') end
  if m == nil then return nil, nil end
  if dead(m, now) then kill(k, idx, h, now, m) return nil, nil end
  return m
end

-- store writes m back with expiry exp and indexes it under h.
local function store(k, idx, h, m, exp, now)
  local raw = encode(m)
  redis.call('SET', k, raw, 'PXAT', fmt(exp))
  local ix = ixof(idx, m.u)
  if ix then
    redis.call('ZADD', ix, fmt(exp), h)
    if EV then redis.call('HSET', ix .. 'e', h, fmt(m.a) .. ',' .. m.u) end
    trim(ix, now)
  end
  return raw
end

-- slide records activity: last-seen = now, expiry = min(now + idle,
-- deadline). It returns the expiry and the stored string. A slide only
-- moves an expiry later, so the index needs no trim here: its TTL follows
-- the latest member (PEXPIREAT GT), and members that expired are trimmed
-- by the next Create, ListByUser, DeleteByUser or Cleanup. With events on,
-- the side record is written too (a Rotate's new handle has none yet, an
-- Extend moves the deadline), and the index and side hash live on for the
-- grace, as trim leaves them.
local function slide(k, idx, h, m, now)
  m.s = now
  local exp = math.min(now + m.i, m.a)
  local raw = encode(m)
  redis.call('SET', k, raw, 'PXAT', fmt(exp))
  local ix = ixof(idx, m.u)
  if ix then
    redis.call('ZADD', ix, fmt(exp), h)
    local keys = {ix}
    if EV then
      redis.call('HSET', ix .. 'e', h, fmt(m.a) .. ',' .. m.u)
      keys[2] = ix .. 'e'
    end
    local until_ = fmt(exp + EVGRACE)
    for _, key in ipairs(keys) do
      -- GT leaves a key without TTL as it is: give a new one its first.
      if redis.call('PEXPIREAT', key, until_, 'GT') == 0 and redis.call('PTTL', key) == -1 then
        redis.call('PEXPIREAT', key, until_)
      end
    end
  end
  return exp, raw
end
`

// KEYS: session, index. ARGV: now, handle, idle ms, absolute ms, user,
// persist, max per user, refuse (1) or revoke (0), base, body (record.go:
// user, device and values).
var scriptCreate = retry.NewScript(luaCommon + `
local now = setup(2)
local k, idx, h = KEYS[1], KEYS[2], ARGV[2]
local idle, absttl, user = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local m = meta(k)
if m then
  -- Tokens are 256-bit random: an existing key is this very Create, retried.
  return {fmt(now), fmt(math.min(m.s + m.i, m.a)), fmt(m.a)}
elseif m == false then
  return redis.error_reply('SESSCORRUPT session')
end
if user ~= '' then
  trim(idx, now)
  local max, base = tonumber(ARGV[7]), ARGV[9]
  if max > 0 and redis.call('ZCARD', idx) >= max then
    local live = {}
    for _, mem in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
      local mm = meta(base .. mem)
      if mm and mm.u == user then
        table.insert(live, {mem, mm.c})
      elseif mm == nil then
        unindex(idx, mem)
      end
    end
    if #live >= max then
      if ARGV[8] == '1' then return redis.error_reply('SESSLIMIT too many sessions') end
      table.sort(live, function(x, y) return x[2] < y[2] end)
      for j = 1, #live - max + 1 do
        redis.call('DEL', base .. live[j][1])
        unindex(idx, live[j][1])
        emit('revoked', 'limit', live[j][1], user, now)
      end
    end
  end
end
local abs = now + absttl
local exp = math.min(now + idle, abs)
store(k, idx, h, {c = now, s = now, i = idle, a = abs, v = 1, p = ARGV[6], u = user, body = ARGV[10]}, exp, now)
emit('created', '', h, user, now)
return {fmt(now), fmt(exp), fmt(abs)}
`)

// KEYS: session, index. ARGV: now, handle, the store's touch interval ms,
// the store's idle timeout ms. A session's own touch interval is the
// store's scaled by its idle timeout (see Store.touchEvery).
// Returns nil when missing or dead (deleting a dead one), else {the stored
// string, now}. It checks that the session exists before writing, so a
// touch never brings back a session deleted or rotated away.
var scriptGet = retry.NewScript(luaCommon + `
local now = setup(2)
local k, idx, h = KEYS[1], KEYS[2], ARGV[2]
local raw = read(k)
if raw == nil then return nil end
local m = raw and decode(raw)
if not m then return redis.error_reply('SESSCORRUPT session metadata') end
if dead(m, now) then kill(k, idx, h, now, m) return nil end
if now - m.s >= math.floor(tonumber(ARGV[3]) * m.i / tonumber(ARGV[4])) then
  local _
  _, raw = slide(k, idx, h, m, now)
end
return {raw, fmt(now)}
`)

// scriptTouch is scriptGet's common case without its preamble: Redis runs
// a script's whole source on every call, and luaCommon's definitions, the
// events setup and the general decoder cost more than the work itself
// (BenchmarkTouchScripts). It answers a live session stored in the current
// form with events off exactly as scriptGet does, and returns 0 for
// everything else (a hash of the first version, a session past a timeout
// that must be killed, metadata it does not read), which the caller then
// sends to scriptGet. Like scriptGet it writes nothing for a missing
// session, so a touch never brings one back.
//
// Where scriptGet rewrites the whole session to move its last-seen, this
// overwrites those digits in place (SETRANGE; they keep their width until
// the year 2286) and replies {the stored string before, now, 1}, which Get
// corrects (Store.loadTouched): building the new string in Lua cost the
// server as much as the rest of the touch's writes (BenchmarkTouchScripts:
// 7.0 µs a touch with a user, 8.1 before). A rule without SETRANGE
// (TestTouchWithoutSetrange) gets the whole rewrite.
//
// KEYS: session, index. ARGV: now (0: the server's TIME), handle, the
// store's touch interval ms, the store's idle timeout ms.
var scriptTouch = retry.NewScript(scriptTouchSrc)

const scriptTouchSrc = `
local raw = redis.pcall('GET', KEYS[1])
if not raw then return nil end
if type(raw) ~= 'string' or string.byte(raw, 1) ~= 2 then return 0 end
local nl = string.find(raw, '\n', 2, true)
if not nl or nl > 120 then return 0 end
local c, ss, is, as = string.match(string.sub(raw, 2, nl - 1), '^(%d+),(%d+),(%d+),(%d+),%d+,[01]$')
if not c or #c > 15 or #ss > 15 or #is > 15 or #as > 15 then return 0 end
local s, i, a = tonumber(ss), tonumber(is), tonumber(as)
local now = tonumber(ARGV[1])
if now <= 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
if now >= a or now >= s + i then return 0 end
if now - s >= math.floor(tonumber(ARGV[3]) * i / tonumber(ARGV[4])) then
  local exp = string.format('%d', math.min(now + i, a))
  local nows = string.format('%d', now)
  local moved = #nows == #ss and redis.pcall('SETRANGE', KEYS[1], 1 + #c + 1, nows)
  if moved and type(moved) ~= 'table' then
    redis.call('PEXPIREAT', KEYS[1], exp)
  else
    moved = nil
    raw = '\2' .. c .. ',' .. nows .. string.sub(raw, 2 + #c + 1 + #ss)
    redis.call('SET', KEYS[1], raw, 'PXAT', exp)
    nl = nl + #nows - #ss
  end
  if string.sub(raw, nl + 1, nl + 2) ~= '0:' then
    redis.call('ZADD', KEYS[2], exp, ARGV[2])
    if redis.call('PEXPIREAT', KEYS[2], exp, 'GT') == 0 and redis.call('PTTL', KEYS[2]) == -1 then
      redis.call('PEXPIREAT', KEYS[2], exp)
    end
  end
  if moved then return {raw, nows, 1} end
end
return {raw, string.format('%d', now)}
`

// KEYS: session, index. ARGV: now, handle, if-version (0 = none), persist
// (” = keep, '0', '1'), number of set pairs, pairs..., keys to delete...
// Returns {now, expiry, version}.
var scriptUpdate = retry.NewScript(luaCommon + `
local now = setup(2)
local k, idx, h = KEYS[1], KEYS[2], ARGV[2]
local m, reply = live(k, idx, h, now)
if not m then return reply end
local ifv = tonumber(ARGV[3])
if ifv ~= 0 and ifv ~= m.v then return redis.error_reply('SESSCONFLICT version ' .. fmt(m.v)) end
local body = m.body
local _, pos = ns(body, 1)
_, pos = ns(body, pos)
local names, vals = {}, {}
while pos <= #body do
  local name, v
  name, pos = ns(body, pos)
  if name then v, pos = ns(body, pos) end
  if not v then return redis.error_reply('SESSCORRUPT session values') end
  if vals[name] == nil then names[#names + 1] = name end
  vals[name] = v
end
local nset = tonumber(ARGV[5])
for j = 6, 5 + 2 * nset, 2 do
  if vals[ARGV[j]] == nil then names[#names + 1] = ARGV[j] end
  vals[ARGV[j]] = ARGV[j + 1]
end
for j = 6 + 2 * nset, #ARGV do vals[ARGV[j]] = nil end
local parts = {netstr(m.u), netstr(m.x)}
for _, name in ipairs(names) do
  local v = vals[name]
  if v then
    parts[#parts + 1] = netstr(name)
    parts[#parts + 1] = netstr(v)
  end
end
m.body = table.concat(parts)
if ARGV[4] ~= '' then m.p = ARGV[4] end
m.v = m.v + 1
-- The expiry is unchanged in normal operation; writing it restores the
-- invariant that Get relies on (TTL = min(last-seen + idle, deadline)) if
-- anything removed the TTL.
local exp = math.min(m.s + m.i, m.a)
redis.call('SET', k, encode(m), 'PXAT', fmt(exp))
local ix = ixof(idx, m.u)
if ix then trim(ix, now) end
return {fmt(now), fmt(exp), m.v}
`)

// KEYS: session, index, tombstone. ARGV: now, handle, nonce (” for
// none). Returns 1 if a session was deleted. With a nonce, a deletion
// leaves a tombstone holding it for tombstoneMs, so that the same call,
// re-sent after its reply was lost, still answers 1.
var scriptDelete = retry.NewScript(luaCommon + `
local now = setup(3)
local m = EV and meta(KEYS[1])
local n = redis.call('DEL', KEYS[1])
if ARGV[3] ~= '' then
  if n == 1 then
    redis.call('SET', KEYS[3], ARGV[3], 'PX', ` + tombstoneMs + `)
  elseif redis.call('GET', KEYS[3]) == ARGV[3] then
    return 1
  end
end
-- Without events m is not read: the user index is the one to clean (an
-- anonymous session has none, and ZREM of a missing key is harmless).
local ix = KEYS[2]
if m then ix = ixof(KEYS[2], m.u) end
unindex(ix, ARGV[2])
if n == 1 and m then emit('revoked', 'delete', ARGV[2], m.u, now) end
trim(ix, now)
return n
`)

// KEYS: session, index. ARGV: now, handle, extension ms.
// Returns {now, expiry, deadline}.
var scriptExtend = retry.NewScript(luaCommon + `
local now = setup(2)
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
local now = setup(3)
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
if dead(m, now) then kill(old, idx, ARGV[2], now, m) return nil end
redis.call('RENAME', old, new)
m.v = m.v + 1
local ix = ixof(idx, m.u)
if ix then unindex(ix, ARGV[2]) end
local exp = slide(new, idx, ARGV[3], m, now)
emit('rotated', '', ARGV[3], m.u, now, ARGV[2])
return {fmt(now), fmt(exp)}
`)

// KEYS: index. ARGV: now, base, user.
// Returns {{handle, m, x}, ...} for the user's live sessions.
var scriptList = retry.NewScript(luaCommon + `
local now = setup(1)
local idx, base, user = KEYS[1], ARGV[2], ARGV[3]
trim(idx, now)
local out = {}
for _, h in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
  local k = base .. h
  local m = meta(k)
  if m == nil then
    unindex(idx, h)
  elseif m and m.u == user then
    if dead(m, now) then
      kill(k, idx, h, now, m)
    else
      table.insert(out, {h, pack(m), m.x})
    end
  end
end
trim(idx, now)
return out
`)

// KEYS: index, this call's tombstone. ARGV: now, base, user, handle (” =
// all). Deletes the user's sessions (or the one with the handle) and returns
// how many existed. The count is kept in the call's tombstone for
// tombstoneMs, so the same call re-sent after a lost reply answers it again.
var scriptDeleteUser = retry.NewScript(luaCommon + `
local now = setup(2)
local idx, base, user, only = KEYS[1], ARGV[2], ARGV[3], ARGV[4]
local done = redis.call('GET', KEYS[2])
if done then return tonumber(done) end
local members
if only ~= '' then members = {only} else members = redis.call('ZRANGE', idx, 0, -1) end
local n = 0
for _, h in ipairs(members) do
  local k = base .. h
  local m = meta(k)
  if m and m.u == user then
    local d = redis.call('DEL', k)
    n = n + d
    unindex(idx, h)
    if d == 1 then emit('revoked', 'user', h, user, now) end
  elseif m == nil then
    unindex(idx, h)
  end
end
trim(idx, now)
if n > 0 then redis.call('SET', KEYS[2], n, 'PX', ` + tombstoneMs + `) end
return n
`)

// KEYS: index. ARGV: now, base. Prunes index members whose session expired
// or vanished; returns how many were pruned.
var scriptCleanup = retry.NewScript(luaCommon + `
local now = setup(1)
local idx, base = KEYS[1], ARGV[2]
local before = redis.call('ZCARD', idx)
if before == 0 then return 0 end
trim(idx, now)
for _, h in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
  if redis.call('EXISTS', base .. h) == 0 then
    -- Gone before its expiry without a script: eviction, or a DEL by hand.
    if EV then
      local rec = redis.call('HGET', idx .. 'e', h)
      local user = rec and string.match(rec, '^%d+,(.*)$')
      if user then emit('revoked', 'vanished', h, user, now) end
    end
    unindex(idx, h)
  end
end
trim(idx, now)
return before - redis.call('ZCARD', idx)
`)

var allScripts = []retry.Script{
	scriptCreate, scriptGet, scriptTouch, scriptUpdate, scriptDelete, scriptExtend,
	scriptRotate, scriptList, scriptDeleteUser, scriptCleanup,
}
