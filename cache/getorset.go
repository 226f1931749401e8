package cache

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/rediskit/rediskit/retry"
)

// LoaderFunc loads the value of a missing key. Its context carries the values
// of the caller's context (trace ids, tenant, logger) but not its
// cancellation or deadline, as context.WithoutCancel: one caller leaving does
// not cancel a load that others wait for. It ends after Options.LoadTimeout
// or at Close; a loader must honour it. When concurrent callers share one
// load, the loader runs once, with the values of the caller that started it;
// a stale-while-revalidate refresh runs with the values of the caller that
// was served the stale value (TestLoaderSeesCallerValues). Returning
// ErrNotFound (wrapped or not) reports that the value does not exist.
type LoaderFunc[T any] func(ctx context.Context) (T, error)

// GetOrSet returns the value under key, or runs loader on a miss, stores its
// result for ttl and returns it. Concurrent misses of one key are served by a
// single loader call across every process using the same namespace: in this
// process by a shared flight, across processes by a lease in Redis, waiters
// being woken by Pub/Sub. A caller leaves when its ctx ends and the load goes
// on, except the caller that starts the load with a ctx that has no deadline:
// it runs the load itself and returns its result when it ends (package doc,
// "Stampede protection").
//
// Errors: a loader's ErrNotFound comes back wrapped (and is cached for
// Options.NegativeTTL); a loader error or panic (*PanicError) reaches every
// waiter; ErrRemoteLoad when another process's loader failed; with Redis
// unavailable, an error matching retry.ErrUnavailable (FailClosed) or the
// loader's own result (FailOpen). When the reply to the lease command is
// lost and the client does not re-send it, the lease is handed back and the
// call is answered as with Redis unavailable; with FailClosed the error then
// also matches retry.ErrAmbiguous. After Close, ErrClosed, which matches
// retry.ErrUnavailable too. A hit is one command (SET NX GET of a lease
// marker, which returns the value when there is one); a miss is two: that
// command, then the conditional write.
func (c *Cache) GetOrSet(ctx context.Context, key string, ttl time.Duration, loader LoaderFunc[[]byte]) ([]byte, error) {
	return c.GetOrSetTagged(ctx, key, ttl, loader) // no tags: loadTags adds nothing
}

// GetOrSetTagged is GetOrSet, the value it loads (or the "not found" it
// caches) stored with tags, so that InvalidateTags of one of them removes
// it. A hit is one command, as GetOrSet's; a miss is three round trips:
// the lease command, the tags' registration (one script per tag, one
// pipeline per master holding one, before the loader is called), then the
// conditional write of the value with its index entries
// (TestGetOrSetTaggedCommands). A load whose registration ran before an
// InvalidateTags of one of its tags removed its marks is never stored
// readable after that InvalidateTags returns: its write is refused, or
// purged (TestGetOrSetTaggedLoadDuringInvalidation); the loaded value
// still reaches the callers. While such an invalidation runs, or when the
// registration fails, the value is loaded and returned but not stored, and
// the lease is handed back. Tags go with a load: a hit returns the stored
// value as it is, with the tags it was stored with (or none), and
// concurrent calls for one key share the load of the first one, with its
// tags. Without tags it is GetOrSet. Errors are
// GetOrSet's, and ErrBadTag for an empty tag, ErrUnsupportedClient on a
// *redis.Ring.
func (c *Cache) GetOrSetTagged(ctx context.Context, key string, ttl time.Duration, loader LoaderFunc[[]byte], tags ...string) (_ []byte, err error) {
	ctx, sp := c.trace(ctx, opGetOrSet)
	defer func() { sp.Done(err) }()
	enc, err := c.loadTags(tags)
	if err != nil {
		return nil, fmt.Errorf("cache: get or set %q: %w", key, err)
	}
	e, err := c.getOrLoad(ctx, key, ttl, codecRaw, loader, enc)
	if err != nil {
		return nil, err
	}
	return e.payload, nil
}

