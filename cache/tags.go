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

// Tag invalidation. A value written with tags (SetTagged, MSetTagged,
// GetOrSetTagged, GetOrSetManyTagged) can be removed with every other value
// carrying one of its tags (InvalidateTags), on every master, at a cost
// proportional to the tagged values, not the keyspace. Four kinds of keys,
// all outside "<ns>*" so no user key can name them, tag names encoded by
// encodeTag:
//
//	meta   "<base>#tag{<tag>}"            hash: "e" the tag's epoch, and one
//	                                      field per cluster slot holding
//	                                      values of the tag (the registry)
//	marks  "<base>#tagm{<tag>}"           sorted set: the invalidations of
//	                                      the tag in progress, each scored
//	                                      by its deadline (ms, server TIME)
//	index  "<base>#tagi{<slot tag>}<tag>" sorted set of the value keys of
//	                                      the tag in that slot, scored by
//	                                      their expiry (ms; +inf for none)
//	floor  "<base>#tagf{<slot tag>}<tag>" the lowest epoch a write of the
//	                                      tag in that slot may carry
//
// Meta and marks share the tag's slot; index and floor share the slot of
// their values (through slotTags, as lease keys do), so one script writes a
// value and its index entries.
//
//	write       1. per tag, scriptTagRegister on the meta: refused while a
//	               mark is live; otherwise register the value's slot and
//	               read the epoch, atomically;
//	            2. scriptWriteTagged in the value's slot: refused when a
//	               floor exceeds the epoch read (an invalidation ran in
//	               between), otherwise SET the value and ZADD it to each
//	               index, pruning expired members.
//	invalidate  1. scriptTagBump on each meta: add a mark (a fresh id,
//	               deadline markLife ahead), bump the epoch, return the
//	               registered slots;
//	            2. per slot, scriptTagPurge: UNLINK the index's members,
//	               DEL the index, raise the floor to the new epoch;
//	            3. ZREM its mark, then return.
//
// A tagged GetOrSet's load registers (step 1) after it takes its lease and
// before its loader is called, and its commit is step 2 under the lease
// (scriptWriteTagged with the lease's proof); a refused commit drops the
// lease instead. A refused write is not stored and reports success: it is
// ordered before the invalidation that refused it.
//
// The race, in order of the meta and marks (one slot, so their scripts are
// ordered): a write registered before the bump has its slot in the
// invalidation's list and carries an older epoch, so its value is either
// written before the purge of its slot (and purged) or refused by the
// raised floor; a write that registers between the bump and the ZREM finds
// the mark and is refused; a write registered after the ZREM is ordered
// after the invalidation. So every tagged write whose registration ran in
// Redis before InvalidateTags removed its mark, the last thing it does
// before returning, is not readable after it returns
// (TestTagInvalidationRace, TestTagInvalidationStrictRace,
// TestGetOrSetTaggedLoadDuringInvalidation). A registration may still run
// between that ZREM and the return reaching the caller: the two calls are
// then concurrent, and the write is ordered after the invalidation.
//
// Marks never block writers for long: concurrent invalidations add marks
// of their own (one does not clear another's), and a mark whose
// invalidator died is dead at its deadline, markLife =
// LeaseTTL+LoadTimeout after its bump, and dropped with the marks key (its
// TTL is its latest deadline): the longest a crashed invalidator refuses a
// tag's writes (TestTagMarkOfCrashedInvalidatorExpires). An InvalidateTags
// that takes markLife or longer cannot vouch for the writes that
// registered after its mark died and returns an error saying so
// (TestInvalidateTagsOutlivingItsMark); its values are purged all the same.
//
// Nothing outlives its values for long: index and floor expire no earlier
// than their longest-lived member and no later (a member with no TTL makes
// them persistent); the meta expires no earlier than its longest-lived
// value and, for a GetOrSet, no later than the TTL the load asked for plus
// LeaseTTL (the latest its commit can land), even when the load is never
// stored; the meta outlives every floor, so an epoch never restarts under a
// floor. A floor lives at least LeaseTTL+LoadTimeout, the bound on a write
// that began before an invalidation; a mark is gone when its invalidation
// returns, or at its deadline (TestTagIndexesExpire).
var (
	// KEYS: meta, marks. ARGV: ttl ms (0: none), slot numbers. Returns the
	// epoch, or '' (nothing registered) while an invalidation of the tag
	// is in progress.
	scriptTagRegister = retry.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf') > 0 then return '' end
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

	// KEYS: value, lease key (the value key itself for a lease marker, or
	// without a lease), then index and floor of each tag. ARGV: the lease's
	// proof ('' for a write without a lease), value, ttl ms (0: none), now
	// ms, channel, stored event prefix, released event prefix, the epoch
	// read for each tag. Returns 1 when stored; 0 when the lease is not
	// ours (nothing done); 2 when refused by a floor, the lease then
	// dropped and its waiters told to re-check.
	scriptWriteTagged = retry.NewScript(`
local lk, proof = KEYS[2], ARGV[1]
local cur
if proof ~= '' then
  cur = redis.call('GET', lk)
  if cur ~= proof and cur ~= proof .. '+' then return 0 end
end
local n = (#KEYS - 2) / 2
for i = 1, n do
  local f = redis.call('GET', KEYS[2 + 2 * i])
  if f and tonumber(f) > tonumber(ARGV[7 + i]) then
    if proof ~= '' then
      redis.call('DEL', lk)
      if cur ~= proof then redis.call('PUBLISH', ARGV[5], ARGV[7] .. KEYS[1]) end
    end
    return 2
  end
end
local ttl = tonumber(ARGV[3])
local score = '+inf'
if ttl == 0 then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
  score = tonumber(ARGV[4]) + ttl
end
for i = 1, n do
  local ik = KEYS[1 + 2 * i]
  redis.call('ZREMRANGEBYSCORE', ik, '-inf', '(' .. ARGV[4])
  redis.call('ZADD', ik, score, KEYS[1])
  if ttl == 0 then
    redis.call('PERSIST', ik)
  elseif redis.call('ZCOUNT', ik, '+inf', '+inf') == 0 and redis.call('PTTL', ik) < ttl then
    redis.call('PEXPIRE', ik, ttl)
  end
end
if proof ~= '' then
  if lk ~= KEYS[1] then redis.call('DEL', lk) end
  if cur ~= proof then redis.call('PUBLISH', ARGV[5], ARGV[6] .. KEYS[1]) end
end
return 1`)

	// KEYS: meta, marks. ARGV: the shortest floor life, ms; the mark's id;
	// the mark's life, ms. Adds the mark (dropping dead ones), then returns
	// {} when the tag has no value, else {epoch, floor ms (0: none),
	// slots...}. Re-sent, it moves the mark's deadline and the epoch
	// further.
	scriptTagBump = retry.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local life = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], now + life, ARGV[2])
