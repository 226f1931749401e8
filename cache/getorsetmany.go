package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/retry"
)

// BatchLoaderFunc loads the values of missing keys in one call. It returns
// the values it found; a key it leaves out does not exist (as a LoaderFunc
// returning ErrNotFound: cached for Options.NegativeTTL). An error fails
// every key of the call (returning ErrNotFound fails none: it reports that
// none exists). Its context is a LoaderFunc's.
type BatchLoaderFunc[T any] func(ctx context.Context, keys []string) (map[string]T, error)

// batchLoad is a BatchLoaderFunc for any codec: it returns encoded
// payloads, and per-key failures (a value Typed could not encode).
type batchLoad func(ctx context.Context, keys []string) (vals map[string][]byte, failed map[string]error, err error)

// GetOrSetMany returns the values under keys, loading the missing ones with
// one call of loader and storing them for ttl, with the stampede protection
// of GetOrSet for every key: across all processes, each missing key is
// loaded once at a time.
//
// One pipeline per master (one round trip on a standalone server) reads
// every key and, in the same step, takes the lease of each missing one
// (the SET NX GET of GetOrSet, once per key). loader is called once with
// the keys whose lease this call took; their results are committed by one
// pipeline per master. Keys whose lease another process holds are waited
// for as GetOrSet waits (taken over, and loaded with loader alone, if that
// process dies); keys another caller of this process is loading join its
// load. A batch of cold keys on Cluster is therefore two round trips per
// master (TestGetOrSetManyRoundTrips).
//
// The map holds the values found or loaded; keys that do not exist (left
// out by a loader, or a cached "not found") are absent. Keys that failed (a
// loader error, Redis unavailable with FailClosed, the caller's ctx) are
// reported in a *BatchError (Op "getorsetmany"); the map holds the others.
// With FailOpen, keys whose lease command failed are loaded in the same
// loader call without being stored.
func (c *Cache) GetOrSetMany(ctx context.Context, keys []string, ttl time.Duration, loader BatchLoaderFunc[[]byte]) (map[string][]byte, error) {
	return c.GetOrSetManyTagged(ctx, keys, ttl, loader) // no tags: loadTags adds nothing
}

// GetOrSetManyTagged is GetOrSetMany, every value it loads (or "not found"
// it caches) stored with tags, so that InvalidateTags of one of them
// removes it, with GetOrSetTagged's guarantee for every key. The keys this
// call leases are registered under the tags in one step between the
// leases and the loader call (one script per tag, one pipeline per master
// holding one), so a cold batch is three round trips to a master holding
// a tag and two to the others, a warm one a round trip per master
// (TestGetOrSetManyTaggedRoundTrips). Without tags it is GetOrSetMany.
// Errors are GetOrSetMany's, and ErrBadTag for an empty tag,
// ErrUnsupportedClient on a *redis.Ring.
func (c *Cache) GetOrSetManyTagged(ctx context.Context, keys []string, ttl time.Duration, loader BatchLoaderFunc[[]byte], tags ...string) (out map[string][]byte, err error) {
	ctx, sp := c.trace(ctx, opGetOrSetMany)
	defer func() { sp.SetInt(AttrKeys, len(keys)); sp.SetInt(AttrHits, len(out)); sp.Done(err) }()
	if loader == nil {
		return nil, errors.New("cache: get or set many: nil loader")
	}
	enc, err := c.loadTags(tags)
	if err != nil {
		return nil, fmt.Errorf("cache: get or set many: %w", err)
	}
	load := func(ctx context.Context, keys []string) (map[string][]byte, map[string]error, error) {
		m, err := loader(ctx, keys)
		return m, nil, err
	}
	res, err := c.getOrLoadMany(ctx, keys, ttl, codecRaw, load, enc)
	out = make(map[string][]byte, len(res))
	for k, e := range res {
		out[k] = e.payload
	}
	return out, err
}

