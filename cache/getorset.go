package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

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

// Lease protocol. A load owns its key through a lease; the owner proves it
// with a token when it stores the result:
//
//	miss     GetOrSet reads with SET key <lease marker> NX PX leaseTTL GET: one
//	         plain command that returns the value, or another load's lease
//	         marker, or nil — then the marker (a value header with the lease
//	         flag and our token as payload) is stored and we own the key.
//	refresh  when a stale value must stay readable, the lease is a separate
//	         key (Cache.leaseKey, in the value's slot) taken by scriptAcquire.
//	commit   only if the lease (the marker in the value key, or the lease
//	         key) still holds our proof: SET value, DEL the lease key, PUBLISH
//	         the event. Otherwise nothing — a Delete removed the lease, or it
//	         expired and another process took over: the load's result goes to
//	         its callers but is not stored.
//	release  only if the lease holds our proof: DEL it, PUBLISH the event
//	         (none when a lease taken in a race is handed back unused).
//
// Every one of these is safe to re-send, so the client's retries and the
// auto-pipeliner may repeat them (see "Writes and lost replies" in doc.go):
// an acquisition finding our own proof counts as acquired, and a commit or
// release finds its proof gone after its first run and does nothing. An
// acquisition whose outcome stays unknown is handed back (lostAcquire).
var (
	scriptAcquire = retry.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1} end
if redis.call('GET', KEYS[1]) == ARGV[1] then return {1} end
return {2, redis.call('PTTL', KEYS[1])}`)

	scriptCommit = retry.NewScript(`
local lk = KEYS[2] or KEYS[1]
if redis.call('GET', lk) ~= ARGV[1] then return 0 end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
if KEYS[2] then redis.call('DEL', KEYS[2]) end
redis.call('PUBLISH', ARGV[4], ARGV[5] .. KEYS[1])
return 1`)

	scriptRelease = retry.NewScript(`
