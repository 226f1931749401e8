package cache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/retry"
)

// Tag invalidation. A value written with tags (SetTagged) can be removed
// with every other value carrying one of its tags (InvalidateTags), on
// every master, at a cost proportional to the tagged values, not the
// keyspace. Three kinds of keys, all outside "<ns>*" so no user key can
// name them, tag names encoded by encodeTag:
//
//	meta   "<base>#tag{<tag>}"            hash: "e" the tag's epoch, and one
//	                                      field per cluster slot holding
//	                                      values of the tag (the registry)
//	index  "<base>#tagi{<slot tag>}<tag>" sorted set of the value keys of
//	                                      the tag in that slot, scored by
//	                                      their expiry (ms; +inf for none)
//	floor  "<base>#tagf{<slot tag>}<tag>" the lowest epoch a write of the
//	                                      tag in that slot may carry
//
// Index and floor share the slot of their values (through slotTags, as
// lease keys do), so one script writes a value and its index entries.
//
//	write       1. per tag, scriptTagRegister on the meta: register the
//	               value's slot and read the epoch, atomically;
//	            2. scriptSetTagged in the value's slot: refused when a
//	               floor exceeds the epoch read (an invalidation ran in
//	               between), otherwise SET the value and ZADD it to each
//	               index, pruning expired members.
//	invalidate  1. scriptTagBump on each meta: bump the epoch, return the
//	               registered slots;
//	            2. per slot, scriptTagPurge: UNLINK the index's members,
//	               DEL the index, raise the floor to the new epoch.
//
// The race, in order of the meta (one key, so its scripts are ordered): a
// write registered before the bump has its slot in the invalidation's list
// and carries an older epoch, so its value is either written before the
// purge of its slot (and purged) or refused by the raised floor; a write
// registered after the bump carries the new epoch and began after the
// invalidation did. So a write that began before InvalidateTags was called
// is never readable after it returns (TestTagInvalidationRace).
//
// Nothing outlives its values: index, meta and floor expire no earlier than
// their longest-lived member and no later (a member with no TTL makes them
// persistent); the meta outlives every floor, so an epoch never restarts
// under a floor. A floor lives at least LeaseTTL+LoadTimeout, the bound on
// a write that began before an invalidation (TestTagIndexesExpire).
var (
	// KEYS: meta. ARGV: ttl ms (0: none), slot numbers. Returns the epoch.
	scriptTagRegister = retry.NewScript(`
local existed = redis.call('EXISTS', KEYS[1])
for i = 2, #ARGV do redis.call('HSETNX', KEYS[1], ARGV[i], '1') end
local e = redis.call('HGET', KEYS[1], 'e') or '0'
local ttl = tonumber(ARGV[1])
if ttl == 0 then
  redis.call('PERSIST', KEYS[1])
else
  local p = redis.call('PTTL', KEYS[1])
  if existed == 0 or (p >= 0 and p < ttl) then redis.call('PEXPIRE', KEYS[1], ttl) end
end
return e`)

	// KEYS: value, then index and floor of each tag. ARGV: value, ttl ms (0:
	// none), now ms, the epoch read for each tag. Returns 1, or 0 when
	// refused.
	scriptSetTagged = retry.NewScript(`
local n = (#KEYS - 1) / 2
for i = 1, n do
  local f = redis.call('GET', KEYS[1 + 2 * i])
  if f and tonumber(f) > tonumber(ARGV[3 + i]) then return 0 end
end
local ttl = tonumber(ARGV[2])
local score = '+inf'
if ttl == 0 then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
  score = tonumber(ARGV[3]) + ttl
end
for i = 1, n do
  local ik = KEYS[2 * i]
  redis.call('ZREMRANGEBYSCORE', ik, '-inf', '(' .. ARGV[3])
  redis.call('ZADD', ik, score, KEYS[1])
  if ttl == 0 then
    redis.call('PERSIST', ik)
  elseif redis.call('ZCOUNT', ik, '+inf', '+inf') == 0 and redis.call('PTTL', ik) < ttl then
    redis.call('PEXPIRE', ik, ttl)
  end
end
return 1`)

	// KEYS: meta. ARGV: the shortest floor life, ms. Returns {} when the
	// tag has no value, else {epoch, floor ms (0: none), slots...}.
	scriptTagBump = retry.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local e = redis.call('HINCRBY', KEYS[1], 'e', 1)
local p = redis.call('PTTL', KEYS[1])
local f = tonumber(ARGV[1])
if p < 0 then
  f = 0
elseif p < f then
  redis.call('PEXPIRE', KEYS[1], f)
else
  f = p
end
local out = {e, f}
local h = redis.call('HKEYS', KEYS[1])
for i = 1, #h do if h[i] ~= 'e' then out[#out + 1] = h[i] end end
return out`)

	// KEYS: index, floor (one slot). ARGV: epoch, floor ms (0: none), the
	// most members to remove. Raises the floor, then removes up to that
	// many of the index's values from it. Returns {values removed, members
	// left}.
	scriptTagPurge = retry.NewScript(`
local m = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
local n = 0
for i = 1, #m do n = n + redis.call('UNLINK', m[i]) end
if #m > 0 then redis.call('ZREM', KEYS[1], unpack(m)) end
local cur = redis.call('GET', KEYS[2])
if not cur or tonumber(cur) < tonumber(ARGV[1]) then
  if ARGV[2] == '0' then
    redis.call('SET', KEYS[2], ARGV[1])
  else
    redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  end
end
return {n, redis.call('ZCARD', KEYS[1])}`)
)

// ErrBadTag is returned for an empty tag.
var ErrBadTag = errors.New("cache: bad tag")

// encodeTag escapes a tag for a key: bytes outside [A-Za-z0-9_.-] become
// %XX, so a tag never carries a brace (it cannot move a key's hash slot)
// nor a glob character, and distinct tags stay distinct.
func encodeTag(tag string) string {
	clean := true
	for i := 0; i < len(tag); i++ {
		if !tagSafe(tag[i]) {
			clean = false
			break
		}
	}
	if clean {
		return tag
	}
	var b strings.Builder
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(tag); i++ {
		ch := tag[i]
		if tagSafe(ch) {
			b.WriteByte(ch)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[ch>>4])
		b.WriteByte(hex[ch&15])
	}
	return b.String()
}

func tagSafe(ch byte) bool {
	return ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '_' || ch == '.' || ch == '-'
}

// tagBase is "<Prefix>:v<Version>", the root of the tag keys.
func (c *Cache) tagBase() string { return strings.TrimSuffix(c.leaseNS, "#lease{") }

func (c *Cache) tagMeta(enc string) string { return c.tagBase() + "#tag{" + enc + "}" }

func (c *Cache) tagIndex(slot int, enc string) string {
	return c.tagBase() + "#tagi{" + slotTags()[slot] + "}" + enc
}

func (c *Cache) tagFloor(slot int, enc string) string {
	return c.tagBase() + "#tagf{" + slotTags()[slot] + "}" + enc
}

// tagSlot returns the slot whose index and floor keys serve the value key
// rk: its cluster slot on a ClusterClient, 0 (one index per tag) on a
// single master. A Ring spreads keys by hash with no slot to share, so it
// is refused with ErrUnsupportedClient.
func (c *Cache) tagSlot(rk string) (int, error) {
	switch c.rdb.(type) {
	case *redis.ClusterClient:
		return keySlot(rk), nil
	case *redis.Ring:
		return 0, fmt.Errorf("tags on a *redis.Ring: %w", ErrUnsupportedClient)
	}
	return 0, nil
}

// cleanTags returns the encoded tags, deduplicated, or ErrBadTag.
func cleanTags(tags []string) ([]string, error) {
	out := make([]string, 0, len(tags))
	seen := make(map[string]struct{}, len(tags))
	for _, t := range tags {
		if t == "" {
			return nil, fmt.Errorf("%w: empty", ErrBadTag)
		}
		e := encodeTag(t)
		if _, dup := seen[e]; dup {
			continue
		}
		seen[e] = struct{}{}
		out = append(out, e)
	}
	return out, nil
}

// SetTagged stores value under key for ttl (0: no expiry), like Set, and
// records it under each of tags, so that InvalidateTags removes it. Two
// round trips: the tags' epochs are read (one pipeline per master), then
// one script writes the value and its index entries. A write that an
// InvalidateTags of one of its tags overtook between the two is not
// stored and returns nil: it is ordered before the invalidation, which
// removed it. Like Set it is safe to re-send; an error whose outcome is
// unknown matches retry.ErrAmbiguous. Tags are any non-empty strings.
func (c *Cache) SetTagged(ctx context.Context, key string, value []byte, ttl time.Duration, tags ...string) (err error) {
	ctx, sp := c.trace(ctx, opSet)
	defer func() { sp.Done(err) }()
	return c.setTagged(ctx, key, codecRaw, value, ttl, tags)
}

func (c *Cache) setTagged(ctx context.Context, key string, codec byte, value []byte, ttl time.Duration, tags []string) error {
	if len(tags) == 0 {
		return c.set(ctx, key, codec, value, ttl)
	}
	err := c.msetTagged(ctx, map[string][]byte{key: value}, ttl, codec, tags)
	var be *BatchError
	if errors.As(err, &be) {
		return fmt.Errorf("cache: set %q: %w", key, be.Errs[key])
	}
	return err
}

// MSetTagged stores every value of items for ttl, like MSet, each recorded
// under every one of tags (see SetTagged). Two round trips per master: one
// pipeline reads the tags' epochs (one command per tag), one writes every
// value with its index entries (one script per key). Keys that failed are
// reported in a *BatchError; the others are stored.
func (c *Cache) MSetTagged(ctx context.Context, items map[string][]byte, ttl time.Duration, tags ...string) error {
	if len(tags) == 0 {
		return c.mset(ctx, items, ttl, codecRaw)
	}
	return c.msetTagged(ctx, items, ttl, codecRaw, tags)
}

func (c *Cache) msetTagged(ctx context.Context, items map[string][]byte, ttl time.Duration, codec byte, tags []string) error {
	if ttl < 0 {
		return fmt.Errorf("cache: mset: negative ttl %v", ttl)
	}
	enc, err := cleanTags(tags)
	if err != nil {
		return fmt.Errorf("cache: mset: %w", err)
	}
	if len(items) == 0 {
		return nil
	}
	now := time.Now()
	type write struct {
		key   string
		rk    string
		slot  int
		b     []byte
		ttlMs int64
	}
	writes := make([]write, 0, len(items))
	var slots []any // distinct, in order
	seen := make(map[int]bool)
	var maxTTL int64
	for k, v := range items {
		redisTTL, soft := c.ttls(ttl, now)
		b, err := c.encode(codec, v, soft, false)
		if err != nil {
			return fmt.Errorf("cache: mset %q: %w", k, err)
		}
		rk := c.key(k)
		slot, err := c.tagSlot(rk)
		if err != nil {
			return fmt.Errorf("cache: mset: %w", err)
		}
		if !seen[slot] {
			seen[slot] = true
			slots = append(slots, slot)
		}
		maxTTL = max(maxTTL, redisTTL.Milliseconds())
		writes = append(writes, write{k, rk, slot, b, redisTTL.Milliseconds()})
	}
	if ttl == 0 {
		maxTTL = 0
	}
	// Step 1: register the slots and read each tag's epoch.
	regs := make([]settleCmd, len(enc))
	for i, e := range enc {
		regs[i] = settleCmd{scriptTagRegister, []string{c.tagMeta(e)}, append([]any{maxTTL}, slots...)}
	}
	epochs := make([]any, len(enc))
	for i, cmd := range c.pipeScripts(ctx, regs) {
		epoch, err := cmd.Text()
		if err != nil {
			return fmt.Errorf("cache: mset: tag %q: %w", tags[i], retry.Ambiguous("set", err))
		}
		epochs[i] = epoch
	}
	// Step 2: each value with its index entries, refused by a raised floor.
	keys := make([]string, len(writes))
	sets := make([]settleCmd, len(writes))
	nowMs := now.UnixMilli()
	for i, w := range writes {
		keys[i] = w.key
		ks := make([]string, 1, 1+2*len(enc))
		ks[0] = w.rk
		args := make([]any, 3, 3+len(enc))
		args[0], args[1], args[2] = w.b, w.ttlMs, nowMs
		for j, e := range enc {
			ks = append(ks, c.tagIndex(w.slot, e), c.tagFloor(w.slot, e))
			args = append(args, epochs[j])
		}
		sets[i] = settleCmd{scriptSetTagged, ks, args}
	}
	defer c.near.invalidate(keys...)
	var failed map[string]error
	for i, cmd := range c.pipeScripts(ctx, sets) {
		if err := cmd.Err(); err != nil {
			if failed == nil {
				failed = make(map[string]error)
			}
			failed[keys[i]] = retry.Ambiguous("set", err)
		}
	}
	if failed != nil {
		return &BatchError{Op: "mset", Errs: failed}
	}
	return nil
}

// SetTagged stores v under key with tags; see Cache.SetTagged.
func (t *Typed[T]) SetTagged(ctx context.Context, key string, v T, ttl time.Duration, tags ...string) (err error) {
	ctx, sp := t.c.trace(ctx, opSet)
	defer func() { sp.Done(err) }()
	p, err := t.codec.Marshal(v)
	if err != nil {
		return fmt.Errorf("cache: set %q: encode: %w", key, err)
	}
	return t.c.setTagged(ctx, key, t.codec.ID(), p, ttl, tags)
}

// MSetTagged stores every value of items with tags; see Cache.MSetTagged.
func (t *Typed[T]) MSetTagged(ctx context.Context, items map[string]T, ttl time.Duration, tags ...string) error {
	raw := make(map[string][]byte, len(items))
	for k, v := range items {
		p, err := t.codec.Marshal(v)
		if err != nil {
			return fmt.Errorf("cache: mset %q: encode: %w", k, err)
		}
		raw[k] = p
	}
	if len(tags) == 0 {
		return t.c.mset(ctx, raw, ttl, t.codec.ID())
	}
	return t.c.msetTagged(ctx, raw, ttl, t.codec.ID(), tags)
}

// InvalidateTags removes every value written with one of tags, on every
// master, and returns how many it removed. Two steps: the tags' epochs are
// bumped (one pipeline per master), then one script per (tag, slot
// holding values of the tag) removes them, one pipeline per master: the
// cost follows the tagged values and their slots, never the keyspace.
// When it returns, no write of these tags that began before it was called
// is readable (see the protocol in tags.go). Safe to re-send (a re-sent
// bump only moves the epoch further); an error may leave some values of a
// tag in place, and the call may be repeated.
func (c *Cache) InvalidateTags(ctx context.Context, tags ...string) (removed int, err error) {
	ctx, sp := c.trace(ctx, opInvalidateTags)
	defer func() { sp.SetInt(AttrRemoved, removed); sp.Done(err) }()
	enc, err := cleanTags(tags)
	if err == nil {
		_, err = c.tagSlot("")
	}
	if err != nil {
		return 0, fmt.Errorf("cache: invalidate tags: %w", err)
	}
	minFloor := (c.opt.LeaseTTL + c.opt.LoadTimeout).Milliseconds()
	bumps := make([]settleCmd, len(enc))
	for i, e := range enc {
		bumps[i] = settleCmd{scriptTagBump, []string{c.tagMeta(e)}, []any{minFloor}}
	}
	var purges []settleCmd
	var errs []error
	for i, cmd := range c.pipeScripts(ctx, bumps) {
		res, err := cmd.Slice()
		if err != nil {
			errs = append(errs, fmt.Errorf("tag %q: %w", tags[i], retry.Ambiguous("invalidate", err)))
			continue
		}
		if len(res) < 2 {
			continue // no value was ever written with it
		}
		epoch, _ := res[0].(int64)
		floor, _ := res[1].(int64)
		for _, s := range res[2:] {
			str, _ := s.(string)
			slot, err := strconv.Atoi(str)
			if err != nil || slot < 0 || slot >= numSlots {
				continue
			}
			purges = append(purges, settleCmd{scriptTagPurge, []string{c.tagIndex(slot, enc[i]), c.tagFloor(slot, enc[i])}, []any{epoch, floor, c.opt.UnlinkBatch}})
		}
	}
	// Each round removes up to UnlinkBatch values per index, one pipeline
	// per master, so no script blocks the server for long. An index is
	// visited until it is empty, or (writers adding to it) for as many
	// rounds as its first count asked.
	rounds := make([]int, len(purges))
	for round := 0; len(purges) > 0; round++ {
		var next []settleCmd
		var nextRounds []int
		for i, cmd := range c.pipeScripts(ctx, purges) {
			res, err := cmd.Int64Slice()
			if err == nil && len(res) != 2 {
				err = fmt.Errorf("unexpected purge reply %v", res)
			}
			if err != nil {
				errs = append(errs, retry.Ambiguous("invalidate", err))
				continue
			}
			removed += int(res[0])
			if round == 0 {
				rounds[i] = int(res[1])/c.opt.UnlinkBatch + 1
			}
			if res[1] > 0 && round < rounds[i] {
				next, nextRounds = append(next, purges[i]), append(nextRounds, rounds[i])
			}
		}
		purges, rounds = next, nextRounds
	}
	if len(errs) > 0 {
		return removed, fmt.Errorf("cache: invalidate tags: %w", errors.Join(errs...))
	}
	return removed, nil
}
