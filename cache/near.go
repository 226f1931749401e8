package cache

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"
)

// NearOptions turns on the near tier of a Cache: an in-process cache of the
// decoded values of its Typed caches, kept coherent by Redis itself (CLIENT
// TRACKING in broadcast mode on the namespace prefix). Every field's zero
// value means "use the default".
type NearOptions struct {
	// MaxEntries bounds the number of local entries. Default 100,000.
	MaxEntries int
	// MaxBytes bounds the estimated size of the local entries, in bytes. An
	// entry is charged its key, its encoded payload and 64 bytes of overhead
	// (the size of a decoded Go value cannot be measured in general), and at
	// least MaxBytes/MaxEntries, so that neither bound is exceeded. Default
	// 64 MiB.
	MaxBytes int64
	// MaxStaleness, when positive, bounds how long a local entry is served
	// after it was read from Redis. With tracking it is only a safety net.
	// Where the server cannot track (CLIENT TRACKING is refused: an embedded
	// server, a proxy, an ACL), it keeps the near tier running in a TTL-only
	// mode whose entries may be stale for up to MaxStaleness; without it the
	// near tier turns itself off there. Default 0: no bound, no TTL-only mode.
	MaxStaleness time.Duration
	// HealthInterval is how often an idle tracking connection is pinged. One
	// that has not answered by the next interval is replaced and the local
	// tier flushed, so a silently dead connection (a paused server, a black
	// hole) cannot keep stale entries longer than about 2×HealthInterval.
	// Default 1s.
	HealthInterval time.Duration
	// TopologyInterval is how often the masters of a Cluster or Ring client
	// are re-read, to track new masters and drop old ones. Default 1s.
	TopologyInterval time.Duration
	// Logger receives the one line logged when the near tier turns itself
	// off (or falls back to TTL-only mode). Default slog.Default().
	Logger *slog.Logger
}

func (o *NearOptions) withDefaults() (NearOptions, error) {
	n := *o
	if n.MaxEntries < 0 {
		return n, badOption("Near.MaxEntries", n.MaxEntries, "negative")
	}
	if n.MaxBytes < 0 {
		return n, badOption("Near.MaxBytes", n.MaxBytes, "negative")
	}
	if err := noNegative(
		durField{"Near.MaxStaleness", n.MaxStaleness}, durField{"Near.HealthInterval", n.HealthInterval},
		durField{"Near.TopologyInterval", n.TopologyInterval},
	); err != nil {
		return n, err
	}
	if n.MaxEntries == 0 {
		n.MaxEntries = 100_000
	}
	if n.MaxBytes == 0 {
		n.MaxBytes = 64 << 20
	}
	if n.HealthInterval == 0 {
		n.HealthInterval = time.Second
	}
	if n.TopologyInterval == 0 {
		n.TopologyInterval = time.Second
	}
	if n.Logger == nil {
		n.Logger = slog.Default()
	}
	return n, nil
}

// NearMode is the state of a near tier.
type NearMode int

const (
	// NearDisabled: the Cache has no near tier (Options.Near is nil), or it
	// turned itself off because the server cannot track.
	NearDisabled NearMode = iota
	// NearTracking: local entries are invalidated by CLIENT TRACKING. They
	// are served only while every master's tracking connection is up.
	NearTracking
	// NearTTLOnly: the server cannot track; local entries are served for at
	// most NearOptions.MaxStaleness.
	NearTTLOnly
)

func (m NearMode) String() string {
	switch m {
	case NearTracking:
		return "tracking"
	case NearTTLOnly:
		return "ttl-only"
	}
	return "disabled"
}

// NearStats is a snapshot of a near tier's counters, since New.
type NearStats struct {
	// Mode is the tier's current mode.
	Mode NearMode
	// Serving reports whether local entries are served now: in tracking mode,
	// whether every master's tracking connection is armed.
	Serving bool
	// Hits counts reads of Typed caches answered from process memory with a
	// value.
	Hits uint64
	// NegativeHits counts reads of Typed caches (Get, MGet) answered from
	// process memory with "not found": a negative entry, left by an earlier
	// read that found nothing usable in Redis.
	NegativeHits uint64
	// Misses counts reads of Typed caches that went to Redis while the near
	// tier was on (not found locally, or not serving).
	Misses uint64
	// Fills counts entries put in the local tier by reads of Redis (Get,
	// MGet, GetOrSet), values and negative entries alike; NegativeFills
	// counts the negative ones among them.
	Fills, NegativeFills uint64
	// Evictions counts entries removed to respect MaxEntries or MaxBytes,
	// or because their soft TTL or MaxStaleness ran out.
	Evictions uint64
	// Invalidations counts keys named by invalidation messages from Redis.
	Invalidations uint64
	// Flushes counts times every local entry was dropped: a tracking
	// connection lost, a FLUSHALL/FLUSHDB, a topology change.
	Flushes uint64
	// Entries is the number of local entries (an estimate).
	Entries int
	// Bytes is the weight charged for the local entries: their estimated
	// size, small entries counted at MaxBytes/MaxEntries (see MaxBytes).
	Bytes uint64
}

