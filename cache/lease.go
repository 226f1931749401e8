package cache

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/unique"
	"github.com/rediskit/rediskit/retry"
)

// Lease protocol. A load owns its key through a lease; the owner proves it
// with a token when it stores the result:
//
//	miss     GetOrSet reads with SET key <lease marker> NX PX leaseTTL GET: one
//	         plain command that returns the value, or another load's lease
//	         marker, or nil — then the marker (a value header with the lease
//	         flag and our token as payload) is stored and we own the key.
//	refresh  when a stale value must stay readable, the lease is a separate
//	         key (Cache.leaseKey, in the value's slot) taken by scriptAcquire.
//	wait     a load that finds another's lease subscribes to the events,
//	         then flags the lease (a '+' after the owner's token: scriptWatch,
//	         or scriptAcquire with ARGV[3]) in the same step that checks it
//	         is still there, so an owner either sees the flag or had already
//	         stored the value the waiter then reads.
//	commit   only if the lease (the marker in the value key, or the lease
//	         key) still holds our proof: SET value, DEL the lease key, and
//	         PUBLISH the event if a waiter flagged the lease — an uncontended
//	         miss publishes nothing (TestMissCommands). Otherwise nothing —
//	         a Delete removed the lease, or it expired and another process
//	         took over: the load's result goes to its callers but is not
//	         stored. Where SET takes IFEQ, a marker lease commits with
//	         SET … IFEQ <marker> first (commitIfEq), and the script runs
//	         only when that stored nothing. On a *redis.Client the
//	         script's commits group while one is on the wire
//	         (commitgroup.go). A tagged load registers its
//	         tags between the lease and the loader, and commits with
//	         scriptWriteTagged, which also drops the lease (evReleased)
//	         when an invalidation refuses the write (tags.go).
//	release  only if the lease holds our proof: DEL it, PUBLISH the event
//	         if flagged (never when a lease taken in a race is handed back
//	         unused).
//
// Waiters and owners. Delete removes the marker with the value (and the
// lease key), so a load running during a Delete cannot write its outdated
// result back. A process waiting for another's lease is woken by the commit's
// or release's event on the Cache's one Pub/Sub subscription (hub.go; it is
// confirmed before the waiter re-checks, so no event is missed), polls every
// Options.LeasePoll in case an event was lost, and takes the lease over when
// its owner died and it expired; its wait is bounded by LeaseTTL +
// LoadTimeout (leaseWait). A loader error or panic releases the lease with a
// failure event: waiters elsewhere get ErrRemoteLoad, local ones the error.
//
// Every one of these is safe to re-send, so the client's retries and the
// auto-pipeliner may repeat them (see "Writes and lost replies" in doc.go):
// an acquisition finding our own proof counts as acquired, and a commit or
// release finds its proof gone after its first run and does nothing. An
// acquisition whose outcome stays unknown is handed back (lostAcquire).
var (
	// KEYS: lease key. ARGV: proof, lease ms, '1' to flag a lease held by
	// another load as waited for.
	scriptAcquire = retry.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1} end
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] or v == ARGV[1] .. '+' then return {1} end
if v and ARGV[3] == '1' and string.sub(v, -1) ~= '+' then
  redis.call('SET', KEYS[1], v .. '+', 'KEEPTTL')
