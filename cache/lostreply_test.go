package cache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/retry"
)

// lostReplyEnv is one case of TestLostReply: a Cache over a go-redis client
// that reaches every master through a fault proxy, and a direct client that
// reads the server's state.
type lostReplyEnv struct {
	c       *Cache
	direct  redis.UniversalClient
	proxies []*redistest.Proxy
	retries bool // the client has go-redis's default retries, else none
	// noResend names the idempotent writes this kind of client does not
	// re-send even with its default options (see lostReplyDeployment).
	noResend map[string]bool
}

// fault arms a lost reply on the first request containing pattern, on every
// proxy, runs fn and fails the test unless the fault fired exactly once.
func (e *lostReplyEnv) fault(t *testing.T, pattern string, fn func()) {
	t.Helper()
	dropped := func() (n int) {
		for _, p := range e.proxies {
			n += p.Dropped()
		}
		return n
	}
	before := dropped()
	for _, p := range e.proxies {
		p.DropReplyAfter(pattern)
	}
	fn()
	for _, p := range e.proxies {
		p.DropReplyAfter("\x00disarmed\x00") // a pattern no request holds
	}
	if n := dropped() - before; n != 1 {
		t.Fatalf("the fault fired %d times, want 1 (pattern %q)", n, pattern)
	}
}