// NearStats returns the near tier's counters; the zero NearStats (Mode
// NearDisabled) when the Cache has none. No I/O.
func (c *Cache) NearStats() NearStats {
	n := c.near
	if n == nil {
		return NearStats{}
	}
	n.mu.Lock()
	mode := n.mode
	n.mu.Unlock()
	return NearStats{
		Mode:          mode,
		Serving:       n.serving.Load(),
		Hits:          n.st.hits.Load(),
		NegativeHits:  n.st.negHits.Load(),
		Misses:        n.st.misses.Load(),
		Fills:         n.st.fills.Load(),
		NegativeFills: n.st.negFills.Load(),
		Evictions:     n.st.evictions.Load(),
		Invalidations: n.st.invalidations.Load(),
		Flushes:       n.st.flushes.Load(),
		Entries:       n.lru.EstimatedSize(),
		Bytes:         n.bytes(),
	}
}

// nearStripes is the number of per-key invalidation counters; keys share
// them by hash, and a collision only costs a skipped local insert.
const nearStripes = 4096

// nearEntry is a decoded value in the local tier.
type nearEntry struct {
	v      any
	exp    int64 // Unix ns after which it is not served; 0 = never
	weight uint32
}

type nearCounters struct {
	hits, negHits, misses, fills, negFills, evictions, invalidations, flushes atomic.Uint64
}

// nearAbsent is the value of a negative entry: the key's last read from
// Redis found nothing usable (no value, a cached "not found", a stale value,
// the marker of a running load). Broadcast tracking reports every write to
// a key of the namespace, present or not, so a negative entry is
// invalidated exactly like a value (TestNearNegativeEntries).
type nearAbsent struct{}

// nearState is what the local tier holds for a key.
type nearState uint8

const (
	nearNone     nearState = iota // nothing served locally: ask Redis
	nearHit                       // a value
	nearNegative                  // a negative entry: "not found"
)

// near is the local tier of a Cache.
//
// Coherence. A value may be put in the local tier only if nothing that could
// have changed it happened between the moment its read was sent to Redis and
// the moment it is inserted. Three counters witness that: gen (bumped at every
// change of the serving state: a tracking connection lost or armed, a
// topology change, a flush), serving, and the invalidation counter of the
// key's stripe (bumped by every invalidation message naming a key of the
// stripe, and by local writes). begin records them before the read; publish
// compares them inside otter's Compute, under the lock of the key's bucket, and
// an invalidation bumps the counter before it removes the key under that same
// lock: either the insert sees the new count and gives up, or the removal
// comes after the insert and removes it. A flush bumps gen before
// InvalidateAll, which does not lock every bucket, so publish re-checks gen
// after its insert and removes its own entry if gen moved: the flush then
// either saw the entry or the re-check sees the flush.
type near struct {
	rdb  redis.UniversalClient // the Cache's client: topology and INFO
	ns   string                // the namespace tracked
	life *lifecycle            // the Cache's: owns the manager and otter's tasks
	opt  NearOptions
	lru  *otter.Cache[string, nearEntry]
	seed maphash.Seed
	seqs []atomic.Uint64
	gen  atomic.Uint64

	// serving is read by every Get: true in TTL-only mode, and in tracking
	// mode while down == 0. Written under mu.
	serving atomic.Bool

	mu      sync.Mutex
	mode    NearMode
	down    int // trackers not armed, plus 1 until the masters are known
	offOnce sync.Once
	ctx     context.Context
	cancel  context.CancelFunc

	st nearCounters

	// beforePublish, when set by a test, runs between the Redis reply and the
	// local insert.
	beforePublish func(key string)
	// onTracker, when set by a test, sees every tracker started.
	onTracker func(*tracker)
}

// newNear returns the near tier of the namespace ns over rdb, its
// goroutines owned by life.
func newNear(rdb redis.UniversalClient, ns string, life *lifecycle, opt NearOptions) (*near, error) {
	return newNearWith(rdb, ns, life, opt, nil)
}