if redis.call('PTTL', KEYS[2]) < life then redis.call('PEXPIRE', KEYS[2], life) end
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

func (c *Cache) tagMarks(enc string) string { return c.tagBase() + "#tagm{" + enc + "}" }

// markLife is how long an invalidation's mark refuses the writes of its
// tags: the longest a crashed invalidator can hold them off.
func (c *Cache) markLife() time.Duration { return c.opt.LeaseTTL + c.opt.LoadTimeout }

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

// registerTags is step 1 of a tagged write (see the protocol above): per
// tag, register slots in its meta and read its epoch, one pipeline (a
// round trip per master holding a meta). ok is false, and epochs nil, when
// an invalidation of one of the tags is in progress: the write must not be
// stored. ttlMs is the life the metas must have at least (0: none).
func (c *Cache) registerTags(ctx context.Context, enc []string, slots []any, ttlMs int64) (epochs []any, ok bool, err error) {
	regs := make([]settleCmd, len(enc))
	for i, e := range enc {
		regs[i] = settleCmd{scriptTagRegister, []string{c.tagMeta(e), c.tagMarks(e)}, append([]any{ttlMs}, slots...)}
	}
	epochs = make([]any, len(enc))
	ok = true
	for i, cmd := range c.pipeScripts(ctx, regs) {
		epoch, err := cmd.Text()
		if err != nil {
			return nil, false, fmt.Errorf("tag %q: %w", enc[i], retry.AmbiguousVia(c.rdb, "set", err))
		}
		if epoch == "" {
			ok = false
		}
		epochs[i] = epoch
	}
	if !ok {
		return nil, false, nil
	}
	return epochs, true, nil
}