// getOrLoadMany is GetOrSetMany for any codec, loaded values stored with
// tags (encoded; nil for none). Its map holds an entry per key found or
// loaded (never a negative one).
func (c *Cache) getOrLoadMany(ctx context.Context, keys []string, ttl time.Duration, codec byte, load batchLoad, tags []string) (map[string]entry, error) {
	if ttl < 0 {
		return nil, fmt.Errorf("cache: get or set many: negative ttl %v", ttl)
	}
	out := make(map[string]entry, len(keys))
	failed := make(map[string]error)
	pending := make(map[string]*flight, len(keys)) // answers to wait for
	// Dedupe, and join the local loads already running: no command for them.
	seen := make(map[string]struct{}, len(keys))
	var toRead []string
	for _, k := range keys {
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		if f, ok := c.flights.load(c.key(k)); ok {
			c.st.dedupLoads.Add(1)
			pending[k] = f
			continue
		}
		toRead = append(toRead, k)
	}
	misses := len(pending)
	// One step reads every key and takes the lease of each missing one.
	olds, acq, errs, marker := c.acquireMarkers(ctx, toRead)
	var owned []*flight // leases this call took: loaded by one loader call
	for i, k := range toRead {
		rk := c.key(k)
		if err := errs[i]; err != nil {
			err = c.lostAcquire(lease{keys: []string{rk}, proof: marker}, err)
			misses++
			switch {
			case unavailable(err) && c.opt.Degrade == FailOpen:
				owned = append(owned, &flight{kind: flightDirect, rk: rk, key: k, codec: codec, vals: ctx})
			case unavailable(err):
				failed[k] = fmt.Errorf("cache: get or set %q: %w", k, retry.Unavailable(err))
			default:
				failed[k] = fmt.Errorf("cache: get or set %q: %w", k, err)
			}
			continue
		}
		if acq[i] {
			misses++
			f := &flight{kind: flightFill, rk: rk, key: k, ttl: ttl, codec: codec, vals: ctx, tags: tags}
			f.rkBuf[0] = rk
			f.lease = lease{keys: f.rkBuf[:], proof: marker}
			owned = append(owned, f)
			continue
		}
		e, v := c.judge(ctx, rk, codec, olds[i])
		var stale *entry
		switch v {
		case foundRevalidate:
			c.st.staleServed.Add(1)
			c.refresh(ctx, rk, k, ttl, codec, oneOf(load, k), tags)
			fallthrough
		case foundFresh:
			c.st.hits.Add(1)
			if !e.h.Negative {
				out[k] = e
			}
			continue
		case foundStale:
			kept := e
			stale = &kept
		}
		// Another process's lease, or a value to reload that stays
		// readable meanwhile: GetOrSet's own wait, one flight per key.
		misses++
		nf := &flight{kind: flightLease, rk: rk, key: k, ttl: ttl, codec: codec, loader: oneOf(load, k), stale: stale, force: v != foundWait, vals: ctx, tags: tags}
		running, err := c.launch(nf, true)
		if err != nil {
			failed[k] = err
			continue
		}
		if running != nf {
			c.st.dedupLoads.Add(1)
		}
		pending[k] = running
	}
	c.st.misses.Add(uint64(misses))
	// Register the leased keys as local flights, so that other callers of
	// this process join them, then load them all on one goroutine.
	mine := owned[:0]
	for _, f := range owned {
		running, err := c.claim(f)
		switch {
		case err != nil:
			if f.kind == flightFill {
				c.releaseQuietly(f.lease)
			}
			failed[f.key] = err
		case running != f:
			// A local load started meanwhile (it may wait for this very
			// lease): hand the lease back and join it.
			if f.kind == flightFill {
				c.releaseQuietly(f.lease)
			}
			c.st.dedupLoads.Add(1)
			pending[f.key] = running
		default:
			mine = append(mine, f)
			pending[f.key] = f
		}
	}
	if len(mine) > 0 {
		if handOff(ctx) {
			go c.runBatch(ctx, mine, ttl, codec, load, tags)
		} else {
			c.runBatch(ctx, mine, ttl, codec, load, tags)
		}
	}
	for k, f := range pending {
		e, err := c.await(ctx, f)
		switch {
		case err == nil:
			out[k] = e
		case errors.Is(err, ErrNotFound):
		default:
			failed[k] = err
		}
	}
	if len(failed) > 0 {
		return out, &BatchError{Op: "getorsetmany", Errs: failed}
	}
	return out, nil
}

