package cache

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/pipeline"
	"github.com/rediskit/rediskit/internal/unique"
	"github.com/rediskit/rediskit/retry"
)

// Cache is a cache-aside layer over Redis for []byte values, with stampede
// protection, freshness controls and cluster-correct batching. It is safe for
// concurrent use. Create it with New and stop it with Close.
type Cache struct {
	rdb     redis.UniversalClient
	reader  *pipeline.Exec // reads and leases: see Options.Pipelining
	opt     Options
	ns      string // "<prefix>:v<version>:"
	leaseNS string // "<prefix>:v<version>#lease{"
	channel string // Pub/Sub channel of lease events

	// channelArg is channel boxed once, as a script argument; leaseMsArg
	// is LeaseTTL in ms, boxed once.
	channelArg, leaseMsArg any

	// st is written by every read (hits, misses): cache lines of its own,
	// so those writes do not evict the read-mostly fields above, which
	// every read uses, from the other cores.
	_  [64]byte
	st counters
	_  [64]byte

	life       lifecycle // every goroutine the Cache starts
	flights    flightMap // the flights running in this process
	refreshing sync.Map  // stored key -> struct{}: a refresh runs here

	hub hub

	near *near // nil without Options.Near

	tokens *unique.Source // lease owners (newToken)

	condSet atomic.Int32 // whether SET takes IFEQ: condUnknown, condYes, condNo

	// grouped: marker commits may go as a group (commitgroup.go).
	grouped bool
	group   commitGroup
}

// New returns a Cache storing values in rdb under the namespace of opt. It
// does no I/O; call Preload to load the Lua scripts on every master ahead of
// the first miss. It panics if rdb is nil and returns an error naming the
// field for invalid options.
func New(rdb redis.UniversalClient, opt Options) (*Cache, error) {
	if rdb == nil {
		panic("cache: New with a nil redis client")
	}
	o, err := opt.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Cache{
		rdb:    rdb,
		opt:    o,
		ns:     o.Prefix + ":v" + strconv.FormatUint(uint64(o.Version), 10) + ":",
		tokens: unique.New(),
	}
	base := c.ns[:len(c.ns)-1]
	c.leaseNS = base + "#lease{"
	c.channel = base + "#events"
	c.channelArg = c.channel
	c.leaseMsArg = c.opt.LeaseTTL.Milliseconds()
	if c.reader, err = pipeline.New(rdb, pipeline.Mode(o.Pipelining)); err != nil {
		return nil, &OptionError{Field: "Pipelining", Value: strconv.Quote(o.Pipelining.String()), Reason: err.Error(), Err: err}
	}
	_, single := rdb.(*redis.Client)
	c.grouped = single && o.Tracer == nil && o.Pipelining != PipelineAlways
	c.group.yield = runtime.Gosched
	c.group.wires = commitWires
	c.life.init()
	c.flights.init()
	c.hub.init()
	if o.Near != nil {
		if c.near, err = newNear(rdb, c.ns, &c.life, *o.Near); err != nil {
			c.life.cancel()
			return nil, err
		}
	}
	return c, nil
}

// Close cancels running loads and background refreshes, stops the Pub/Sub
// listener and the near tier (its tracking connections are clients of its
// own) and waits for every goroutine the Cache started. Close is idempotent;
// later GetOrSet calls return ErrClosed.
//
// Ownership: the redis client passed to New, and the AutoPipeliner that
// go-redis keeps for it (Options.Pipelining), belong to the caller, who may
// share them with other Caches, session stores and their own commands. Close
// closes neither, so those keep working; close the client after every Cache
// on it (TestSharedClientLifecycle).
func (c *Cache) Close() error {
	c.life.close(c.hub.close)
	if c.near != nil {
		c.near.stop()
	}
	return nil
}

// Preload loads the Lua scripts of the Cache on every master, so the first
// GetOrSet miss and Incr take one round trip instead of two, and learns
// whether the server's SET takes IFEQ, which the commit of a miss then uses
// (see "Round trips" in doc.go). Optional.
func (c *Cache) Preload(ctx context.Context) error {
	for _, s := range []retry.Script{scriptAcquire, scriptWatch, scriptCommit, scriptCommitGroup, scriptRelease, scriptIncr,
		scriptTagRegister, scriptWriteTagged, scriptTagBump, scriptTagPurge} {
		if err := s.Load(ctx, c.rdb).Err(); err != nil {
			return fmt.Errorf("cache: preload scripts: %w", err)
		}
	}
	if err := c.probeIfEq(ctx); err != nil {
		return fmt.Errorf("cache: preload: %w", err)
	}
	return nil
}