// loadTags returns the encoded tags of a tagged load (nil for none), or
// ErrBadTag, or ErrUnsupportedClient.
func (c *Cache) loadTags(tags []string) ([]string, error) {
	if len(tags) == 0 {
		return nil, nil
	}
	enc, err := cleanTags(tags)
	if err == nil {
		_, err = c.tagSlot("")
	}
	return enc, err
}

// getOrLoad is GetOrSet for any codec; loader returns the encoded payload,
// stored with tags (encoded; nil for none).
// It reads top-down: join a local load, else one command reads the value
// and takes the lease of a missing key, then the answer found is served or
// a flight loads (or waits for another process's load).
func (c *Cache) getOrLoad(ctx context.Context, key string, ttl time.Duration, codec byte, loader LoaderFunc[[]byte], tags []string) (entry, error) {
	if ttl < 0 {
		return entry{}, fmt.Errorf("cache: get or set %q: negative ttl %v", key, ttl)
	}
	rk := c.key(key)
	c.st.sample()
	// A load of this key already running here: join it, no command at all.
	if f, ok := c.flights.load(rk); ok {
		c.st.misses.Add(1)
		c.st.dedupLoads.Add(1)
		c.traceBool(ctx, AttrHit, false)
		return c.await(ctx, f)
	}
	if c.st.win.readFirst.Load() && c.reader.Overlapping() {
		e, fresh, err := c.readFresh(ctx, rk, codec)
		switch {
		case fresh:
			c.st.hits.Add(1)
			c.traceBool(ctx, AttrHit, true)
			return result(key, e)
		case err != nil && unavailable(err):
			return c.degrade(ctx, key, rk, codec, loader, err)
		}
		// Missing, a lease marker, stale, or an error: the lease
		// command below reads it again and decides.
	}
	old, acquired, marker, err := c.acquireMarker(ctx, rk)
	if err != nil {
		err = c.lostAcquire(lease{keys: []string{rk}, proof: marker}, err)
		if unavailable(err) {
			return c.degrade(ctx, key, rk, codec, loader, err)
		}
		return entry{}, fmt.Errorf("cache: get or set %q: %w", key, err)
	}
	kind, force := flightFill, false
	var stale *entry
	if !acquired {
		e, v := c.judge(ctx, rk, codec, old)
		switch v {
		case foundRevalidate:
			c.st.staleServed.Add(1)
			c.refresh(ctx, rk, key, ttl, codec, loader, tags)
			fallthrough
		case foundFresh:
			c.st.hits.Add(1)
			c.traceBool(ctx, AttrHit, true)
			return result(key, e)
		case foundStale:
			kept := e // only this copy escapes, not every hit's entry
			stale = &kept
		}
		// A stale value stays readable while the flight loads: its lease
		// is then the separate lease key.
		kind, force = flightLease, v != foundWait
	}
	c.st.misses.Add(1)
	c.traceBool(ctx, AttrHit, false)
	f := &flight{kind: kind, rk: rk, key: key, ttl: ttl, codec: codec, loader: loader, stale: stale, force: force, vals: ctx, tags: tags}
	if acquired {
		f.rkBuf[0] = rk
		f.lease = lease{keys: f.rkBuf[:], proof: marker}
	}
	return c.join(ctx, f)
}

// readFresh is GetOrSet's read-first path: a plain GET, and the entry if
// it is an answer (a fresh value, or a fresh cached "not found").
//
// GetOrSet's lease command, SET NX PX GET, reads a value and takes the
// lease of a missing key in one round trip, so a miss costs two round
// trips (the lease, then the commit). But it is a write with six
// arguments, and on a hit it costs the server more than a GET does; under
// load the auto-pipelined batches wait for the server's time on each
// command, and a hit through it ran at 0.72× go-redis/cache's Once (a
// GET) at 128 goroutines on the same client. So while at least 7 reads in
// 8 hit (counters.sample) and commands overlap (pipeline.Exec.Overlapping),
// GetOrSet reads with a GET first and takes the lease only when that finds
// no answer: one round trip more for the rare miss. A lone caller keeps
// the lease command, where a miss's extra round trip would be its whole
// latency again (TestGetOrSetReadsFirstUnderLoad).
func (c *Cache) readFresh(ctx context.Context, rk string, codec byte) (entry, bool, error) {
	e, found, err := c.getEntry(ctx, rk, codec)
	if err != nil || !found || e.h.Lease {
		return entry{}, false, err
	}
	if e.h.SoftExpiry != 0 && e.stale(time.Now().UnixMilli()) {
		return entry{}, false, nil
	}
	return e, true, nil
}