// newNearWith is newNear; setup (tests) runs before the manager starts.
func newNearWith(rdb redis.UniversalClient, ns string, life *lifecycle, opt NearOptions, setup func(*near)) (*near, error) {
	n := &near{
		rdb:  rdb,
		ns:   ns,
		life: life,
		opt:  opt,
		seed: maphash.MakeSeed(),
		seqs: make([]atomic.Uint64, nearStripes),
		mode: NearTracking,
		down: 1,
	}
	floor := uint32(min(uint64(opt.MaxBytes)/uint64(opt.MaxEntries), math.MaxUint32))
	lru, err := otter.New(&otter.Options[string, nearEntry]{
		MaximumWeight: uint64(opt.MaxBytes),
		Weigher: func(_ string, e nearEntry) uint32 {
			return max(e.weight, floor)
		},
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, nearEntry]) time.Duration {
			if e.Value.exp == 0 {
				return math.MaxInt64
			}
			return time.Duration(e.Value.exp - time.Now().UnixNano())
		}),
		OnDeletion: func(e otter.DeletionEvent[string, nearEntry]) {
			if e.WasEvicted() {
				n.st.evictions.Add(1)
			}
		},
		Executor: n.execute,
		Logger:   slogLogger{opt.Logger},
	})
	if err != nil {
		return nil, fmt.Errorf("cache: near tier: %w", err)
	}
	n.lru = lru
	n.ctx, n.cancel = context.WithCancel(life.ctx)
	if setup != nil {
		setup(n)
	}
	if !life.goOwned(n.manage) {
		return nil, ErrClosed
	}
	return n, nil
}

// execute runs otter's asynchronous tasks (deletion events, maintenance) on
// goroutines the Cache's Close waits for; once it is closing, on the
// caller's goroutine.
func (n *near) execute(fn func()) {
	if !n.life.goOwned(fn) {
		fn()
	}
}

// stop ends otter's goroutines, after the Cache's Close has stopped the
// trackers and waited for every task it started.
func (n *near) stop() {
	n.cancel()
	n.lru.StopAllGoroutines()
	n.setServing(func() { n.mode = NearDisabled })
}

// bytes is the weight charged for the local entries (see MaxBytes).
func (n *near) bytes() uint64 { return n.lru.WeightedSize() }

func (n *near) stripe(key string) *atomic.Uint64 {
	return &n.seqs[maphash.String(n.seed, key)&(nearStripes-1)]
}

// nearToken is what begin saw before a read was sent.
type nearToken struct {
	gen, seq uint64
	ok       bool
}

// begin records the state before a read of key is sent to Redis. Order
// matters: gen is read before serving, and state changes write serving
// before they bump gen, so a token taken across a change is refused later.
//
// A nil near (no near tier) returns the zero token, which publish ignores:
// Typed takes the same path with and without a near tier.
func (n *near) begin(key string) nearToken {
	if n == nil {
		return nearToken{}
	}
	g := n.gen.Load()
	if !n.serving.Load() {
		return nearToken{}
	}
	return nearToken{gen: g, seq: n.stripe(key).Load(), ok: true}
}

// publish inserts a value read from Redis under tok, unless anything that
// could have changed it happened since begin. soft is the value's soft
// expiry (Unix ms, 0 = none); size the encoded payload's length.
func (n *near) publish(key string, tok nearToken, v any, soft int64, size int) {
	n.put(key, tok, v, soft, size, false)
}

// publishAbsent inserts a negative entry for key, read from Redis under tok
// and found missing; soft is the soft expiry of a stored "not found" (0 for
// none). Unlike a value, a negative entry never replaces an entry already
// there: that entry was read later (a value published by a GetOrSet that
// loaded it after this read), and the write that separates the two reads
// has not been reported yet, so the older "not found" must not win.
func (n *near) publishAbsent(key string, tok nearToken, soft int64) {
	n.put(key, tok, nearAbsent{}, soft, 0, true)
}

func (n *near) put(key string, tok nearToken, v any, soft int64, size int, negative bool) {
	if !tok.ok {
		return
	}
	if h := n.beforePublish; h != nil {
		h(key)
	}
	now := time.Now().UnixNano()
	exp := soft * int64(time.Millisecond)
	if m := n.opt.MaxStaleness; m > 0 && (exp == 0 || now+int64(m) < exp) {
		exp = now + int64(m)
	}
	if exp != 0 && exp <= now {
		return
	}
	seq := n.stripe(key)
	e := nearEntry{v: v, exp: exp, weight: uint32(min(len(key)+size+64, math.MaxUint32))}
	valid := func() bool { return n.gen.Load() == tok.gen && seq.Load() == tok.seq }
	wrote := false
	_, ok := n.lru.Compute(key, func(old nearEntry, found bool) (nearEntry, otter.ComputeOp) {
		switch {
		case !valid() && !negative && found:
			// Something in key's stripe changed since begin: maybe key,
			// maybe a key that shares its stripe. This value was read
			// after the entry held, or written by this process over it, so
			// the entry goes: left until key's own invalidation arrives, it
			// would answer a read with what this value replaced (a "not
			// found" where a GetOrSet has just stored one).
			return old, otter.InvalidateOp
		case !valid() || (negative && found):
			return old, otter.CancelOp
		}
		wrote = true
		return e, otter.WriteOp
	})
	if !wrote {
		return
	}
	if ok && !valid() {
		n.lru.Invalidate(key)
		return
	}
	n.st.fills.Add(1)
	if negative {
		n.st.negFills.Add(1)
	}
}