// Namespace returns the prefix of every stored key: "<Prefix>:v<Version>:".
func (c *Cache) Namespace() string { return c.ns }

func (c *Cache) key(k string) string { return c.ns + k }

// leaseKey returns the lease key of the stored key rk. It shares rk's cluster
// slot (through a hash tag chosen for that slot), so scripts may touch both,
// and it lies outside "<ns>*", so no user key can name it.
func (c *Cache) leaseKey(rk string) string {
	return c.leaseNS + slotTags()[keySlot(rk)] + "}" + rk[len(c.ns):]
}

// getEntry reads one value: (entry, true, nil) on a hit, stale or not;
// (_, false, nil) on a miss or a dropped corrupt value.
func (c *Cache) getEntry(ctx context.Context, rk string, codec byte) (entry, bool, error) {
	cmd := redis.NewStringCmd(ctx, "get", rk)
	_ = c.reader.Process(ctx, cmd)
	b, err := cmd.Bytes()
	if err != nil {
		if errors.Is(err, redis.Nil) {
			return entry{}, false, nil
		}
		return entry{}, false, err
	}
	e, err := c.decode(b, codec)
	if err != nil {
		c.dropCorrupt(ctx, rk)
		return entry{}, false, nil
	}
	return e, true, nil
}

// get is Get for any codec, without counting: the entry of a hit; a miss
// for absent, stale, negative and corrupt values and lease markers.
func (c *Cache) get(ctx context.Context, key string, codec byte) (entry, bool, error) {
	e, ok, err := c.getEntry(ctx, c.key(key), codec)
	if err != nil {
		return entry{}, false, fmt.Errorf("cache: get %q: %w", key, err)
	}
	if !ok || !e.hit(time.Now().UnixMilli()) {
		return entry{}, false, nil
	}
	return e, true, nil
}

// count records read outcomes.
func (c *Cache) count(hits, misses int) {
	if hits > 0 {
		c.st.hits.Add(uint64(hits))
	}
	if misses > 0 {
		c.st.misses.Add(uint64(misses))
	}
}

// countOne records the outcome of one read.
func (c *Cache) countOne(hit bool) {
	if hit {
		c.st.hits.Add(1)
	} else {
		c.st.misses.Add(1)
	}
}

// invalid counts and deletes the value under key, whose payload did not
// decode.
func (c *Cache) invalid(ctx context.Context, key string) {
	c.near.invalidate(key)
	c.dropCorrupt(ctx, c.key(key))
}

// Get returns the value stored under key: (value, true, nil) on a hit and
// (nil, false, nil) when there is none, it is past its TTL (a value kept only
// for stale-while-revalidate), it is a cached "not found" or the lease of a
// running load, or it could not be
// decoded (then it is deleted and counted in Stats.DecodeFailures). One
// command. Counter keys of Incr are read with Counter, not Get.
func (c *Cache) Get(ctx context.Context, key string) (_ []byte, hit bool, err error) {
	ctx, sp := c.trace(ctx, opGet)
	defer func() { sp.SetBool(AttrHit, hit); sp.Done(err) }()
	e, ok, err := c.get(ctx, key, codecRaw)
	if err != nil {
		return nil, false, err
	}
	c.countOne(ok)
	return e.payload, ok, nil
}

func (c *Cache) set(ctx context.Context, key string, codec byte, value []byte, ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("cache: set %q: negative ttl %v", key, ttl)
	}
	redisTTL, soft := c.ttls(ttl, time.Now())
	b, err := c.encode(codec, value, soft, false)
	if err != nil {
		return fmt.Errorf("cache: set %q: %w", key, err)
	}
	defer c.near.invalidate(key) // read-your-writes here; others hear from Redis
	// SET without NX, XX or GET is idempotent: the client's retries may
	// re-send it (see "Writes and lost replies" in doc.go).
	// It takes the Cache's path (Options.Pipelining), as reads do.
	if err := c.reader.Process(ctx, redis.NewStatusCmd(ctx, setArgs(c.key(key), b, redisTTL)...)); err != nil {
		return fmt.Errorf("cache: set %q: %w", key, retry.AmbiguousVia(c.rdb, "set", err))
	}
	return nil
}