// verdict is what GetOrSet makes of the value its lease command found.
type verdict uint8

const (
	foundWait       verdict = iota // another load's marker, or a corrupt value (dropped): lease
	foundFresh                     // serve it
	foundRevalidate                // within StaleWhileRevalidate: serve it, refresh in the background
	foundStale                     // within StaleIfError: load, serve it if the load fails
	foundExpired                   // past every stale window: load
)

// judge decodes the value found under rk and says what to do with it.
func (c *Cache) judge(ctx context.Context, rk string, codec byte, old string) (entry, verdict) {
	e, err := c.decode([]byte(old), codec)
	if err != nil {
		c.dropCorrupt(ctx, rk)
		return entry{}, foundWait
	}
	if e.h.Lease {
		return entry{}, foundWait
	}
	if e.h.SoftExpiry == 0 { // no stale window: fresh until Redis expires it
		return e, foundFresh
	}
	switch age := e.age(time.Now().UnixMilli()); {
	case age < 0:
		return e, foundFresh
	case age < c.opt.StaleWhileRevalidate:
		return e, foundRevalidate
	case age < c.opt.StaleIfError:
		return e, foundStale
	}
	return entry{}, foundExpired
}

// flightKind says what a flight does.
type flightKind uint8

const (
	flightFill   flightKind = iota // the caller took the marker lease: load and commit
	flightLease                    // take the lease or wait for its owner to store the value
	flightDirect                   // Redis unavailable, FailOpen: load without storing
)

// flight is one in-process load of a key that every local caller shares:
// what to load, then its result. One allocation carries a whole miss.
type flight struct {
	kind   flightKind
	rk     string // stored key
	key    string // the caller's key
	ttl    time.Duration
	codec  byte
	loader LoaderFunc[[]byte]
	lease  lease           // flightFill
	rkBuf  [1]string       // backs lease.keys of a marker lease
	stale  *entry          // flightLease: served if the load fails
	force  bool            // flightLease: lease in the lease key, the stale value stays
	vals   context.Context // the first caller's: the loader sees its values
	tags   []string        // encoded, stored with the value; nil for none

	done chan struct{}
	e    entry // set before done is closed
	err  error
}

// join starts f, or joins the flight of its key that another caller started
// meanwhile, and waits for its answer.
func (c *Cache) join(ctx context.Context, f *flight) (entry, error) {
	running, err := c.startFlight(ctx, f)
	if err != nil {
		if f.kind == flightFill {
			c.releaseQuietly(f.lease)
		}
		return entry{}, err
	}
	if running != f {
		c.st.dedupLoads.Add(1)
		if f.kind == flightFill {
			// A local flight started between our lookup and our lease, and it
			// may be waiting for this very lease: hand it back (it re-checks
			// after registering for events, so it takes the lease at once).
			c.releaseQuietly(f.lease)
		}
	}
	return c.await(ctx, running)
}

func result(key string, e entry) (entry, error) {
	if e.h.Negative {
		return entry{}, fmt.Errorf("cache: %q: %w", key, ErrNotFound)
	}
	return e, nil
}

// startFlight returns the running flight of nf.rk, or starts nf: on a
// goroutine owned by the Cache when the caller may leave before it ends
// (handOff), on the caller's goroutine otherwise.
func (c *Cache) startFlight(ctx context.Context, nf *flight) (*flight, error) {
	return c.launch(nf, handOff(ctx))
}

// handOff reports whether a load started by a caller of ctx runs on a
// goroutine of the Cache's, so that the caller can leave at its deadline
// while the load goes on: only when ctx has a deadline. A context without
// one is a caller with no time budget: context.Background, or a request's
// context that net/http cancels when the client goes. Such a caller runs
// the load it starts itself and returns when it ends, as it would have
// waited for it anyway; its cancellation does not cut a load that other
// callers, here and in other processes, wait for. The hand-off costs a
// goroutine start and a wake-up, most of a lone miss's time on few cores
// (bench/CACHE.md, "What the hand-off costs").
func handOff(ctx context.Context) bool {
	_, ok := ctx.Deadline()
	return ok
}