// oneOf returns a LoaderFunc loading key alone with load: the loader of a
// key whose lease this call takes over after waiting.
func oneOf(load batchLoad, key string) LoaderFunc[[]byte] {
	return func(ctx context.Context) ([]byte, error) {
		vals, failed, err := load(ctx, []string{key})
		if err != nil {
			return nil, err
		}
		if err := failed[key]; err != nil {
			return nil, err
		}
		v, ok := vals[key]
		if !ok {
			return nil, ErrNotFound
		}
		return v, nil
	}
}

// acquireMarkers is acquireMarker for many keys, in one pipeline: one
// round trip per master, the cluster pipeline re-sending a command
// redirected by MOVED or ASK (safe: our marker makes a re-sent SET NX GET
// find itself). olds[i] is the value found, acquired[i] whether the lease
// is ours (marker is its proof), errs[i] the key's failure.
func (c *Cache) acquireMarkers(ctx context.Context, rks []string) (olds []string, acquired []bool, errs []error, marker []byte) {
	olds, acquired, errs = make([]string, len(rks)), make([]bool, len(rks)), make([]error, len(rks))
	if len(rks) == 0 {
		return
	}
	marker = c.newMarker()
	cmds := make([]*redis.StringCmd, len(rks))
	_, _ = c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range rks {
			cmds[i] = redis.NewStringCmd(ctx, "set", c.key(k), marker, "px", c.leaseMsArg, "nx", "get")
			_ = p.Process(ctx, retry.Repeatable(cmds[i]))
		}
		return nil
	})
	for i, cmd := range cmds {
		old, err := cmd.Result()
		switch {
		case errors.Is(err, redis.Nil):
			acquired[i] = true
		case err != nil:
			errs[i] = err
		case ownMarker(old, marker): // our own SET, re-sent
			acquired[i] = true
		default:
			olds[i] = old
		}
	}
	return
}

// runBatch loads the keys of fs (flights this call owns, each holding one
// lifecycle reservation) with one loader call, settles their leases in one
// pipeline per master and publishes each key's answer to its flight. With
// tags, the leased keys are registered under them first (tags.go).
func (c *Cache) runBatch(vals context.Context, fs []*flight, ttl time.Duration, codec byte, load batchLoad, tags []string) {
	keys := make([]string, len(fs))
	var leased []lease
	for i, f := range fs {
		keys[i] = f.key
		if f.kind == flightFill {
			leased = append(leased, f.lease)
		}
	}
	var tl *tagLoad
	if len(tags) > 0 && len(leased) > 0 {
		tl = c.registerLoad(c.traced(c.life.ctx, vals), tags, leased, ttl)
	}
	got, keyErrs, lerr := c.callBatchLoader(c.life.ctx, vals, load, keys)
	notFound := errors.Is(lerr, ErrNotFound)
	now := time.Now()
	var settle []settleCmd
	for _, f := range fs {
		p, ok := got[f.key]
		kerr := keyErrs[f.key]
		switch {
		case lerr != nil && !notFound:
			f.err = fmt.Errorf("cache: get or set %q: load: %w", f.key, lerr)
		case kerr != nil:
			f.err = fmt.Errorf("cache: get or set %q: load: %w", f.key, kerr)
		case f.kind == flightDirect:
			f.e = entry{h: valueHeader{Codec: codec, Negative: !ok}, payload: p}
			continue
		case ok:
			redisTTL, soft := c.ttls(ttl, now)
			b, err := c.encode(codec, p, soft, false)
			if err != nil {
				f.err = fmt.Errorf("cache: get or set %q: %w", f.key, err)
				break
			}
			f.e = entry{h: valueHeader{Codec: codec, SoftExpiry: soft}, payload: p}
			settle = append(settle, c.settleStore(f.lease, b, redisTTL, tl, now))
			continue
		default: // not found
			f.e = entry{h: valueHeader{Negative: true}}
			if c.opt.NegativeTTL > 0 {
				b, _ := c.encode(codec, nil, 0, true)
				settle = append(settle, c.settleStore(f.lease, b, c.opt.NegativeTTL, tl, now))
			} else {
				settle = append(settle, settleCmd{scriptRelease, f.lease.keys, []any{f.lease.proof, c.channelArg, evArg(evNotFound)}})
			}
			continue
		}
		if f.kind == flightFill { // failed
			settle = append(settle, settleCmd{scriptRelease, f.lease.keys, []any{f.lease.proof, c.channelArg, evArg(evFailed)}})
		}
	}
	c.settleMany(settle)
	for _, f := range fs {
		c.flights.remove(f)
		close(f.done)
		c.life.exit()
	}
}