// stored returns the payload of the value under key on the server, reading
// it directly: ok false when there is no value (or only a lease marker).
func (e *lostReplyEnv) stored(t *testing.T, key string) (string, bool) {
	t.Helper()
	raw, err := e.direct.Get(context.Background(), e.c.key(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	h, p, err := decodeHeader(raw)
	if err != nil {
		t.Fatalf("stored value of %q: %v", key, err)
	}
	if h.Lease {
		return "", false
	}
	return string(p), true
}

// exists reports whether the stored key k (full name) exists on the server.
func (e *lostReplyEnv) exists(t *testing.T, rk string) bool {
	t.Helper()
	n, err := e.direct.Exists(context.Background(), rk).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// wantOutcome checks the error of a write whose reply was lost: with the
// client's retries an idempotent write ends in a definite answer (nil),
// without them its outcome is unknown (retry.ErrAmbiguous).
func (e *lostReplyEnv) wantOutcome(t *testing.T, what string, err error) {
	t.Helper()
	if e.retries && !e.noResend[what] {
		if err != nil {
			t.Fatalf("%s = %v; an idempotent write re-sent by the client must succeed", what, err)
		}
		return
	}
	if !errors.Is(err, retry.ErrAmbiguous) {
		t.Fatalf("%s = %v, want an error matching retry.ErrAmbiguous", what, err)
	}
	if !retry.IsInfrastructure(err) || retry.IsUnavailable(err) {
		t.Fatalf("%s = %v: classified %v; want infrastructure, not unavailable", what, err, retry.Classify(err))
	}
}

var lostReplyCases = []struct {
	name string
	opt  Options
	run  func(t *testing.T, e *lostReplyEnv)
}{
	{"Set", Options{}, func(t *testing.T, e *lostReplyEnv) {
		var err error
		e.fault(t, e.c.key("k"), func() { err = e.c.Set(ctxT(t), "k", []byte("v1"), time.Minute) })
		e.wantOutcome(t, "Set", err)
		if v, ok := e.stored(t, "k"); !ok || v != "v1" {
			t.Fatalf("server holds %q, %v; want v1", v, ok)
		}
	}},
	{"TypedSet", Options{}, func(t *testing.T, e *lostReplyEnv) {
		tc := NewTyped[string](e.c, nil)
		var err error
		e.fault(t, e.c.key("k"), func() { err = tc.Set(ctxT(t), "k", "v1", time.Minute) })
		e.wantOutcome(t, "Typed.Set", err)
		if v, ok := e.stored(t, "k"); !ok || v != `"v1"` {
			t.Fatalf("server holds %q, %v; want \"v1\"", v, ok)
		}
	}},
	{"MSet", Options{}, func(t *testing.T, e *lostReplyEnv) {
		var err error
		items := map[string][]byte{"a": []byte("va"), "b": []byte("vb")}
		e.fault(t, e.c.key("a"), func() { err = e.c.MSet(ctxT(t), items, time.Minute) })
		e.wantOutcome(t, "MSet", err)
		if err != nil {
			var be *BatchError
			if !errors.As(err, &be) || be.Errs["a"] == nil || !errors.Is(be.Errs["a"], retry.ErrAmbiguous) {
				t.Fatalf("MSet error %v does not report key a as ambiguous", err)
			}
		}
		for k, want := range map[string]string{"a": "va", "b": "vb"} {
			if v, ok := e.stored(t, k); !ok || v != want {
				t.Fatalf("server holds %q, %v under %s; want %s", v, ok, k, want)
			}
		}
	}},
	{"Incr", Options{}, func(t *testing.T, e *lostReplyEnv) {
		// The case: every Incr under the fault was applied twice and
		// reported as a success. Each is applied once and reported unknown.
		ctx := ctxT(t)
		for i := 1; i <= 3; i++ {
			var err error
			e.fault(t, e.c.key("n"), func() { _, err = e.c.Incr(ctx, "n", 1, time.Minute) })
			if !errors.Is(err, retry.ErrAmbiguous) {
				t.Fatalf("Incr under a lost reply = %v, want retry.ErrAmbiguous", err)
			}
			if n, _ := e.direct.Get(ctx, e.c.key("n")).Int64(); n != int64(i) {
				t.Fatalf("server counter = %d after %d calls, want %d", n, i, i)
			}
		}
		var err error
		e.fault(t, e.c.key("n"), func() { _, err = e.c.Decr(ctx, "n", 5, time.Minute) })
		if !errors.Is(err, retry.ErrAmbiguous) {
			t.Fatalf("Decr under a lost reply = %v, want retry.ErrAmbiguous", err)
		}
		if n, ok, err := e.c.Counter(ctx, "n"); err != nil || !ok || n != -2 {
			t.Fatalf("Counter = %d, %v, %v; want -2 (3 increments and a decrement by 5, each once)", n, ok, err)
		}
	}},
	{"Delete", Options{}, func(t *testing.T, e *lostReplyEnv) {
		ctx := ctxT(t)
		if err := e.c.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
			t.Fatal(err)
		}
		var err error
		e.fault(t, e.c.key("k"), func() { err = e.c.Delete(ctx, "k") })
		e.wantOutcome(t, "Delete", err)
		if e.exists(t, e.c.key("k")) {
			t.Fatal("the key survived the Delete")
		}
	}},
	{"Clear", Options{}, func(t *testing.T, e *lostReplyEnv) {
		ctx := ctxT(t)
		// One slot, so that on Cluster one master gets the UNLINK.
		keys := []string{"{s}a", "{s}b", "{s}c"}
		for _, k := range keys {
			if err := e.c.Set(ctx, k, []byte("v"), time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		var err error
		e.fault(t, "unlink", func() { _, err = e.c.Clear(ctx, Prefix(""), ClearOptions{}) })
		e.wantOutcome(t, "Clear", err)
		for _, k := range keys {
			if e.exists(t, e.c.key(k)) {
				t.Fatalf("key %s survived Clear", k)
			}
		}
	}},
	{"GetOrSetLease", Options{}, func(t *testing.T, e *lostReplyEnv) {
		// The SET NX GET that reads the key and takes the lease: re-sent, it
		// returns our own marker and the load goes on; not re-sent, the
		// marker is handed back and GetOrSet answers as with Redis down.
		var loads atomic.Int64
		var v []byte
		var err error
		e.fault(t, e.c.key("k"), func() { v, err = e.c.GetOrSet(ctxT(t), "k", time.Minute, countingLoader(&loads, 0)) })
		if e.retries {
			if err != nil || string(v) != "value-1" || loads.Load() != 1 {
				t.Fatalf("GetOrSet = %q, %v with %d loads; want value-1 from one load", v, err, loads.Load())
			}
			if s, ok := e.stored(t, "k"); !ok || s != "value-1" {
				t.Fatalf("server holds %q, %v; want value-1", s, ok)
			}
			return
		}
		if !errors.Is(err, retry.ErrAmbiguous) || !errors.Is(err, retry.ErrUnavailable) || loads.Load() != 0 {
			t.Fatalf("GetOrSet = %v with %d loads; want ErrAmbiguous and ErrUnavailable (FailClosed), no load", err, loads.Load())
		}
		if e.exists(t, e.c.key("k")) {
			t.Fatal("the lease marker was left behind")
		}
	}},
	{"GetOrSetLeaseFailOpen", Options{Degrade: FailOpen}, func(t *testing.T, e *lostReplyEnv) {
		var loads atomic.Int64
		var v []byte
		var err error
		e.fault(t, e.c.key("k"), func() { v, err = e.c.GetOrSet(ctxT(t), "k", time.Minute, countingLoader(&loads, 0)) })
		if err != nil || string(v) != "value-1" || loads.Load() != 1 {
			t.Fatalf("GetOrSet = %q, %v with %d loads; want value-1 from one load", v, err, loads.Load())
		}
		if !e.retries && e.exists(t, e.c.key("k")) {
			t.Fatal("the lease marker was left behind")
		}
	}},
	{"GetOrSetCommit", Options{}, func(t *testing.T, e *lostReplyEnv) {
		// The commit only writes while the lease holds our token, and takes
		// it: a re-send finds it gone and writes nothing. On a server with
		// SET … IFEQ the commit is that command (commitIfEq).
		var loads atomic.Int64
		var v []byte
		var err error
		commit := scriptCommit.Hash()
		if e.c.condSet.Load() == condYes {
			commit = "\r\nifeq\r\n"
		}
		e.fault(t, commit, func() { v, err = e.c.GetOrSet(ctxT(t), "k", time.Minute, countingLoader(&loads, 0)) })
		if err != nil || string(v) != "value-1" || loads.Load() != 1 {
			t.Fatalf("GetOrSet = %q, %v with %d loads; want value-1 from one load", v, err, loads.Load())
		}
		if s, ok := e.stored(t, "k"); !ok || s != "value-1" {
			t.Fatalf("server holds %q, %v; want value-1", s, ok)
		}
	}},
	{"GetOrSetManyCommit", Options{}, func(t *testing.T, e *lostReplyEnv) {
		// A batch's commits: SET … IFEQ where the server takes it, a group
		// call where the Cache groups commits (groupCommits), otherwise one
		// script per key; each compares the lease, so a re-send writes
		// nothing. The keys share a slot, so one master gets the commits.
		commit := scriptCommit.Hash()
		switch {
		case e.c.condSet.Load() == condYes:
			commit = "\r\nifeq\r\n"
		case e.c.grouped:
			commit = scriptCommitGroup.Hash()
		}
		keys := []string{"{g}a", "{g}b"}
		var loads atomic.Int64
		var got map[string][]byte
		var err error
		e.fault(t, commit, func() {
			got, err = e.c.GetOrSetMany(ctxT(t), keys, time.Minute, func(_ context.Context, ks []string) (map[string][]byte, error) {
				loads.Add(1)
				m := make(map[string][]byte, len(ks))
				for _, k := range ks {
					m[k] = []byte("loaded " + k)
				}
				return m, nil
			})
		})
		if err != nil || loads.Load() != 1 {
			t.Fatalf("GetOrSetMany: %v with %d loads; want one load", err, loads.Load())
		}
		for _, k := range keys {
			if string(got[k]) != "loaded "+k {
				t.Errorf("GetOrSetMany[%s] = %q, want its loaded value", k, got[k])
			}
			if s, ok := e.stored(t, k); !ok || s != "loaded "+k {
				t.Errorf("server holds %q, %v for %s; want its loaded value", s, ok, k)
			}
		}
	}},
	{"GetOrSetRelease", Options{}, func(t *testing.T, e *lostReplyEnv) {
		var err error
		e.fault(t, scriptRelease.Hash(), func() {
			_, err = e.c.GetOrSet(ctxT(t), "k", time.Minute, func(context.Context) ([]byte, error) {
				return nil, errors.New("db down")
			})
		})
		if err == nil || errors.Is(err, retry.ErrAmbiguous) {
			t.Fatalf("GetOrSet with a failing loader = %v; want the loader's error", err)
		}
		if e.exists(t, e.c.key("k")) {
			t.Fatal("the lease marker was not released")
		}
	}},
	{"GetOrSetLeaseKey", Options{StaleIfError: time.Minute}, func(t *testing.T, e *lostReplyEnv) {
		// A stale value stays readable while it is reloaded: the lease is
		// then a separate key, taken by scriptAcquire.
		ctx := ctxT(t)
		if _, err := e.c.GetOrSet(ctx, "k", 20*time.Millisecond, func(context.Context) ([]byte, error) { return []byte("old"), nil }); err != nil {
			t.Fatal(err)
		}
		time.Sleep(40 * time.Millisecond)
		var loads atomic.Int64
		var v []byte
		var err error
		e.fault(t, scriptAcquire.Hash(), func() { v, err = e.c.GetOrSet(ctx, "k", time.Minute, countingLoader(&loads, 0)) })
		if e.retries {
			if err != nil || string(v) != "value-1" || loads.Load() != 1 {
				t.Fatalf("GetOrSet = %q, %v with %d loads; want value-1 from one load", v, err, loads.Load())
			}
		} else if err != nil || string(v) != "old" || loads.Load() != 0 {
			t.Fatalf("GetOrSet = %q, %v with %d loads; want the stale value, no load", v, err, loads.Load())
		}
		if e.exists(t, e.c.leaseKey(e.c.key("k"))) {
			t.Fatal("the lease key was left behind")
		}
	}},
}

// lostReplyReadTimeout is the ReadTimeout of the clients of the lost-reply
// tests: how long a lost reply takes to be noticed. Short, to keep the
// tests fast; long enough that a loaded machine does not time out a reply
// that was not dropped.
const lostReplyReadTimeout = 300 * time.Millisecond

// lostReplyDeployment is a deployment whose masters are reached through
// fault proxies, by a client of a kind users pass to New.
type lostReplyDeployment struct {
	name    string
	proxies []*redistest.Proxy
	direct  redis.UniversalClient
	// noResend: the idempotent writes that go-redis does not re-send on
	// this kind of client even with its default options, so that their lost
	// reply is reported ambiguous. Clear goes through the clients of single
	// masters, which a ClusterClient and a Ring create with MaxRetries -1; a
	// Ring sends pipelines (MSet, Delete) through them too.
	noResend map[string]bool
	// client returns a client with go-redis's default retry options
	// (retries) or with every retry loop off, ReadTimeout shortened.
	client func(retries bool) redis.UniversalClient
}

// proxyDialer dials the proxy in front of each address of to, and any other
// address (a sentinel) directly.
func proxyDialer(to map[string]string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if p, ok := to[addr]; ok {
			addr = p
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

func lostReplyDeployments(t *testing.T) []lostReplyDeployment {
	srv := redistest.Shared(t)
	px := redistest.NewProxy(t, srv.Addr)
	s := redistest.SharedSentinel(t)
	spx := redistest.NewProxy(t, s.Master.Addr) // the shared deployment never fails over
	cl := redistest.SharedCluster(t)
	clTo := map[string]string{}
	var clProxies []*redistest.Proxy
	for _, a := range cl.Addrs() {
		p := redistest.NewProxy(t, a)
		clTo[a] = p.Addr
		clProxies = append(clProxies, p)
	}
	vk := redistest.SharedValkey(t) // SET … IFEQ commits a miss (commitIfEq)
	vpx := redistest.NewProxy(t, vk.Addr)
	rpx := redistest.NewProxy(t, srv.Addr) // a Ring of one shard, on the standalone server
	retryOff := func(retries bool) int {
		if retries {
			return 0 // the default: 3
		}
		return -1
	}
	closeAtEnd := func(c redis.UniversalClient) redis.UniversalClient {
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	return []lostReplyDeployment{
		{"Client", []*redistest.Proxy{px}, srv.Client(t), nil, func(retries bool) redis.UniversalClient {
			return closeAtEnd(redis.NewClient(&redis.Options{Addr: px.Addr, ReadTimeout: lostReplyReadTimeout, MaxRetries: retryOff(retries)}))
		}},
		{"ClientValkey", []*redistest.Proxy{vpx}, vk.Client(t), nil, func(retries bool) redis.UniversalClient {
			return closeAtEnd(redis.NewClient(&redis.Options{Addr: vpx.Addr, ReadTimeout: lostReplyReadTimeout, MaxRetries: retryOff(retries)}))
		}},
		{"FailoverClient", []*redistest.Proxy{spx}, s.Client(t), nil, func(retries bool) redis.UniversalClient {
			return closeAtEnd(redis.NewFailoverClient(&redis.FailoverOptions{
				MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs(), ReadTimeout: lostReplyReadTimeout,
				MaxRetries: retryOff(retries), Dialer: proxyDialer(map[string]string{s.Master.Addr: spx.Addr}),
			}))
		}},
		{"Ring", []*redistest.Proxy{rpx}, srv.Client(t), map[string]bool{"MSet": true, "Delete": true, "Clear": true}, func(retries bool) redis.UniversalClient {
			return closeAtEnd(redis.NewRing(&redis.RingOptions{
				Addrs: map[string]string{"one": rpx.Addr}, ReadTimeout: lostReplyReadTimeout, MaxRetries: retryOff(retries),
			}))
		}},
		{"ClusterClient", clProxies, cl.Client(t), map[string]bool{"Clear": true}, func(retries bool) redis.UniversalClient {
			// A ClusterClient also re-sends a timed-out command within its
			// MaxRedirects loop, whatever MaxRetries says.
			return closeAtEnd(redis.NewClusterClient(&redis.ClusterOptions{
				Addrs: cl.Addrs(), ReadTimeout: lostReplyReadTimeout, MaxRetries: retryOff(retries),
				MaxRedirects: retryOff(retries), Dialer: proxyDialer(clTo),
			}))
		}},
	}
}

// TestLostReply drops the reply of every kind of cache write after the
// server applied it, through a plain go-redis Client, FailoverClient
// (Sentinel), Ring and ClusterClient, each with default options
// (ReadTimeout shortened) and with its retries off, with and without
// Options.AutoPipeline (which a Ring does not have), and checks the server's
// state: Incr is applied once and reported unknown (retry.ErrAmbiguous); the
// idempotent writes (Set, MSet, Delete, Clear, the lease scripts) end in a
// definite answer when the client re-sends them and report an unknown
// outcome when it does not.
func TestLostReply(t *testing.T) {
	for _, d := range lostReplyDeployments(t) {
		// Deployments have proxies of their own and run in parallel; the
		// cases of one share its proxies and run one at a time.
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			for _, retries := range []bool{true, false} {
				for _, ap := range []bool{false, true} {
					t.Run(fmt.Sprintf("retries=%v/autopipeline=%v", retries, ap), func(t *testing.T) {
						rdb := d.client(retries)
						if _, isRing := rdb.(*redis.Ring); isRing && ap {
							// go-redis has no AutoPipeliner for a Ring.
							if _, err := New(rdb, Options{Prefix: "ring", AutoPipeline: true}); !errors.Is(err, redis.ErrRingAutoPipelineUnsupported) {
								t.Fatalf("New on a Ring with AutoPipeline = %v, want ErrRingAutoPipelineUnsupported", err)
							}
							return
						}
						for i, tc := range lostReplyCases {
							t.Run(tc.name, func(t *testing.T) {
								opt := tc.opt
								opt.AutoPipeline = ap
								opt.Prefix = "lr" + strconv.Itoa(i) + "-" + strings.TrimSuffix(redistest.Prefix(t), ":")
								tc.run(t, &lostReplyEnv{c: newCache(t, rdb, opt), direct: d.direct, proxies: d.proxies,
									retries: retries, noResend: d.noResend})
							})
						}
					})
				}
			}
		})
	}
}

// TestResentSetLandsAfterNewerWrite shows the cost of letting the client
// re-send Set: when another process writes the key between the lost first
// run and the re-send, the re-send overwrites that newer value, as a Set
// delayed on the network would. The other writer runs in the Dialer of the
// connection the re-send goes out on, so the order is certain.
func TestResentSetLandsAfterNewerWrite(t *testing.T) {
	srv := redistest.Shared(t)
	proxy := redistest.NewProxy(t, srv.Addr)
	direct := srv.Client(t)
	var c *Cache
	var armed atomic.Bool
	var droppedAtArm atomic.Int64
	rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr, ReadTimeout: lostReplyReadTimeout,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			// Only a dial after the lost reply: the first run was applied.
			if int64(proxy.Dropped()) > droppedAtArm.Load() && armed.CompareAndSwap(true, false) {
				// The connection of the re-send: first, another process writes.
				b, err := c.encode(codecRaw, []byte("newer"), 0, false)
				if err != nil {
					return nil, err
				}
				if err := direct.Set(ctx, c.key("k"), b, 0).Err(); err != nil {
					return nil, err
				}
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}})
	t.Cleanup(func() { _ = rdb.Close() })
	c = newCache(t, rdb, Options{})
	e := &lostReplyEnv{c: c, direct: direct, proxies: []*redistest.Proxy{proxy}, retries: true}
	ctx := ctxT(t)
	if err := c.Set(ctx, "warm", []byte("x"), time.Minute); err != nil { // a pooled connection
		t.Fatal(err)
	}
	var err error
	e.fault(t, c.key("k"), func() {
		droppedAtArm.Store(int64(proxy.Dropped()))
		armed.Store(true)
		err = c.Set(ctx, "k", []byte("older"), time.Minute)
	})
	if err != nil {
		t.Fatalf("Set = %v; the client's re-send should have succeeded", err)
	}
	if armed.Load() {
		t.Fatal("the re-send did not dial a new connection")
	}
	if v, ok := e.stored(t, "k"); !ok || v != "older" {
		t.Fatalf("server holds %q, %v; want the re-sent older value over the newer write", v, ok)
	}
}

// TestLostReplyWithRetryHook runs the lost-reply faults through a client
// set up as rediskit.Open sets up its own: go-redis's retries off and
// retry.Hook deciding. Set is re-sent by the hook (idempotent); Incr is
// applied once and ambiguous; the SET NX GET that takes a lease and the
// commit script are sent retry.Repeatable, so the hook re-sends them; with
// the hook told not to (WithNoRetry) the lease is handed back and GetOrSet
// fails closed.
func TestLostReplyWithRetryHook(t *testing.T) {
	srv := redistest.Shared(t)
	proxy := redistest.NewProxy(t, srv.Addr)
	rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr, ReadTimeout: lostReplyReadTimeout, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	hook := retry.NewHook(retry.Policy{})
	hook.Install(rdb)
	c := newCache(t, rdb, Options{})
	e := &lostReplyEnv{c: c, direct: srv.Client(t), proxies: []*redistest.Proxy{proxy}, retries: true}
	ctx := ctxT(t)

	retries := hook.Retries()
	var err error
	e.fault(t, c.key("set"), func() { err = c.Set(ctx, "set", []byte("v"), time.Minute) })
	if err != nil || hook.Retries() != retries+1 {
		t.Fatalf("Set = %v after %d hook retries; want success after 1", err, hook.Retries()-retries)
	}
	if v, ok := e.stored(t, "set"); !ok || v != "v" {
		t.Fatalf("server holds %q, %v", v, ok)
	}

	e.fault(t, c.key("n"), func() { _, err = c.Incr(ctx, "n", 1, time.Minute) })
	if n, _ := e.direct.Get(ctx, c.key("n")).Int64(); !errors.Is(err, retry.ErrAmbiguous) || n != 1 {
		t.Fatalf("Incr = %v, server counter %d; want ErrAmbiguous and 1", err, n)
	}

	var loads atomic.Int64
	retries = hook.Retries()
	var got []byte
	e.fault(t, c.key("lease"), func() { got, err = c.GetOrSet(ctx, "lease", time.Minute, countingLoader(&loads, 0)) })
	if err != nil || loads.Load() != 1 || hook.Retries() != retries+1 {
		t.Fatalf("GetOrSet = %q, %v with %d loads after %d hook retries; want the value, 1 load, 1 re-sent lease",
			got, err, loads.Load(), hook.Retries()-retries)
	}
	if s, ok := e.stored(t, "lease"); !ok || s != string(got) {
		t.Fatalf("server holds %q, %v; want %q", s, ok, got)
	}

	// With the hook told not to re-send, the acquisition stays unknown: the
	// lease is handed back and GetOrSet fails closed.
	loads.Store(0)
	e.fault(t, c.key("lease2"), func() {
		_, err = c.GetOrSet(retry.WithNoRetry(ctx), "lease2", time.Minute, countingLoader(&loads, 0))
	})
	if !errors.Is(err, retry.ErrAmbiguous) || !errors.Is(err, retry.ErrUnavailable) || loads.Load() != 0 {
		t.Fatalf("GetOrSet = %v with %d loads; want ErrAmbiguous and ErrUnavailable, no load", err, loads.Load())
	}
	if e.exists(t, c.key("lease2")) {
		t.Fatal("the lease marker was left behind")
	}
	loads.Store(0)

	retries = hook.Retries()
	var v []byte
	e.fault(t, scriptCommit.Hash(), func() { v, err = c.GetOrSet(ctx, "commit", time.Minute, countingLoader(&loads, 0)) })
	if err != nil || string(v) != "value-1" || hook.Retries() != retries+1 {
		t.Fatalf("GetOrSet = %q, %v after %d hook retries; want value-1 after 1 re-sent commit", v, err, hook.Retries()-retries)
	}
	if s, ok := e.stored(t, "commit"); !ok || s != "value-1" {
		t.Fatalf("server holds %q, %v; want value-1", s, ok)
	}
}

// TestWriteNotSentIsNotAmbiguous: a write that provably never reached a
// server (the connection is refused) is not reported as ambiguous: it is
// returned as it is, and retry.IsUnavailable says Redis was not reached.
func TestWriteNotSentIsNotAmbiguous(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	c, err := New(rdb, Options{Prefix: "refused"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := ctxT(t)
	_, incrErr := c.Incr(ctx, "n", 1, 0)
	for name, err := range map[string]error{
		"Set":    c.Set(ctx, "k", []byte("v"), 0),
		"Delete": c.Delete(ctx, "k"),
		"MSet":   c.MSet(ctx, map[string][]byte{"k": []byte("v")}, 0),
		"Incr":   incrErr,
	} {
		if err == nil || errors.Is(err, retry.ErrAmbiguous) || !retry.IsUnavailable(err) {
			t.Errorf("%s to a refused address = %v; want a not-ambiguous unavailable error", name, err)
		}
	}
}

// A lease acquisition runs and its reply is lost, and the server is down
// for every re-send and for the release that would hand the lease back: the
// server comes back with the lease still in place (restarted from its
// append-only file, or a promoted replica). The Cache keeps trying to
// release it, so other processes do not wait out its 30 s LeaseTTL.
func TestLostLeaseReleasedWhenServerReturns(t *testing.T) {
	srv := redistest.Shared(t)
	p := redistest.NewProxy(t, srv.Addr)
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr, ReadTimeout: 300 * time.Millisecond}) // go-redis's default retries
	t.Cleanup(func() { _ = rdb.Close() })
	c, err := New(rdb, Options{Prefix: redistest.Prefix(t), LeaseTTL: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	direct := srv.Client(t)
	ctx := ctxT(t)
	rk := c.key("k")
	before := p.Swallowed()
	p.DropReplyAfter(rk)
	done := make(chan error, 1)
	loads := 0
	go func() {
		_, err := c.GetOrSet(ctx, "k", time.Minute, func(context.Context) ([]byte, error) { loads++; return []byte("v"), nil })
		done <- err
	}()
	waitFor(t, "the lease's reply swallowed", func() bool { return p.Swallowed() > before })
	if err := p.SetDown(true); err != nil {
		t.Fatal(err)
	}
	err = <-done
	p.DropReplyAfter("")
	if !errors.Is(err, retry.ErrAmbiguous) || loads != 0 {
		t.Fatalf("GetOrSet = %v after %d loads; want an ambiguous error (FailClosed) and no load", err, loads)
	}
	if ttl := direct.PTTL(ctx, rk).Val(); ttl < 20*time.Second {
		t.Fatalf("the lease is not in place while the server is down (PTTL %v)", ttl)
	}
	if err := p.SetDown(false); err != nil {
		t.Fatal(err)
	}
	// waitFor gives up after 10 s, well before the lease's 30 s run out.
	waitFor(t, "the lease handed back", func() bool { return direct.Exists(ctx, rk).Val() == 0 })
}