// launch is startFlight; async false runs a flight it starts on the
// caller's goroutine.
func (c *Cache) launch(nf *flight, async bool) (*flight, error) {
	running, err := c.claim(nf)
	switch {
	case err != nil, running != nf:
		return running, err
	case !async:
		c.runFlight(nf)
	default:
		go c.runFlight(nf)
	}
	return nf, nil
}

// claim registers nf as the flight of its key and reserves the goroutine
// that runs it (which must call c.life.exit), or returns the flight running
// for the key already, reserving nothing; ErrClosed after Close.
func (c *Cache) claim(nf *flight) (*flight, error) {
	nf.done = make(chan struct{})
	if err := c.life.enter(); err != nil {
		return nil, err
	}
	if f, loaded := c.flights.loadOrStore(nf); loaded {
		c.life.exit()
		return f, nil
	}
	return nf, nil
}

// runFlight runs f on the Cache's base context and publishes its result.
func (c *Cache) runFlight(f *flight) {
	defer c.life.exit()
	base := c.life.ctx
	var (
		e   entry
		err error
	)
	switch f.kind {
	case flightFill:
		e, err = c.fill(base, f.vals, f.lease, f.key, f.ttl, f.codec, f.loader, nil, f.tags)
	case flightLease:
		e, err = c.loadLeased(base, f)
	case flightDirect:
		e, err = c.loadDirect(base, f.vals, f.codec, f.loader)
	}
	// A caller arriving after the delete starts a new flight, whose SET NX
	// GET re-reads the value this one stored.
	c.flights.remove(f)
	f.e, f.err = e, err
	close(f.done)
}

// await waits for f or for the caller's ctx. A flight that has ended
// answers even when ctx has ended too: a caller that ran the load itself
// (handOff) gets its result.
func (c *Cache) await(ctx context.Context, f *flight) (entry, error) {
	select {
	case <-f.done:
	case <-ctx.Done():
		select {
		case <-f.done:
		default:
			return entry{}, fmt.Errorf("cache: wait for load of %q: %w", f.key, ctx.Err())
		}
	}
	if f.err != nil {
		return entry{}, f.err
	}
	return result(f.key, f.e)
}

// serveStale answers with the value kept for StaleIfError, counted.
func (c *Cache) serveStale(stale *entry) (entry, error) {
	c.st.staleServed.Add(1)
	return *stale, nil
}