// nearValue returns the local value of key if the near tier serves it and
// it holds a T (another Typed over the same Cache may have stored another
// type under the key: that reads as a local miss). A nil near has none. No
// allocation. A negative entry is reported as nearNegative and counted as a
// negative hit if countNegative (Get, MGet), as a miss otherwise (GetOrSet,
// which must ask Redis to load).
func nearValue[T any](n *near, key string, countNegative bool) (T, nearState) {
	var zero T
	if n == nil {
		return zero, nearNone
	}
	v, ok := n.lookup(key)
	if ok {
		if _, neg := v.(nearAbsent); neg { // before v.(T): T may be an interface
			if countNegative {
				n.st.negHits.Add(1)
				return zero, nearNegative
			}
		} else if tv, ok := v.(T); ok {
			n.st.hits.Add(1)
			return tv, nearHit
		}
		n.st.misses.Add(1)
	}
	return zero, nearNone
}

// nearValues puts the local values of keys in out and returns the keys
// left to read from Redis: all of them with a nil near. Keys with a
// negative entry are neither in out nor in the result.
func nearValues[T any](n *near, keys []string, out map[string]T) []string {
	if n == nil {
		return keys
	}
	rest := keys[:0:0]
	for _, k := range keys {
		switch v, st := nearValue[T](n, k, true); st {
		case nearHit:
			out[k] = v
		case nearNone:
			rest = append(rest, k)
		}
	}
	return rest
}

// lookup returns the local value of key, if it is served now.
func (n *near) lookup(key string) (any, bool) {
	if !n.serving.Load() {
		n.st.misses.Add(1)
		return nil, false
	}
	e, ok := n.lru.GetIfPresent(key)
	if !ok {
		n.st.misses.Add(1)
		return nil, false
	}
	return e.v, true
}

// invalidate drops the local copies of keys (caller's keys) and refuses the
// inserts of reads in flight for them. A nil near (no near tier) does
// nothing: the Cache's writes call it unconditionally.
func (n *near) invalidate(keys ...string) {
	if n == nil {
		return
	}
	for _, k := range keys {
		n.stripe(k).Add(1)
		n.lru.Invalidate(k)
	}
}

// invalidateStored handles an invalidation message: stored key names.
func (n *near) invalidateStored(rks []string) {
	for _, rk := range rks {
		n.st.invalidations.Add(1)
		if k, ok := strings.CutPrefix(rk, n.ns); ok {
			n.invalidate(k)
		}
	}
}

// flush drops every local entry and refuses the inserts of reads in flight.
// A nil near does nothing.
func (n *near) flush() {
	if n == nil {
		return
	}
	n.gen.Add(1)
	n.lru.InvalidateAll()
	n.st.flushes.Add(1)
}

// setServing applies a state change under mu, recomputes serving, and bumps
// gen so reads sent before it do not publish. Entries are flushed when the
// tier stops serving or the change says so.
func (n *near) setServing(change func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	was := n.serving.Load()
	change()
	now := n.mode == NearTTLOnly || (n.mode == NearTracking && n.down == 0)
	n.serving.Store(now)
	if was && !now {
		n.flush()
		return
	}
	n.gen.Add(1)
}

// turnOff is called when the server refused CLIENT TRACKING: the tier turns
// itself off, or to TTL-only mode with MaxStaleness, with one log line.
func (n *near) turnOff(cause error) {
	n.offOnce.Do(func() {
		ttl := n.opt.MaxStaleness > 0
		n.setServing(func() {
			if ttl {
				n.mode = NearTTLOnly
			} else {
				n.mode = NearDisabled
			}
		})
		n.flush()
		if ttl {
			n.opt.Logger.Warn("cache: near tier in TTL-only mode: the server cannot track keys",
				"namespace", n.ns, "max_staleness", n.opt.MaxStaleness, "error", cause)
		} else {
			n.opt.Logger.Warn("cache: near tier off: the server cannot track keys",
				"namespace", n.ns, "error", cause)
		}
		n.cancel() // stop the trackers
	})
}

// slogLogger adapts slog to otter's Logger.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Warn(ctx context.Context, msg string, err error) {
	s.l.WarnContext(ctx, "cache: near tier: "+msg, "error", err)
}

func (s slogLogger) Error(ctx context.Context, msg string, err error) {
	s.l.ErrorContext(ctx, "cache: near tier: "+msg, "error", err)
}