// Set stores value under key for ttl (0: no expiry), replacing any value.
// One command. It is idempotent and may be re-sent by the client's retries;
// an error whose outcome is unknown matches retry.ErrAmbiguous (see "Writes
// and lost replies" in the package doc).
func (c *Cache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) (err error) {
	ctx, sp := c.trace(ctx, opSet)
	defer func() { sp.Done(err) }()
	return c.set(ctx, key, codecRaw, value, ttl)
}

// Exists reports whether something is stored under key: a value (fresh or
// kept for stale serving), a cached "not found", a counter or the lease of a
// running load. One command.
func (c *Cache) Exists(ctx context.Context, key string) (bool, error) {
	cmd := redis.NewIntCmd(ctx, "exists", c.key(key))
	_ = c.reader.Process(ctx, cmd)
	n, err := cmd.Result()
	if err != nil {
		return false, fmt.Errorf("cache: exists %q: %w", key, err)
	}
	return n > 0, nil
}

// Delete removes the values of keys and their load leases, so a load running
// for one of them cannot store its result afterwards. Missing keys are not an
// error. One command on a standalone server; on Cluster one round trip per
// master involved. It is idempotent and may be re-sent by the client's
// retries; an error whose outcome is unknown matches retry.ErrAmbiguous (see
// "Writes and lost replies" in the package doc).
func (c *Cache) Delete(ctx context.Context, keys ...string) (err error) {
	if len(keys) == 0 {
		return nil
	}
	ctx, sp := c.trace(ctx, opDelete)
	defer func() { sp.SetInt(AttrKeys, len(keys)); sp.Done(err) }()
	defer c.near.invalidate(keys...)
	if _, ok := c.rdb.(*redis.Client); ok {
		args := make([]string, 0, 2*len(keys))
		for _, k := range keys {
			rk := c.key(k)
			args = append(args, rk, c.leaseKey(rk))
		}
		err = c.rdb.Del(ctx, args...).Err()
	} else {
		// Each DEL touches one value and its lease, which share a slot; the
		// cluster pipeline sends one batch per master, in parallel.
		_, err = c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				rk := c.key(k)
				p.Del(ctx, rk, c.leaseKey(rk))
			}
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("cache: delete %d keys: %w", len(keys), retry.AmbiguousVia(c.rdb, "del", err))
	}
	return nil
}

// scriptIncr is sent once (retry.Script.RunOnce): a second run would add
// delta twice.
var scriptIncr = retry.NewScript(`
local created = redis.call('EXISTS', KEYS[1]) == 0
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if created and ARGV[2] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v`)

// Incr adds delta to the counter under key and returns the new value. When
// the call creates the counter, its TTL is set to ttl (0: no expiry) in the
// same atomic step; later calls never reset it. One command (a Lua script:
// a SET NX + INCRBY pipeline could recreate an expired counter without TTL).
// Counters are plain integers without a value header: read them with Counter.
//
// Incr is not idempotent, so it is never re-sent once it may have reached
// the server, whatever the client's MaxRetries: when its reply is lost the
// error matches retry.ErrAmbiguous and the counter may or may not have moved
// (see "Writes and lost replies" in the package doc).
func (c *Cache) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	if ttl < 0 {
		return 0, fmt.Errorf("cache: incr %q: negative ttl %v", key, ttl)
	}
	v, err := scriptIncr.RunOnce(ctx, c.rdb, []string{c.key(key)}, delta, ttl.Milliseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("cache: incr %q: %w", key, retry.Ambiguous("incr", err))
	}
	return v, nil
}

// Decr subtracts delta from the counter under key; see Incr.
func (c *Cache) Decr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	return c.Incr(ctx, key, -delta, ttl)
}

// Counter returns the counter under key: (n, true, nil), or (0, false, nil)
// when there is none. A value that is not an integer is an error wrapping
// ErrCorrupt.
func (c *Cache) Counter(ctx context.Context, key string) (int64, bool, error) {
	cmd := redis.NewStringCmd(ctx, "get", c.key(key))
	_ = c.reader.Process(ctx, cmd)
	s, err := cmd.Result()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("cache: counter %q: %w", key, err)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("cache: counter %q: %w: not an integer", key, ErrCorrupt)
	}
	return n, true, nil
}

// setArgs is SET key value, with PX ttl when ttl > 0 (at least 1 ms, as
// go-redis rounds).
func setArgs(rk string, b []byte, ttl time.Duration) []any {
	if ttl > 0 {
		return []any{"set", rk, b, "px", max(1, ttl.Milliseconds())}
	}
	return []any{"set", rk, b}
}