end
return {2, redis.call('PTTL', KEYS[1])}`)

	// KEYS: value key. ARGV: the lease marker the caller saw. Flags that
	// marker as waited for and returns 1 while it holds the key; otherwise
	// {0, what the key holds now}.
	scriptWatch = retry.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  if string.sub(v, -1) ~= '+' then redis.call('SET', KEYS[1], v .. '+', 'KEEPTTL') end
  return {1}
end
return {0, v}`)

	// KEYS: value key [, lease key]. ARGV: proof, value, ttl ms (0 none),
	// channel, event prefix. PUBLISHes only when a waiter flagged the lease.
	scriptCommit = retry.NewScript(`
local lk = KEYS[2] or KEYS[1]
local cur = redis.call('GET', lk)
if cur ~= ARGV[1] and cur ~= ARGV[1] .. '+' then return 0 end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
if KEYS[2] then redis.call('DEL', KEYS[2]) end
if cur ~= ARGV[1] then redis.call('PUBLISH', ARGV[4], ARGV[5] .. KEYS[1]) end
return 1`)

	// KEYS: value key [, lease key]. ARGV: proof, channel ('' for no
	// event), event prefix. PUBLISHes only when a waiter flagged the lease.
	scriptRelease = retry.NewScript(`
local lk = KEYS[2] or KEYS[1]
local cur = redis.call('GET', lk)
if cur ~= ARGV[1] and cur ~= ARGV[1] .. '+' then return 0 end
redis.call('DEL', lk)
if ARGV[2] ~= '' and cur ~= ARGV[1] then redis.call('PUBLISH', ARGV[2], ARGV[3] .. KEYS[1]) end
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
	marker = c.newMarker()
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
	case ownMarker(old, marker): // our own SET, re-sent
		return "", true, marker, nil
	}
	return old, false, nil, nil
}

// ownMarker reports whether old is marker, flagged ("+") or not: a re-sent
// SET NX GET that found its own first attempt. It allocates nothing, as the
// hit path of GetOrSet, which reads with that SET, must not.
func ownMarker(old string, marker []byte) bool {
	n := len(marker)
	return (len(old) == n || len(old) == n+1 && old[n] == '+') && old[:n] == string(marker)
}

// watchMarker flags the lease marker seen under rk as waited for, if it is
// still there (held = true); otherwise it returns what rk holds now ("" when
// nothing).
func (c *Cache) watchMarker(ctx context.Context, rk, seen string) (now string, held bool, err error) {
	res, err := scriptWatch.RunRepeatable(ctx, c.reader, []string{rk}, seen).Slice()
	if err != nil {
		return "", false, err
	}
	if status, _ := res[0].(int64); status == 1 {
		return "", true, nil
	}
	if len(res) > 1 {
		now, _ = res[1].(string)
	}
	return now, false, nil
}

// acquireLeaseKey tries to take l in its lease key (l.keys[1]). When another
// load holds it, it returns the lease's remaining time in ms, if known.
// With flag, a lease held by another load is flagged as waited for.
func (c *Cache) acquireLeaseKey(ctx context.Context, l lease, flag bool) (acquired bool, pttl int64, err error) {
	flagArg := "0"
	if flag {
		flagArg = "1"
	}
	res, err := scriptAcquire.RunRepeatable(ctx, c.reader, l.keys[1:], l.proof, c.opt.LeaseTTL.Milliseconds(), flagArg).Slice()
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

// commit stores value for ttl (0 = no expiry) if lease l is still ours, and
// tells the key's waiters (evStored).
// vals, when not nil, lends its values (a trace) to the commands, which run
// on the Cache's settle context.
func (c *Cache) commit(vals context.Context, l lease, value []byte, ttl time.Duration) {
	ctx := c.traced(c.life.settle, vals)
	if len(l.keys) == 1 && c.commitIfEq(ctx, l, value, ttl) {
		return
	}
	if len(l.keys) == 1 && c.grouped {
		c.groupCommit(l, value, ttl)
		return
	}
	_ = c.commitCmd(l, value, ttl).run(ctx, c.reader)
}

// Conditional SET. A server whose SET takes IFEQ (Valkey 8.1 and later, Redis
// 8.4 and later) commits a marker lease with one plain command instead of
// scriptCommit, which costs Redis 7.0 a Lua call. The Cache learns which it
// is talking to at run time: Preload asks, and otherwise the first commit
// tries. A server that answers IFEQ with a syntax error (Redis before 8.4,
// or a master of an older version after a failover) turns it off for the
// Cache's lifetime.
const (
	condUnknown int32 = iota
	condYes
	condNo
)

// commitIfEq commits the marker lease l with SET … IFEQ <marker> and
// reports whether that settled it. It did not when the server has no IFEQ,
// or when the key no longer holds the marker as we stored it: a waiter
// flagged it ('+'), or the lease was lost (a Delete, or an expiry and
// another owner), or this is a re-send whose first run stored the value.
// scriptCommit then tells these apart, as it does on servers without IFEQ.
func (c *Cache) commitIfEq(ctx context.Context, l lease, value []byte, ttl time.Duration) bool {
	if c.condSet.Load() == condNo {
		return false
	}
	cmd := setIfEq(ctx, l.keys[0], value, ttl, l.proof)
	// Safe to re-send: once the value is stored the marker is gone, so a
	// second run changes nothing.
	_ = c.reader.Process(ctx, retry.Repeatable(cmd))
	return c.ifEqSettled(cmd.Err())
}

// ifEqSettled reads the answer err of a SET … IFEQ commit: whether it
// settled the lease (stored the value, or failed as a commit script would,
// and the lease expires), or the script must run. It records whether the
// server takes IFEQ.
func (c *Cache) ifEqSettled(err error) bool {
	switch {
	case err == nil:
		c.condSet.CompareAndSwap(condUnknown, condYes)
		return true
	case errors.Is(err, redis.Nil): // not set: the marker is not ours as we stored it
		c.condSet.CompareAndSwap(condUnknown, condYes)
		return false
	case redis.HasErrorPrefix(err, "syntax error"): // a server without IFEQ
		c.condSet.Store(condNo)
		return false
	}
	return true
}

// setIfEq returns SET key value [PX ttl] IFEQ cmp.
func setIfEq(ctx context.Context, key string, value []byte, ttl time.Duration, cmp []byte) *redis.StatusCmd {
	if ttl > 0 {
		return redis.NewStatusCmd(ctx, "set", key, value, "px", ttl.Milliseconds(), "ifeq", cmp)
	}
	return redis.NewStatusCmd(ctx, "set", key, value, "ifeq", cmp)
}

// probeIfEq learns whether the server takes SET … IFEQ (see commitIfEq),
// with a conditional SET of a key no user key can name, which IFEQ never
// creates.
func (c *Cache) probeIfEq(ctx context.Context) error {
	cmd := setIfEq(ctx, c.leaseNS+"}ifeq-probe", nil, 0, []byte("x"))
	_ = c.rdb.Process(ctx, cmd)
	err := cmd.Err()
	if err != nil && !errors.Is(err, redis.Nil) && !redis.HasErrorPrefix(err, "syntax error") {
		return err // not an answer about IFEQ
	}
	c.ifEqSettled(err)
	return nil
}

// release drops lease l if it is still ours and tells the key's waiters ev,
// on the settle context with the values of vals.
func (c *Cache) release(vals context.Context, l lease, ev byte) error {
	return c.releaseOn(c.traced(c.life.settle, vals), l, ev)
}

// releaseOn is release on ctx.
func (c *Cache) releaseOn(ctx context.Context, l lease, ev byte) error {
	return scriptRelease.RunRepeatable(ctx, c.reader, l.keys, l.proof, c.channelArg, evArg(ev)).Err()
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

// unavailable reports whether a GetOrSet that met err answers as with Redis
// unavailable (degrade): the server is unreachable, or a lease command's
// reply was lost (handed back by lostAcquire).
func unavailable(err error) bool {
	return retry.IsUnavailable(err) || errors.Is(err, retry.ErrAmbiguous)
}

// lostAcquire handles an error of a lease acquisition. When err does not
// prove that the command did not run (a lost reply the client did not
// re-send, or did and was then refused), the lease may be ours: it is handed
// back by the conditional release (nothing happens if it is not ours) and
// waiters are told to re-check. It returns err, marked ambiguous in that
// case.
func (c *Cache) lostAcquire(l lease, err error) error {
	err = retry.AmbiguousVia(c.rdb, "set", err)
	if errors.Is(err, retry.ErrAmbiguous) && l.proof != nil {
		if rerr := c.release(c.life.settle, l, evReleased); unavailable(rerr) {
			c.releaseLater(l)
		}
	}
	return err
}

// releaseLater keeps trying to hand back lease l, which may be ours, when
// the server could not be reached to release it at once (it is restarting,
// or failing over). Left behind, the lease would make every process that
// wants the key wait until it expires (LeaseTTL). An owned goroutine retries
// with backoff from 50 ms to 1 s, until the server answers, the lease has
// expired, or the Cache closes (TestLostLeaseReleasedWhenServerReturns).
func (c *Cache) releaseLater(l lease) {
	expires := time.Now().Add(c.opt.LeaseTTL)
	c.life.goOwned(func() {
		for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
			t := time.NewTimer(min(wait, time.Until(expires)))
			select {
			case <-c.life.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			if !time.Now().Before(expires) {
				return
			}
			if !unavailable(c.releaseOn(c.life.ctx, l, evReleased)) {
				return
			}
		}
	})
}

// releaseQuietly gives back a lease this call took but will not use.
func (c *Cache) releaseQuietly(l lease) {
	_ = scriptRelease.RunRepeatable(c.life.settle, c.reader, l.keys, l.proof, "", "").Err()
}

// newToken returns a lease owner token unique across processes: a random
// per-Cache prefix (128 bits from crypto/rand) and a counter. Lease tokens
// name an owner; they guard no data, so they need not be secret.
func (c *Cache) newToken() []byte { return c.tokens.Append(nil) }

// newMarker returns a lease marker: a value header flagged Lease and a
// fresh owner token, the proof of a lease stored in the value key.
func (c *Cache) newMarker() []byte {
	return c.tokens.Append(appendHeader(make([]byte, 0, headerLen+unique.MaxLen), valueHeader{Lease: true}))
}

// store commits value for ttl under lease l, with the tags of tl (nil for
// none); a tagged load that must not store hands its lease back, and
// waiters re-check (settleStore).
func (c *Cache) store(vals context.Context, l lease, value []byte, ttl time.Duration, tl *tagLoad) {
	if tl == nil {
		c.commit(vals, l, value, ttl)
		return
	}
	_ = c.settleStore(l, value, ttl, tl, time.Now()).run(c.traced(c.life.settle, vals), c.reader)
}
