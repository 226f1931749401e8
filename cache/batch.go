package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/retry"
)

// MGet returns the values stored under keys: a map with an entry for each hit
// (misses, stale, negative and corrupt values are absent, as with Get). On a
// standalone server it is one MGET. On Cluster the keys are grouped by slot
// (one MGET per slot, a GET for a lone key) and the commands sent as one
// pipeline per master, in parallel: one round trip per master. Keys whose
// node failed are reported in a *BatchError; the map holds the others.
func (c *Cache) MGet(ctx context.Context, keys []string) (out map[string][]byte, err error) {
	ctx, sp := c.trace(ctx, opMGet)
	defer func() { sp.SetInt(AttrKeys, len(keys)); sp.SetInt(AttrHits, len(out)); sp.Done(err) }()
	out, failed, err := c.mget(ctx, keys, codecRaw)
	c.count(len(out), len(keys)-failed-len(out))
	return out, err
}

// mget is MGet for any codec, without counting hits and misses; it also
// returns the number of keys that failed.
func (c *Cache) mget(ctx context.Context, keys []string, codec byte) (map[string][]byte, int, error) {
	out := make(map[string][]byte, len(keys))
	res, failed, err := c.mgetEntries(ctx, keys, codec)
	for i, r := range res {
		if r.state == readHit {
			out[keys[i]] = r.e.payload
		}
	}
	return out, failed, err
}

// readState is the outcome of one key of a batch read.
type readState uint8

const (
	readFailed  readState = iota // the key's node failed: in the *BatchError
	readHit                      // a fresh value
	readMissing                  // nothing usable: absent, stale, "not found", a lease marker
	readCorrupt                  // did not decode: counted and deleted
)

// readResult is one key of a batch read.
type readResult struct {
	e     entry
	state readState
}

// mgetEntries reads keys in one round trip per master and returns their
// outcomes, aligned with keys, and the number that failed. Corrupt values
// are counted and deleted. A *BatchError names the failed keys.
func (c *Cache) mgetEntries(ctx context.Context, keys []string, codec byte) ([]readResult, int, error) {
	res := make([]readResult, len(keys))
	if len(keys) == 0 {
		return res, 0, nil
	}
	rks := make([]string, len(keys))
	for i, k := range keys {
		rks[i] = c.key(k)
	}
	vals, errs, err := c.readMany(ctx, rks)
	if err != nil {
		return res, len(keys), fmt.Errorf("cache: mget %d keys: %w", len(keys), err)
	}
	now := time.Now().UnixMilli()
	var failed map[string]error
	var corrupt []string
	for i, k := range keys {
		if errs[i] != nil {
			if failed == nil {
				failed = make(map[string]error)
			}
			failed[k] = errs[i]
			continue
		}
		res[i].state = readMissing
		v, ok := vals[i].(string)
		if !ok {
			continue
		}
		e, err := c.decode([]byte(v), codec)
		if err != nil {
			res[i].state = readCorrupt
			corrupt = append(corrupt, k)
			continue
		}
		res[i].e = e
		if e.hit(now) {
			res[i].state = readHit
		}
	}
	if len(corrupt) > 0 {
		c.st.decodeFailures.Add(uint64(len(corrupt)))
		_ = c.Delete(ctx, corrupt...) // best effort: the next read retries it
	}
	if failed != nil {
		return res, len(failed), &BatchError{Op: "mget", Errs: failed}
	}
	return res, 0, nil
}