// writeTagged is step 2 of a tagged write of b under rk (in tag slot
// slot), carrying epochs; with l, under lease l (its proof checked, the
// lease settled as a commit settles it).
func (c *Cache) writeTagged(rk string, slot int, enc []string, epochs []any, l *lease, b []byte, ttlMs, nowMs int64) settleCmd {
	ks := make([]string, 2, 2+2*len(enc))
	ks[0], ks[1] = rk, rk
	args := make([]any, 7, 7+len(enc))
	args[0], args[1], args[2], args[3] = "", b, ttlMs, nowMs
	args[4], args[5], args[6] = c.channelArg, evArg(evStored), evArg(evReleased)
	if l != nil {
		args[0] = l.proof
		ks[1] = l.keys[len(l.keys)-1]
	}
	for j, e := range enc {
		ks = append(ks, c.tagIndex(slot, e), c.tagFloor(slot, e))
		args = append(args, epochs[j])
	}
	return settleCmd{scriptWriteTagged, ks, args}
}

// tagRegTTL is the meta life a tagged load of ttl registers (ms, 0: none):
// the longest the value or its negative entry can live, from a commit as
// late as its lease allows.
func (c *Cache) tagRegTTL(ttl time.Duration) int64 {
	if ttl == 0 {
		return 0
	}
	longest := max(ttl+max(c.opt.StaleWhileRevalidate, c.opt.StaleIfError), c.opt.NegativeTTL)
	return (longest + c.opt.LeaseTTL).Milliseconds()
}

// tagLoad is what a tagged load registered before its loader ran (see
// tags.go): its tags, the tag slot of each of its keys, and the epochs
// read; ok false when it must not store (an invalidation of one of the
// tags is in progress, or the registration failed).
type tagLoad struct {
	enc    []string
	slots  map[string]int // stored key -> tag slot
	epochs []any
	ok     bool
}

// registerLoad registers the tags of a load under leases ls (their keys'
// slots), for a value of ttl: one pipeline, a round trip per master
// holding a tag's meta.
func (c *Cache) registerLoad(ctx context.Context, enc []string, ls []lease, ttl time.Duration) *tagLoad {
	tl := &tagLoad{enc: enc, slots: make(map[string]int, len(ls))}
	var slots []any
	seen := make(map[int]bool)
	for _, l := range ls {
		slot, err := c.tagSlot(l.keys[0])
		if err != nil {
			return tl // refused before: loadTags
		}
		tl.slots[l.keys[0]] = slot
		if !seen[slot] {
			seen[slot] = true
			slots = append(slots, slot)
		}
	}
	epochs, ok, err := c.registerTags(ctx, enc, slots, c.tagRegTTL(ttl))
	tl.epochs, tl.ok = epochs, ok && err == nil
	return tl
}

// SetTagged stores value under key for ttl (0: no expiry), like Set, and
// records it under each of tags, so that InvalidateTags removes it. Two
// round trips: the tags' epochs are read (one pipeline per master), then
// one script writes the value and its index entries. A write that an
// InvalidateTags of one of its tags overtook between the two, or whose
// epochs were read while such an invalidation was in progress, is not
// stored and returns nil: it is ordered before the invalidation, which
// removed it (see InvalidateTags for the guarantee). Like Set it is safe
// to re-send; an error whose outcome is unknown matches
// retry.ErrAmbiguous. Tags are any non-empty strings.
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
	epochs, ok, err := c.registerTags(ctx, enc, slots, maxTTL)
	if err != nil {
		return fmt.Errorf("cache: mset: %w", err)
	}
	if !ok {
		return nil // an invalidation in progress: ordered before it
	}
	// Step 2: each value with its index entries, refused by a raised floor.
	keys := make([]string, len(writes))
	sets := make([]settleCmd, len(writes))
	nowMs := now.UnixMilli()
	for i, w := range writes {
		keys[i] = w.key
		sets[i] = c.writeTagged(w.rk, w.slot, enc, epochs, nil, w.b, w.ttlMs, nowMs)
	}
	defer c.near.invalidate(keys...)
	return msetErrors(c.rdb, keys, c.pipeScripts(ctx, sets))
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
	raw, err := t.marshalAll(items)
	if err != nil {
		return err
	}
	if len(tags) == 0 {
		return t.c.mset(ctx, raw, ttl, t.codec.ID())
	}
	return t.c.msetTagged(ctx, raw, ttl, t.codec.ID(), tags)
}