// loadLeased is the body of a flightLease: take the lease and load, or wait
// for the owner of the lease to store the value. With f.force (a stale value
// must stay readable) the lease is the separate lease key.
func (c *Cache) loadLeased(base context.Context, f *flight) (_ entry, err error) {
	rk, key, codec, stale := f.rk, f.key, f.codec, f.stale
	var wait span // the wait for another load's lease, once it starts
	defer func() { wait.Done(err) }()
	wctx, cancel := c.leaseWait(c.traced(base, f.vals))
	defer cancel()
	var events chan byte
	defer func() {
		if events != nil {
			c.hub.unregister(rk, events)
		}
	}()
	// seen is the lease marker of another load last found in rk; watch
	// says the next check must flag the lease as waited for (its owner
	// publishes its outcome only then).
	var seen string
	watch, waiting := false, false
	for {
		var (
			l        lease
			acquired bool
			pttl     int64
			err      error
		)
		if f.force {
			l = lease{keys: []string{rk, c.leaseKey(rk)}, proof: c.newToken()}
			acquired, pttl, err = c.acquireLeaseKey(wctx, l, watch)
			watch = false
		} else {
			var old string
			var marker []byte
			if watch {
				var held bool
				old, held, err = c.watchMarker(wctx, rk, seen)
				watch = false
				if err == nil && !held && old == "" {
					continue // the lease ended and took the key with it: take it
				}
				if held {
					old = seen
				}
			} else {
				old, acquired, marker, err = c.acquireMarker(wctx, rk)
			}
			l = lease{keys: []string{rk}, proof: marker}
			if err == nil && !acquired {
				e, derr := c.decode([]byte(old), codec)
				if derr != nil {
					c.dropCorrupt(wctx, rk)
					continue
				}
				if !e.h.Lease {
					return e, nil // stored meanwhile
				}
				seen = old
			}
		}
		if err != nil {
			err = c.lostAcquire(l, err)
			if stale != nil {
				return c.serveStale(stale)
			}
			if unavailable(err) {
				if c.opt.Degrade == FailOpen {
					return c.loadDirect(base, f.vals, codec, f.loader)
				}
				return entry{}, fmt.Errorf("cache: get or set %q: lease: %w", key, retry.Unavailable(err))
			}
			return entry{}, fmt.Errorf("cache: get or set %q: lease: %w", key, err)
		}
		if acquired {
			wait.Done(nil)
			return c.fill(base, f.vals, l, key, f.ttl, codec, f.loader, stale, f.tags)
		}
		if events == nil {
			_, wait = c.trace(f.vals, opLeaseWait)
			events = c.hub.register(rk)
			if c.subscribe(wctx) == nil {
				// Re-check and flag the lease: from now on its owner's event
				// cannot be missed.
				watch = true
				continue
			}
		}
		if !waiting {
			// Counted once the lease is flagged: its owner will publish.
			waiting = true
			c.st.leaseWaits.Add(1)
		}
		poll := c.opt.LeasePoll
		if pttl > 0 && time.Duration(pttl)*time.Millisecond < poll {
			poll = time.Duration(pttl+1) * time.Millisecond
		}
		t := time.NewTimer(poll)
		select {
		case ev := <-events:
			t.Stop()
			switch ev {
			case evFailed:
				if stale != nil {
					return c.serveStale(stale)
				}
				return entry{}, fmt.Errorf("cache: get or set %q: %w", key, ErrRemoteLoad)
			case evNotFound:
				return entry{h: valueHeader{Negative: true}}, nil
			}
			e, ok, err := c.getEntry(wctx, rk, codec)
			if err == nil && ok && e.answer(time.Now().UnixMilli()) {
				return e, nil
			}
		case <-t.C:
		case <-wctx.Done():
			t.Stop()
			if stale != nil {
				return c.serveStale(stale)
			}
			return entry{}, fmt.Errorf("cache: get or set %q: wait for lease: %w", key, wctx.Err())
		}
	}
}

// fill runs the loader under our lease and stores its result, with tags,
// if the lease is still ours. A tagged load registers its tags before the
// loader is called (tags.go). The loader's context ends with base and sees
// the values of vals.
func (c *Cache) fill(base, vals context.Context, l lease, key string, ttl time.Duration, codec byte, loader LoaderFunc[[]byte], stale *entry, tags []string) (entry, error) {
	var tl *tagLoad
	if len(tags) > 0 {
		tl = c.registerLoad(c.traced(base, vals), tags, []lease{l}, ttl)
	}
	payload, lerr := c.callLoader(base, vals, loader)
	// Settle the lease even when Close cancelled the load (lifecycle.settle): these
	// writes are bounded by the client's own read and write timeouts. Their
	// failure is not the callers' concern: the lease then expires, and the
	// loaded value is still the right answer for them. A commit finding the
	// lease gone (a Delete, or an expiry and another owner) stores nothing.
	switch {
	case lerr == nil:
		redisTTL, soft := c.ttls(ttl, time.Now())
		b, err := c.encode(codec, payload, soft, false)
		if err != nil {
			_ = c.release(vals, l, evFailed)
			return entry{}, fmt.Errorf("cache: get or set %q: %w", key, err)
		}
		c.store(vals, l, b, redisTTL, tl)
		return entry{h: valueHeader{Codec: codec, SoftExpiry: soft}, payload: payload}, nil
	case errors.Is(lerr, ErrNotFound):
		if c.opt.NegativeTTL > 0 {
			b, _ := c.encode(codec, nil, 0, true)
			c.store(vals, l, b, c.opt.NegativeTTL, tl)
		} else {
			_ = c.release(vals, l, evNotFound)
		}
		return entry{h: valueHeader{Negative: true}}, nil
	default:
		_ = c.release(vals, l, evFailed)
		if stale != nil {
			return c.serveStale(stale)
		}
		return entry{}, fmt.Errorf("cache: get or set %q: load: %w", key, lerr)
	}
}