// settleStore is store as a settleCmd of runBatch: the commit of b for ttl
// under lease l, with the tags of tl (nil for none).
func (c *Cache) settleStore(l lease, b []byte, ttl time.Duration, tl *tagLoad, now time.Time) settleCmd {
	switch {
	case tl == nil:
		return c.commitCmd(l, b, ttl)
	case !tl.ok:
		return settleCmd{scriptRelease, l.keys, []any{l.proof, c.channelArg, evArg(evReleased)}}
	}
	return c.writeTagged(l.keys[0], tl.slots[l.keys[0]], tl.enc, tl.epochs, &l, b, ttl.Milliseconds(), now.UnixMilli())
}

// settleCmd is one commit or release of runBatch.
type settleCmd struct {
	s    retry.Script
	keys []string
	args []any
}

// commitCmd is scriptCommit of value for ttl (0 none) under lease l.
func (c *Cache) commitCmd(l lease, value []byte, ttl time.Duration) settleCmd {
	return markerCommitCmd(l.keys, l.proof, value, ttl.Milliseconds(), c.channelArg, evArg(evStored))
}

// markerCommitCmd is scriptCommit of value for ms (0 none) under the marker
// proof in keys[0], publishing evStored (ev) on channel when a waiter
// flagged the lease. markerCommit reads its arguments back.
func markerCommitCmd(keys []string, proof, value []byte, ms int64, channel, ev any) settleCmd {
	return settleCmd{scriptCommit, keys, []any{proof, value, ms, channel, ev}}
}

// markerCommit returns, when sc is the commit of a marker lease (commitCmd
// with one key), its proof, value and ttl in ms.
func (sc settleCmd) markerCommit() (proof, value []byte, ms int64, ok bool) {
	if sc.s.Script != scriptCommit.Script || len(sc.keys) != 1 {
		return nil, nil, 0, false
	}
	proof, _ = sc.args[0].([]byte)
	value, _ = sc.args[1].([]byte)
	ms, _ = sc.args[2].(int64)
	return proof, value, ms, true
}

// run sends sc through p, Repeatable (every settle script is safe to
// re-send), and returns its error.
func (sc settleCmd) run(ctx context.Context, p retry.Processor) error {
	return sc.s.RunRepeatable(ctx, p, sc.keys, sc.args...).Err()
}

// settleMany runs cmds in one pipeline per master; failures are not the
// callers' concern (see fill): a lease left behind expires. Where SET takes
// IFEQ the marker commits go first as that command (commitManyIfEq); the
// marker commits left go as group calls where the Cache groups commits
// (groupCommits).
func (c *Cache) settleMany(cmds []settleCmd) {
	c.pipeScripts(c.life.settle, c.groupCommits(c.commitManyIfEq(c.life.settle, cmds)))
}