// InvalidateTags removes every value written with one of tags, on every
// master, and returns how many it removed. Three steps: the tags' epochs
// are bumped and each tag is marked "invalidation in progress" (one
// pipeline per master holding a tag), then one script per (tag, slot
// holding values of the tag) removes them, one pipeline per master (the
// cost follows the tagged values and their slots, never the keyspace),
// then the marks are removed (one pipeline per master holding a tag).
//
// When it returns, no tagged write (SetTagged, MSetTagged, GetOrSetTagged,
// GetOrSetManyTagged, on Cache or Typed) of one of these tags whose
// registration ran in Redis before the marks were removed — in particular
// none that returned, or whose loader was called, before InvalidateTags
// returned — is readable: each was purged, or refused and not stored
// (TestTagInvalidationRace, TestTagInvalidationStrictRace,
// TestGetOrSetTaggedLoadDuringInvalidation). While the marks are there,
// tagged writes of these tags are refused (they return nil and store
// nothing; a tagged GetOrSet returns its loaded value without storing it).
// A mark left by an invalidator that died refuses them for at most
// LeaseTTL+LoadTimeout (TestTagMarkOfCrashedInvalidatorExpires); a call
// that takes that long or longer returns an error, as it cannot vouch for
// writes registered after its marks died (its values are purged all the
// same: TestInvalidateTagsOutlivingItsMark). The marks are removed even
// when ctx ends early.
//
// Safe to re-send (a re-sent bump only moves the epoch and the mark's
// deadline further); an error may leave some values of a tag in place, and
// the call may be repeated.
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
	start := time.Now()
	minFloor := (c.opt.LeaseTTL + c.opt.LoadTimeout).Milliseconds()
	id := string(c.newToken())
	bumps := make([]settleCmd, len(enc))
	for i, e := range enc {
		bumps[i] = settleCmd{scriptTagBump, []string{c.tagMeta(e), c.tagMarks(e)}, []any{minFloor, id, c.markLife().Milliseconds()}}
	}
	var errs []error
	defer func() {
		// Step 3, on the settle context: a caller leaving must not leave
		// its marks to refuse writers until their deadline.
		sctx := c.traced(c.life.settle, ctx)
		cmds := make([]*redis.IntCmd, len(enc))
		_, _ = c.rdb.Pipelined(sctx, func(p redis.Pipeliner) error {
			for i, e := range enc {
				cmds[i] = redis.NewIntCmd(sctx, "zrem", c.tagMarks(e), id)
				_ = p.Process(sctx, retry.Repeatable(cmds[i]))
			}
			return nil
		})
		for i, cmd := range cmds {
			if err := cmd.Err(); err != nil {
				errs = append(errs, fmt.Errorf("tag %q: clear mark: %w", enc[i], retry.AmbiguousVia(c.rdb, "invalidate", err)))
			}
		}
		if took := time.Since(start); took >= c.markLife() {
			errs = append(errs, fmt.Errorf("took %v, not under the %v its marks refuse tagged writes: a write registered after that may be readable; repeat the call", took, c.markLife()))
		}
		if len(errs) > 0 {
			err = fmt.Errorf("cache: invalidate tags: %w", errors.Join(errs...))
		}
	}()
	var purges []settleCmd
	for i, cmd := range c.pipeScripts(ctx, bumps) {
		res, err := cmd.Slice()
		if err != nil {
			errs = append(errs, fmt.Errorf("tag %q: %w", enc[i], retry.AmbiguousVia(c.rdb, "invalidate", err)))
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
	// visited until it is empty, or for as many rounds as its first count
	// asked (no write adds to it under the mark; this bounds the loop if
	// the mark died).
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
				errs = append(errs, retry.AmbiguousVia(c.rdb, "invalidate", err))
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
	return removed, nil // errs: see the deferred step 3
}