local lk = KEYS[2] or KEYS[1]
if redis.call('GET', lk) ~= ARGV[1] then return 0 end
redis.call('DEL', lk)
if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], ARGV[3] .. KEYS[1]) end
return 1`)
)

// lease is a lease this process owns: the keys of the commit and release
// scripts ([value key] for a marker, [value key, lease key] otherwise) and
// the proof they compare with the stored lease.
type lease struct {
	keys  []string
	proof []byte
}

// acquireMarker tries to take the lease of a missing key by storing a lease
// marker in it. It returns the stored value when there is one (a value or
// another load's marker), or acquired = true and our marker, the proof of
// the lease.
func (c *Cache) acquireMarker(ctx context.Context, rk string) (old string, acquired bool, marker []byte, err error) {
	marker = c.appendToken(appendHeader(make([]byte, 0, headerLen+len(c.tokenPrefix)+13), valueHeader{Lease: true}))
	// SET NX GET is not idempotent in general; with our unique marker it
	// is (a re-sent SET finds our own marker), so it is sent Repeatable
	// and a rediskit.Client's hook may re-send it to a definite answer.
	cmd := redis.NewStringCmd(ctx, "set", rk, marker, "px", c.leaseMsArg, "nx", "get")
	_ = c.reader.Process(ctx, retry.Repeatable(cmd))
	old, err = cmd.Result()
	switch {
	case errors.Is(err, redis.Nil):
		return "", true, marker, nil
	case err != nil:
		return "", false, marker, err // the marker, for lostAcquire
	case old == string(marker): // our own SET, re-sent
		return "", true, marker, nil
	}
	return old, false, nil, nil
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

	done chan struct{}
	e    entry // set before done is closed
	err  error
}

// GetOrSet returns the value under key, or runs loader on a miss, stores its
// result for ttl and returns it. Concurrent misses of one key are served by a
// single loader call across every process using the same namespace: in this
// process by a shared flight, across processes by a lease in Redis, waiters
// being woken by Pub/Sub. A caller may leave on its own ctx; the load goes on.
//
// Errors: a loader's ErrNotFound comes back wrapped (and is cached for
// Options.NegativeTTL); a loader error or panic (*PanicError) reaches every
// waiter; ErrRemoteLoad when another process's loader failed; with Redis
// unavailable, an error matching retry.ErrUnavailable (FailClosed) or the
// loader's own result (FailOpen). When the reply to the lease command is
// lost and the client does not re-send it, the lease is handed back and the
// call is answered as with Redis unavailable; with FailClosed the error then
// also matches retry.ErrAmbiguous. A hit is one command (SET NX GET of a lease
// marker, which returns the value when there is one); a miss is two: that
// command, then the conditional write.
func (c *Cache) GetOrSet(ctx context.Context, key string, ttl time.Duration, loader LoaderFunc[[]byte]) ([]byte, error) {
	e, err := c.getOrLoad(ctx, key, ttl, codecRaw, loader)
	if err != nil {
		return nil, err
	}
	return e.payload, nil
}

// getOrLoad is GetOrSet for any codec; loader returns the encoded payload.
func (c *Cache) getOrLoad(ctx context.Context, key string, ttl time.Duration, codec byte, loader LoaderFunc[[]byte]) (entry, error) {
	if ttl < 0 {
		return entry{}, fmt.Errorf("cache: get or set %q: negative ttl %v", key, ttl)
	}
	rk := c.key(key)
	// A load of this key already running here: join it, no command at all.
	if f, ok := c.flights.Load(rk); ok {
		c.st.misses.Add(1)
		c.st.dedupLoads.Add(1)
		return c.await(ctx, f.(*flight))
	}
	// One command reads the value and, if there is none, takes the lease.
	old, acquired, marker, err := c.acquireMarker(ctx, rk)
	if err != nil {
		err = c.lostAcquire(lease{keys: []string{rk}, proof: marker}, err)
		if unavailable(err) {
			return c.degrade(ctx, key, rk, codec, loader, err)
		}
		return entry{}, fmt.Errorf("cache: get or set %q: %w", key, err)
	}
	var stale *entry
	force := false // lease in the lease key: a (stale) value stays in place
	if !acquired {
		e, err := c.decode([]byte(old), codec)
		switch {
		case err != nil:
			c.dropCorrupt(ctx, rk)
		case e.h.Lease:
			// Another load holds the key: wait for it below.
		case !e.stale(time.Now().UnixMilli()):
			c.st.hits.Add(1)
			return result(key, e)
		default:
			age := time.Duration(time.Now().UnixMilli()-e.h.SoftExpiry) * time.Millisecond
			if age < c.opt.StaleWhileRevalidate {
				c.st.hits.Add(1)
				c.st.staleServed.Add(1)
				c.refresh(ctx, rk, key, ttl, codec, loader)
				return result(key, e)
			}
			if age < c.opt.StaleIfError {
				kept := e // only this copy escapes, not every hit's entry
				stale = &kept
			}
			force = true
		}
	}
	c.st.misses.Add(1)
	f := &flight{kind: flightLease, rk: rk, key: key, ttl: ttl, codec: codec, loader: loader, stale: stale, force: force, vals: ctx}
	if acquired {
		f.kind = flightFill
		f.rkBuf[0] = rk
		f.lease = lease{keys: f.rkBuf[:], proof: marker}
	}
	running, err := c.startFlight(ctx, f)
	if err != nil {
		if acquired {
			c.releaseQuietly(f.lease)
		}
		return entry{}, err
	}
	if running != f {
		c.st.dedupLoads.Add(1)
		if acquired {
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

// unavailable reports whether a GetOrSet that met err answers as with Redis
// unavailable (degrade): the server is unreachable, or a lease command's
// reply was lost (handed back by lostAcquire).
func unavailable(err error) bool {
	return retry.IsUnavailable(err) || errors.Is(err, retry.ErrAmbiguous)
}

// lostAcquire handles an error of a lease acquisition. When err does not
// prove that the command did not run (a lost reply the client did not
// re-send), the lease may be ours: it is handed back by the conditional
// release (nothing happens if it is not ours) and waiters are told to
// re-check. It returns err, marked ambiguous in that case.
func (c *Cache) lostAcquire(l lease, err error) error {
	err = retry.Ambiguous("set", err)
	if errors.Is(err, retry.ErrAmbiguous) && l.proof != nil {
		c.release(l, evReleased)
	}
	return err
}

// releaseQuietly gives back a lease this call took but will not use.
func (c *Cache) releaseQuietly(l lease) {
	_ = scriptRelease.RunRepeatable(c.settleCtx, c.reader, l.keys, l.proof, "", "").Err()
}

// startFlight returns the running flight of nf.rk, or starts nf on a
// goroutine owned by the Cache. A caller whose ctx can never end runs nf
// itself: it would wait for it anyway.
func (c *Cache) startFlight(ctx context.Context, nf *flight) (*flight, error) {
	nf.done = make(chan struct{})
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if f, loaded := c.flights.LoadOrStore(nf.rk, nf); loaded {
		c.mu.Unlock()
		return f.(*flight), nil
	}
	c.wg.Add(1)
	c.mu.Unlock()
	if ctx.Done() == nil {
		c.runFlight(nf)
	} else {
		go c.runFlight(nf)
	}
	return nf, nil
}

// runFlight runs f on the Cache's base context and publishes its result.
func (c *Cache) runFlight(f *flight) {
	defer c.wg.Done()
	var (
		e   entry
		err error
	)
	switch f.kind {
	case flightFill:
		e, err = c.fill(c.baseCtx, f.vals, f.lease, f.key, f.ttl, f.codec, f.loader, nil)
	case flightLease:
		e, err = c.loadLeased(c.baseCtx, f)
	case flightDirect:
		e, err = c.loadDirect(c.baseCtx, f.vals, f.codec, f.loader)
	}
	// A caller arriving after the delete starts a new flight, whose SET NX
	// GET re-reads the value this one stored.
	c.flights.CompareAndDelete(f.rk, f)
	f.e, f.err = e, err
	close(f.done)
}

// await waits for f or for the caller's ctx.
func (c *Cache) await(ctx context.Context, f *flight) (entry, error) {
	select {
	case <-f.done:
		if f.err != nil {
			return entry{}, f.err
		}
		return result(f.key, f.e)
	case <-ctx.Done():
		return entry{}, fmt.Errorf("cache: wait for load of %q: %w", f.key, ctx.Err())
	}
}

// newToken returns a lease owner token unique across processes: a random
// per-Cache prefix (128 bits from crypto/rand) and a counter. Lease tokens
// name an owner; they guard no data, so they need not be secret.
func (c *Cache) newToken() []byte { return c.appendToken(nil) }

func (c *Cache) appendToken(b []byte) []byte {
	return strconv.AppendUint(append(b, c.tokenPrefix...), c.tokenSeq.Add(1), 36)
}

func randomPrefix() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:]) + ":"
}

// loadLeased is the body of a flightLease: take the lease and load, or wait
// for the owner of the lease to store the value. With f.force (a stale value
// must stay readable) the lease is the separate lease key.
func (c *Cache) loadLeased(base context.Context, f *flight) (entry, error) {
	rk, key, codec, stale := f.rk, f.key, f.codec, f.stale
	wctx, cancel := context.WithTimeout(base, c.opt.LeaseTTL+c.opt.LoadTimeout)
	defer cancel()
	var events chan byte
	defer func() {
		if events != nil {
			c.hub.unregister(rk, events)
		}
	}()
	for {
		var (
			l        lease
			acquired bool
			pttl     int64
			err      error
		)
		if f.force {
			l = lease{keys: []string{rk, c.leaseKey(rk)}, proof: c.newToken()}
			acquired, pttl, err = c.acquireLeaseKey(wctx, l)
		} else {
			var old string
			var marker []byte
			old, acquired, marker, err = c.acquireMarker(wctx, rk)
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
			}
		}
		if err != nil {
			err = c.lostAcquire(l, err)
			if stale != nil {
				c.st.staleServed.Add(1)
				return *stale, nil
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
			return c.fill(base, f.vals, l, key, f.ttl, codec, f.loader, stale)
		}
		if events == nil {
			c.st.leaseWaits.Add(1)
			events = c.hub.register(rk)
			if c.subscribe(wctx) == nil {
				continue // re-check: from now on the owner's event cannot be missed
			}
		}
		wait := c.opt.LeasePoll
		if pttl > 0 && time.Duration(pttl)*time.Millisecond < wait {
			wait = time.Duration(pttl+1) * time.Millisecond
		}
		t := time.NewTimer(wait)
		select {
		case ev := <-events:
			t.Stop()
			switch ev {
			case evFailed:
				if stale != nil {
					c.st.staleServed.Add(1)
					return *stale, nil
				}
				return entry{}, fmt.Errorf("cache: get or set %q: %w", key, ErrRemoteLoad)
			case evNotFound:
				return entry{h: valueHeader{Negative: true}}, nil
			}
			e, ok, err := c.getEntry(wctx, rk, codec)
			if err == nil && ok && !e.h.Lease && !e.stale(time.Now().UnixMilli()) {
				return e, nil
			}
		case <-t.C:
		case <-wctx.Done():
			t.Stop()
			if stale != nil {
				c.st.staleServed.Add(1)
				return *stale, nil
			}
			return entry{}, fmt.Errorf("cache: get or set %q: wait for lease: %w", key, wctx.Err())
		}
	}
}

// acquireLeaseKey tries to take l in its lease key (l.keys[1]). When another
// load holds it, it returns the lease's remaining time in ms, if known.
func (c *Cache) acquireLeaseKey(ctx context.Context, l lease) (acquired bool, pttl int64, err error) {
	res, err := scriptAcquire.RunRepeatable(ctx, c.reader, l.keys[1:], l.proof, c.opt.LeaseTTL.Milliseconds()).Slice()
	if err != nil {
		return false, 0, err
	}
	if status, _ := res[0].(int64); status == 1 {
		return true, 0, nil
	}
	if len(res) > 1 {
		pttl, _ = res[1].(int64)
	}
	return false, pttl, nil
}

// fill runs the loader under our lease and stores its result if the lease is
// still ours. The loader's context ends with base and sees the values of
// vals.
func (c *Cache) fill(base, vals context.Context, l lease, key string, ttl time.Duration, codec byte, loader LoaderFunc[[]byte], stale *entry) (entry, error) {
	payload, lerr := c.callLoader(base, vals, loader)
	// Settle the lease even when Close cancelled the load (settleCtx): these
	// writes are bounded by the client's own read and write timeouts. Their
	// failure is not the callers' concern: the lease then expires, and the
	// loaded value is still the right answer for them. A commit finding the
	// lease gone (a Delete, or an expiry and another owner) stores nothing.
	switch {
	case lerr == nil:
		redisTTL, soft := c.ttls(ttl, time.Now())
		b, err := c.encode(codec, payload, soft, false)
		if err != nil {
			c.release(l, evFailed)
			return entry{}, fmt.Errorf("cache: get or set %q: %w", key, err)
		}
		c.commit(l, b, redisTTL)
		return entry{h: valueHeader{Codec: codec, SoftExpiry: soft}, payload: payload}, nil
	case errors.Is(lerr, ErrNotFound):
		if c.opt.NegativeTTL > 0 {
			b, _ := c.encode(codec, nil, 0, true)
			c.commit(l, b, c.opt.NegativeTTL)
		} else {
			c.release(l, evNotFound)
		}
		return entry{h: valueHeader{Negative: true}}, nil
	default:
		c.release(l, evFailed)
		if stale != nil {
			c.st.staleServed.Add(1)
			return *stale, nil
		}
		return entry{}, fmt.Errorf("cache: get or set %q: load: %w", key, lerr)
	}
}

// commit stores value for ttl (0 = no expiry) if lease l is still ours, and
// tells the key's waiters (evStored).
func (c *Cache) commit(l lease, value []byte, ttl time.Duration) {
	_ = scriptCommit.RunRepeatable(c.settleCtx, c.reader, l.keys, l.proof, value, ttl.Milliseconds(), c.channelArg, evArg(evStored)).Err()
}

// release drops lease l if it is still ours and tells the key's waiters ev.
func (c *Cache) release(l lease, ev byte) {
	_ = scriptRelease.RunRepeatable(c.settleCtx, c.reader, l.keys, l.proof, c.channelArg, evArg(ev)).Err()
}

// evArg returns lease event ev as a script argument, boxed without an
// allocation.
func evArg(ev byte) any {
	switch ev {
	case evStored:
		return string(evStored)
	case evFailed:
		return string(evFailed)
	case evReleased:
		return string(evReleased)
	}
	return string(evNotFound)
}

// callLoader runs loader with its own timeout, recovering a panic into a
// *PanicError, and records it in the statistics. The loader's context ends
// with base and answers Value from vals.
func (c *Cache) callLoader(base, vals context.Context, loader LoaderFunc[[]byte]) (p []byte, err error) {
	start := time.Now()
	ctx := newLoadCtx(base, vals, start.Add(c.opt.LoadTimeout))
	defer ctx.release()
	c.st.loads.Add(1)
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
		c.st.loadNanos.Add(int64(time.Since(start)))
		if err != nil && !errors.Is(err, ErrNotFound) {
			c.st.loaderErrors.Add(1)
		}
	}()
	return loader(ctx)
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

// refresh starts one background reload of a stale value, unless one runs in
// this process already or another process holds the lease. The loader sees
// the values of vals, the context of the caller served the stale value.
func (c *Cache) refresh(vals context.Context, rk, key string, ttl time.Duration, codec byte, loader LoaderFunc[[]byte]) {
	c.mu.Lock()
	if _, busy := c.refreshing[rk]; busy || c.closed {
		c.mu.Unlock()
		return
	}
	c.refreshing[rk] = struct{}{}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		defer func() {
			c.mu.Lock()
			delete(c.refreshing, rk)
			c.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(c.baseCtx, c.opt.LeaseTTL+c.opt.LoadTimeout)
		defer cancel()
		l := lease{keys: []string{rk, c.leaseKey(rk)}, proof: c.newToken()}
		acquired, _, err := c.acquireLeaseKey(ctx, l)
		if err != nil {
			_ = c.lostAcquire(l, err)
		}
		if !acquired {
			return
		}
		_, _ = c.fill(c.baseCtx, vals, l, key, ttl, codec, loader, nil)
	}()
}