// groupCommits replaces, on a Cache that groups commits (commitgroup.go),
// the marker commits among cmds by scriptCommitGroup calls, each as full
// as groupCall.fits allows.
func (c *Cache) groupCommits(cmds []settleCmd) []settleCmd {
	if !c.grouped {
		return cmds
	}
	var out []settleCmd
	var calls []groupCall
	for _, sc := range cmds {
		proof, value, ms, ok := sc.markerCommit()
		if !ok {
			out = append(out, sc)
			continue
		}
		if len(calls) == 0 || !calls[len(calls)-1].fits(len(value)) {
			calls = append(calls, c.newGroupCall())
		}
		calls[len(calls)-1].add(sc.keys[0], proof, value, ms)
	}
	for _, g := range calls {
		out = append(out, g.cmd())
	}
	return out
}

// commitManyIfEq sends, on a server known to take SET … IFEQ, the commits
// among cmds of marker leases (settleStore's scriptCommit with one key) as
// SET … IFEQ, in one pipeline per master, as commitIfEq does for one. It
// returns what is left for the scripts: the other commands, and the commits
// that stored nothing (a flagged marker, a lost lease) or met a syntax error.
func (c *Cache) commitManyIfEq(ctx context.Context, cmds []settleCmd) []settleCmd {
	if c.condSet.Load() != condYes {
		return cmds
	}
	sets := make([]*redis.StatusCmd, len(cmds)) // cmds[i] as SET … IFEQ; nil: not a marker commit
	n := 0
	for i, sc := range cmds {
		proof, value, ms, ok := sc.markerCommit()
		if !ok {
			continue
		}
		sets[i] = setIfEq(ctx, sc.keys[0], value, time.Duration(ms)*time.Millisecond, proof)
		n++
	}
	if n == 0 {
		return cmds
	}
	_, _ = c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, s := range sets {
			if s != nil {
				_ = p.Process(ctx, retry.Repeatable(s))
			}
		}
		return nil
	})
	var rest []settleCmd
	for i, sc := range cmds {
		if sets[i] == nil || !c.ifEqSettled(sets[i].Err()) {
			rest = append(rest, sc)
		}
	}
	return rest
}

// pipeScripts runs cmds in one pipeline (one round trip per master), sent
// Repeatable, then by EVAL those that met NOSCRIPT. It returns each
// command's final answer, aligned with cmds.
func (c *Cache) pipeScripts(ctx context.Context, cmds []settleCmd) []*redis.Cmd {
	out := make([]*redis.Cmd, len(cmds))
	run := func(sha bool, which []int) {
		_, _ = c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range which {
				out[i] = cmds[i].s.Cmd(ctx, sha, cmds[i].keys, cmds[i].args)
				_ = p.Process(ctx, retry.Repeatable(out[i]))
			}
			return nil
		})
	}
	if len(cmds) == 0 {
		return out
	}
	all := make([]int, len(cmds))
	for i := range all {
		all[i] = i
	}
	run(true, all)
	var again []int
	for i, cmd := range out {
		if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		run(false, again)
	}
	return out
}

// callBatchLoader is callLoader for a batch loader: one load in the
// statistics, a panic recovered into a *PanicError.
func (c *Cache) callBatchLoader(base, vals context.Context, load batchLoad, keys []string) (m map[string][]byte, failed map[string]error, err error) {
	vals, sp := c.trace(vals, opLoad)
	defer func() { sp.Done(err) }()
	sp.SetInt(AttrKeys, len(keys))
	start := time.Now()
	ctx := newLoadCtx(base, vals, start.Add(c.opt.LoadTimeout))
	defer ctx.release()
	c.st.loads.Add(1)
	defer c.endLoad(start, &err)
	return load(ctx, keys)
}