// callLoader runs loader with its own timeout, recovering a panic into a
// *PanicError, and records it in the statistics. The loader's context ends
// with base and answers Value from vals.
func (c *Cache) callLoader(base, vals context.Context, loader LoaderFunc[[]byte]) (p []byte, err error) {
	vals, sp := c.trace(vals, opLoad) // the loader's own spans are its children
	defer func() { sp.Done(err) }()   // after endLoad
	start := time.Now()
	ctx := newLoadCtx(base, vals, start.Add(c.opt.LoadTimeout))
	defer ctx.release()
	c.st.loads.Add(1)
	defer c.endLoad(start, &err)
	return loader(ctx)
}

// endLoad, deferred by a loader call, turns a panic into a *PanicError in
// *err and records the load's time and failure in the statistics.
func (c *Cache) endLoad(start time.Time, err *error) {
	if r := recover(); r != nil {
		*err = &PanicError{Value: r, Stack: debug.Stack()}
	}
	c.st.loadNanos.Add(int64(time.Since(start)))
	if *err != nil && !errors.Is(*err, ErrNotFound) {
		c.st.loaderErrors.Add(1)
	}
}

// loadDirect is the fail-open path: the loader's answer, not stored.
func (c *Cache) loadDirect(base, vals context.Context, codec byte, loader LoaderFunc[[]byte]) (entry, error) {
	p, err := c.callLoader(base, vals, loader)
	if errors.Is(err, ErrNotFound) {
		return entry{h: valueHeader{Negative: true}}, nil
	}
	if err != nil {
		return entry{}, fmt.Errorf("cache: load with redis unavailable: %w", err)
	}
	return entry{h: valueHeader{Codec: codec}, payload: p}, nil
}

// degrade answers a GetOrSet whose read found Redis unavailable.
func (c *Cache) degrade(ctx context.Context, key, rk string, codec byte, loader LoaderFunc[[]byte], cause error) (entry, error) {
	if c.opt.Degrade == FailClosed {
		return entry{}, fmt.Errorf("cache: get or set %q: %w", key, retry.Unavailable(cause))
	}
	f, err := c.startFlight(ctx, &flight{kind: flightDirect, rk: rk, key: key, codec: codec, loader: loader, vals: ctx})
	if err != nil {
		return entry{}, err
	}
	return c.await(ctx, f)
}

// refresh starts one background reload of a stale value (stored with
// tags), unless one runs in this process already or another process holds
// the lease. The loader sees the values of vals, the context of the caller
// served the stale value.
func (c *Cache) refresh(vals context.Context, rk, key string, ttl time.Duration, codec byte, loader LoaderFunc[[]byte], tags []string) {
	if c.life.enter() != nil {
		return
	}
	if _, busy := c.refreshing.LoadOrStore(rk, struct{}{}); busy {
		c.life.exit()
		return
	}
	go func() {
		defer c.life.exit()
		defer c.refreshing.Delete(rk)
		ctx, cancel := c.leaseWait(c.life.ctx)
		defer cancel()
		l := lease{keys: []string{rk, c.leaseKey(rk)}, proof: c.newToken()}
		acquired, _, err := c.acquireLeaseKey(ctx, l, false)
		if err != nil {
			_ = c.lostAcquire(l, err)
		}
		if !acquired {
			return
		}
		_, _ = c.fill(c.life.ctx, vals, l, key, ttl, codec, loader, nil, tags)
	}()
}

// leaseWait bounds the wait for, and the run of, one lease: a lease taken
// now is settled or expired by then.
func (c *Cache) leaseWait(base context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(base, c.opt.LeaseTTL+c.opt.LoadTimeout)
}