// readMany reads rks; vals[i] is a string or nil (missing), errs[i] a
// per-key failure. err is set only when nothing could be attempted.
func (c *Cache) readMany(ctx context.Context, rks []string) (vals []any, errs []error, err error) {
	vals = make([]any, len(rks))
	errs = make([]error, len(rks))
	if _, ok := c.rdb.(*redis.Client); ok {
		args := make([]any, 1+len(rks))
		args[0] = "mget"
		for i, k := range rks {
			args[i+1] = k
		}
		cmd := redis.NewSliceCmd(ctx, args...)
		_ = c.reader.Process(ctx, cmd)
		v, err := cmd.Result()
		if err != nil {
			return nil, nil, err
		}
		return v, errs, nil
	}
	_, cluster := c.rdb.(*redis.ClusterClient)
	type group struct {
		idx []int
		cmd redis.Cmder
	}
	var groups []*group
	if cluster {
		bySlot := make(map[int]*group)
		for i, rk := range rks {
			s := keySlot(rk)
			g := bySlot[s]
			if g == nil {
				g = &group{}
				bySlot[s] = g
				groups = append(groups, g)
			}
			g.idx = append(g.idx, i)
		}
	} else {
		groups = make([]*group, len(rks))
		for i := range rks {
			groups[i] = &group{idx: []int{i}}
		}
	}
	// The cluster pipeline splits the commands by master and sends each
	// master's batch on its own goroutine: one round trip per master.
	_, _ = c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, g := range groups {
			if len(g.idx) == 1 {
				g.cmd = p.Get(ctx, rks[g.idx[0]])
				continue
			}
			args := make([]string, len(g.idx))
			for j, i := range g.idx {
				args[j] = rks[i]
			}
			g.cmd = p.MGet(ctx, args...)
		}
		return nil
	})
	for _, g := range groups {
		switch cmd := g.cmd.(type) {
		case *redis.StringCmd:
			i := g.idx[0]
			v, err := cmd.Result()
			switch {
			case err == nil:
				vals[i] = v
			case !errors.Is(err, redis.Nil):
				errs[i] = err
			}
		case *redis.SliceCmd:
			v, err := cmd.Result()
			for j, i := range g.idx {
				if err != nil {
					errs[i] = err
				} else if j < len(v) {
					vals[i] = v[j]
				}
			}
		}
	}
	return vals, errs, nil
}

// MSet stores every value of items under its key for ttl (0: no expiry),
// each with its own jittered TTL. It is one pipeline of SETs: one round trip
// on a standalone server, one per master (in parallel) on Cluster. Keys that
// failed are reported in a *BatchError; the others are stored. The SETs are
// idempotent and may be re-sent by the client's retries (a Ring's pipelines
// are not); a key whose outcome is unknown has an error matching
// retry.ErrAmbiguous (see "Writes and lost replies" in the package doc).
func (c *Cache) MSet(ctx context.Context, items map[string][]byte, ttl time.Duration) error {
	return c.mset(ctx, items, ttl, codecRaw)
}

func (c *Cache) mset(ctx context.Context, items map[string][]byte, ttl time.Duration, codec byte) error {
	if ttl < 0 {
		return fmt.Errorf("cache: mset: negative ttl %v", ttl)
	}
	if len(items) == 0 {
		return nil
	}
	now := time.Now()
	keys := make([]string, 0, len(items))
	vals := make([][]byte, 0, len(items))
	ttls := make([]time.Duration, 0, len(items))
	for k, v := range items {
		redisTTL, soft := c.ttls(ttl, now)
		b, err := c.encode(codec, v, soft, false)
		if err != nil {
			return fmt.Errorf("cache: mset %q: %w", k, err)
		}
		keys, vals, ttls = append(keys, k), append(vals, b), append(ttls, redisTTL)
	}
	cmds := make([]*redis.StatusCmd, len(keys))
	defer c.near.invalidate(keys...)
	_, _ = c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Set(ctx, c.key(k), vals[i], ttls[i])
		}
		return nil
	})
	return msetErrors(c.rdb, keys, cmds)
}

// msetErrors reports the writes of keys, sent through rdb, whose commands
// failed in a *BatchError (Op "mset"), each matching retry.ErrAmbiguous
// when its outcome is unknown; nil when none failed.
func msetErrors[C interface{ Err() error }](rdb redis.UniversalClient, keys []string, cmds []C) error {
	var failed map[string]error
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			if failed == nil {
				failed = make(map[string]error)
			}
			failed[keys[i]] = retry.AmbiguousVia(rdb, "set", err)
		}
	}
	if failed != nil {
		return &BatchError{Op: "mset", Errs: failed}
	}
	return nil
}