// GetOrSetMany returns the values under keys, loading the missing ones with
// one call of loader; see Cache.GetOrSetMany. With a near tier, keys it
// holds are answered locally first and the values read or loaded are
// published there, as GetOrSet does. A value that does not encode fails its
// key alone; a stored value that does not decode is deleted and its key
// asked again once.
func (t *Typed[T]) GetOrSetMany(ctx context.Context, keys []string, ttl time.Duration, loader BatchLoaderFunc[T]) (map[string]T, error) {
	return t.GetOrSetManyTagged(ctx, keys, ttl, loader)
}

// GetOrSetManyTagged is GetOrSetMany, every value it loads stored with
// tags; see Cache.GetOrSetManyTagged.
func (t *Typed[T]) GetOrSetManyTagged(ctx context.Context, keys []string, ttl time.Duration, loader BatchLoaderFunc[T], tags ...string) (out map[string]T, err error) {
	ctx, sp := t.c.trace(ctx, opGetOrSetMany)
	defer func() { sp.SetInt(AttrKeys, len(keys)); sp.SetInt(AttrHits, len(out)); sp.Done(err) }()
	if loader == nil {
		return nil, errors.New("cache: get or set many: nil loader")
	}
	enc, err := t.c.loadTags(tags)
	if err != nil {
		return nil, fmt.Errorf("cache: get or set many: %w", err)
	}
	return t.getOrSetMany(ctx, keys, ttl, loader, enc)
}

func (t *Typed[T]) getOrSetMany(ctx context.Context, keys []string, ttl time.Duration, loader BatchLoaderFunc[T], tags []string) (out map[string]T, err error) {
	load := func(ctx context.Context, keys []string) (map[string][]byte, map[string]error, error) {
		m, err := loader(ctx, keys)
		if err != nil {
			return nil, nil, err
		}
		vals := make(map[string][]byte, len(m))
		var failed map[string]error
		for k, v := range m {
			p, err := t.codec.Marshal(v)
			if err != nil {
				if failed == nil {
					failed = make(map[string]error)
				}
				failed[k] = fmt.Errorf("encode: %w", err)
				continue
			}
			vals[k] = p
		}
		return vals, failed, nil
	}
	out = make(map[string]T, len(keys))
	var rest []string
	for _, k := range keys {
		// A negative entry is a local miss here: the loader may have to run.
		if v, st := nearValue[T](t.near, k, false); st == nearHit {
			out[k] = v
			continue
		}
		rest = append(rest, k)
	}
	var toks map[string]nearToken
	if t.near != nil {
		toks = make(map[string]nearToken, len(rest))
		for _, k := range rest {
			toks[k] = t.near.begin(k)
		}
	}
	var failed map[string]error
	for attempt := 0; len(rest) > 0; attempt++ {
		res, err := t.c.getOrLoadMany(ctx, rest, ttl, t.codec.ID(), load, tags)
		var be *BatchError
		switch {
		case errors.As(err, &be):
			if failed == nil {
				failed = make(map[string]error)
			}
			for k, e := range be.Errs {
				failed[k] = e
			}
		case err != nil:
			return out, err
		}
		now := time.Now().UnixMilli()
		var corrupt []string
		for k, e := range res {
			var v T
			if err := t.codec.Unmarshal(e.payload, &v); err != nil {
				t.c.invalid(ctx, k)
				if attempt == 0 {
					corrupt = append(corrupt, k)
					continue
				}
				if failed == nil {
					failed = make(map[string]error)
				}
				failed[k] = fmt.Errorf("cache: get or set %q: decode: %w", k, errors.Join(ErrCorrupt, err))
				continue
			}
			out[k] = v
			if toks != nil && !e.stale(now) {
				t.near.publish(k, toks[k], v, e.h.SoftExpiry, len(e.payload))
			}
		}
		rest = corrupt
	}
	if failed != nil {
		return out, &BatchError{Op: "getorsetmany", Errs: failed}
	}
	return out, nil
}
