package contract_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit"
	"github.com/rediskit/rediskit/cache"
	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/retry"
	"github.com/rediskit/rediskit/session"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// readTimeout bounds the wait for a reply that the proxy swallowed. Every
// other option of the user-built clients is go-redis's default: MaxRetries
// 3 on Client, Ring and failover clients, MaxRedirects 3 on Cluster.
const readTimeout = 300 * time.Millisecond

// deployment is one client kind behind fault proxies, and a client that
// reaches the same servers directly, for the assertions.
type deployment struct {
	proxies []*redistest.Proxy
	client  redis.UniversalClient // through the proxies
	direct  redis.UniversalClient
}

// arm makes the next request containing pattern lose its reply, whichever
// node it goes to; disarm cancels what did not fire.
func (d *deployment) arm(pattern string) {
	for _, p := range d.proxies {
		p.DropReplyAfter(pattern)
	}
}

func (d *deployment) dropped() int {
	n := 0
	for _, p := range d.proxies {
		n += p.Dropped()
	}
	return n
}

// swallowed counts the replies the proxies swallowed after a drop: the
// server had run the request.
func (d *deployment) swallowed() int {
	n := 0
	for _, p := range d.proxies {
		n += p.Swallowed()
	}
	return n
}

func (d *deployment) disarm() { d.arm("") }

// down takes every proxy down (on) or up again: see redistest.Proxy.SetDown.
func (d *deployment) down(t *testing.T, on bool) {
	t.Helper()
	for _, p := range d.proxies {
		if err := p.SetDown(on); err != nil {
			t.Fatal(err)
		}
	}
}

// awaitUp waits until the client under test answers again: after its
// servers were down, a Cluster client relearns its slots and a
// rediskit.Client's breaker closes.
func (d *deployment) awaitUp(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := d.client.Ping(ctx).Err()
		if cc, ok := d.client.(*redis.ClusterClient); ok && err == nil {
			err = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return m.Ping(ctx).Err() })
		}
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client does not answer after its servers came back: %v", err)
		}
	}
}

// proxied starts a proxy in front of every address and returns them with a
// Dialer that sends a dial of any of those addresses through its proxy.
func proxied(t *testing.T, addrs ...string) ([]*redistest.Proxy, func(context.Context, string, string) (net.Conn, error)) {
	via := make(map[string]string, len(addrs))
	var ps []*redistest.Proxy
	for _, a := range addrs {
		p := redistest.NewProxy(t, a)
		via[a] = p.Addr
		ps = append(ps, p)
	}
	return ps, func(ctx context.Context, network, addr string) (net.Conn, error) {
		if p, ok := via[addr]; ok {
			addr = p
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

var kinds = []string{"client", "cluster", "sentinel", "ring", "rediskit"}

func newDeployment(t *testing.T, kind string) *deployment {
	t.Helper()
	switch kind {
	case "client":
		srv := redistest.Shared(t)
		ps, dial := proxied(t, srv.Addr)
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Dialer: dial, ReadTimeout: readTimeout})
		t.Cleanup(func() { _ = rdb.Close() })
		return &deployment{ps, rdb, srv.Client(t)}
	case "cluster":
		c := redistest.SharedCluster(t)
		ps, dial := proxied(t, c.Addrs()...)
		rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), Dialer: dial, ReadTimeout: readTimeout})
		t.Cleanup(func() { _ = rdb.Close() })
		return &deployment{ps, rdb, c.Client(t)}
	case "sentinel":
		s := redistest.SharedSentinel(t)
		ps, dial := proxied(t, s.Master.Addr, s.Replica.Addr)
		rdb := s.Client(t, func(o *redis.FailoverOptions) { o.Dialer, o.ReadTimeout = dial, readTimeout })
		return &deployment{ps, rdb, s.Client(t)}
	case "ring":
		srv := redistest.Shared(t)
		ps, dial := proxied(t, srv.Addr)
		rdb := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": srv.Addr}, Dialer: dial, ReadTimeout: readTimeout})
		t.Cleanup(func() { _ = rdb.Close() })
		return &deployment{ps, rdb, srv.Client(t)}
	case "rediskit":
		srv := redistest.Shared(t)
		p := redistest.NewProxy(t, srv.Addr)
		c, err := rediskit.Open(context.Background(), rediskit.Config{Addr: p.Addr, ReadTimeout: readTimeout})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return &deployment{[]*redistest.Proxy{p}, c.Redis(), srv.Client(t)}
	}
	t.Fatalf("unknown client kind %q", kind)
	return nil
}

// fixture is one subtest's stores and caches: the ones under test on the
// proxied client, and twins on the direct client with the same prefix.
type fixture struct {
	prefix        string
	store, dstore *session.Store
	cache, dcache *cache.Cache
	loads         atomic.Int64
}

// writeCase is one write. pattern picks the request whose reply is lost:
// "evalsha" for a script (each operation below sends one), or the name of
// the key otherwise; keys of one operation share a hash tag, so one request
// to one node carries them. once marks the writes that must not run twice:
// their caller is told the outcome is unknown. The others are safe to
// repeat: a client that re-sends them gets the definite answer, one that
// does not (a Ring's shard clients and a Cluster's node clients run with
// MaxRetries -1 whatever the user set, so go-redis never re-sends a
// pipeline or a per-node call there) is told the outcome is unknown, and
// the write may simply be repeated.
type writeCase struct {
	name    string
	pattern func(key string) string
	once    bool
	setup   func(t *testing.T, ctx context.Context, f *fixture) any
	run     func(ctx context.Context, f *fixture, st any) (any, error)
	check   func(t *testing.T, ctx context.Context, f *fixture, st, res any)
	// refused, when set, is what TestLostReplyThenRefused asserts in
	// place of an ambiguous error and check.
	refused func(t *testing.T, ctx context.Context, f *fixture, err error)
}

func script(string) string { return "evalsha" }

func keyed(key string) string { return key }

func mustCreate(t *testing.T, ctx context.Context, s *session.Store, user string) *session.Session {
	t.Helper()
	sess, err := s.Create(ctx, user, map[string]any{"k": 1}, session.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

func mustGet(t *testing.T, ctx context.Context, s *session.Store, id string) *session.Session {
	t.Helper()
	sess, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return sess
}

func mustBeGone(t *testing.T, ctx context.Context, s *session.Store, id string) {
	t.Helper()
	if _, err := s.Get(ctx, id); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get of a session that must be gone: %v", err)
	}
}

func countUser(t *testing.T, ctx context.Context, s *session.Store, user string) int {
	t.Helper()
	l, err := s.ListByUser(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	return len(l)
}

var sessionWrites = []writeCase{
	{name: "session.Create", pattern: script, once: true,
		run: func(ctx context.Context, f *fixture, _ any) (any, error) {
			return f.store.Create(ctx, "creator", map[string]any{"k": 1}, session.CreateOptions{})
		},
		check: func(t *testing.T, ctx context.Context, f *fixture, _, res any) {
			s := res.(*session.Session)
			if s == nil {
				t.Fatal("an ambiguous Create returned no Session: the caller cannot settle it")
			}
			mustGet(t, ctx, f.dstore, s.ID())
			if n := countUser(t, ctx, f.dstore, "creator"); n != 1 {
				t.Fatalf("user has %d sessions after one Create, want 1", n)
			}
		}},
	{name: "session.Update", pattern: script, once: true,
		setup: func(t *testing.T, ctx context.Context, f *fixture) any { return mustCreate(t, ctx, f.dstore, "u") },
		run: func(ctx context.Context, f *fixture, st any) (any, error) {
			return f.store.Update(ctx, st.(*session.Session).ID(), session.Changes{Set: map[string]any{"k": 2}})
		},
		check: func(t *testing.T, ctx context.Context, f *fixture, st, _ any) {
			if v := mustGet(t, ctx, f.dstore, st.(*session.Session).ID()).Version(); v != 2 {
				t.Fatalf("version %d after one Update of version 1, want 2", v)
			}
		}},
	{name: "session.Update/IfVersion", pattern: script, once: true,
		setup: func(t *testing.T, ctx context.Context, f *fixture) any { return mustCreate(t, ctx, f.dstore, "u") },
		run: func(ctx context.Context, f *fixture, st any) (any, error) {
			return f.store.Update(ctx, st.(*session.Session).ID(), session.Changes{Set: map[string]any{"k": 2}, IfVersion: 1})
		},
		check: func(t *testing.T, ctx context.Context, f *fixture, st, _ any) {
			s := mustGet(t, ctx, f.dstore, st.(*session.Session).ID())
			var k int
			if err := s.Decode("k", &k); err != nil || s.Version() != 2 || k != 2 {
				t.Fatalf("version %d, k=%d (%v) after one Update, want 2, 2", s.Version(), k, err)
			}
		}},
	{name: "session.Extend", pattern: script,
		setup: func(t *testing.T, ctx context.Context, f *fixture) any { return mustCreate(t, ctx, f.dstore, "u") },
		run: func(ctx context.Context, f *fixture, st any) (any, error) {
			_, dl, err := f.store.Extend(ctx, st.(*session.Session).ID(), 100*time.Hour)
			return dl, err
		},
		check: func(t *testing.T, ctx context.Context, f *fixture, st, res any) {
			got := mustGet(t, ctx, f.dstore, st.(*session.Session).ID()).Info().Deadline
			if d := time.Until(got); d < 99*time.Hour || d > 101*time.Hour {
				t.Fatalf("deadline in %v after Extend(100h)", d)
			}
		}},
	{name: "session.Rotate", pattern: script,
		setup: func(t *testing.T, ctx context.Context, f *fixture) any { return mustCreate(t, ctx, f.dstore, "rot") },
		run: func(ctx context.Context, f *fixture, st any) (any, error) {
			return f.store.Rotate(ctx, st.(*session.Session).ID())
		},
		check: func(t *testing.T, ctx context.Context, f *fixture, st, res any) {
			mustBeGone(t, ctx, f.dstore, st.(*session.Session).ID())
			mustGet(t, ctx, f.dstore, res.(string))
			if n := countUser(t, ctx, f.dstore, "rot"); n != 1 {
				t.Fatalf("user has %d sessions after Rotate, want 1", n)
			}
		}},
	{name: "session.Delete", pattern: script,
		setup: func(t *testing.T, ctx context.Context, f *fixture) any { return mustCreate(t, ctx, f.dstore, "u") },
		run: func(ctx context.Context, f *fixture, st any) (any, error) {
			// A re-send after the lost reply finds the session gone: the
			// answer must still be "found" (the deletion's tombstone).
			found, err := f.store.Delete(ctx, st.(*session.Session).ID())
			if err == nil && !found {
				return nil, errors.New("Delete of a live session answered not found")
			}
			return found, err
		},
		check: func(t *testing.T, ctx context.Context, f *fixture, st, _ any) {
			mustBeGone(t, ctx, f.dstore, st.(*session.Session).ID())
		}},
	{name: "session.DeleteByUser", pattern: script,
		setup: func(t *testing.T, ctx context.Context, f *fixture) any {
			mustCreate(t, ctx, f.dstore, "all")
			return mustCreate(t, ctx, f.dstore, "all")
		},
		run: func(ctx context.Context, f *fixture, _ any) (any, error) {
			// A re-send after the lost reply must still count both (the
			// call's tombstone).
			n, err := f.store.DeleteByUser(ctx, "all")
			if err == nil && n != 2 {
				return nil, fmt.Errorf("DeleteByUser of 2 sessions answered %d", n)
			}
			return n, err
		},
		check: func(t *testing.T, ctx context.Context, f *fixture, st, _ any) {
			if n := countUser(t, ctx, f.dstore, "all"); n != 0 {
				t.Fatalf("%d sessions left after DeleteByUser", n)
			}
		}},
	{name: "session.RevokeHandle", pattern: script,
		setup: func(t *testing.T, ctx context.Context, f *fixture) any {
			keep := mustCreate(t, ctx, f.dstore, "rev")
			return [2]*session.Session{mustCreate(t, ctx, f.dstore, "rev"), keep}
		},
		run: func(ctx context.Context, f *fixture, st any) (any, error) {
			found, err := f.store.RevokeHandle(ctx, "rev", st.([2]*session.Session)[0].Info().Handle)
			if err == nil && !found {
				return nil, errors.New("RevokeHandle of a live session answered not found")
			}
			return found, err
		},
		check: func(t *testing.T, ctx context.Context, f *fixture, st, _ any) {
			pair := st.([2]*session.Session)
			mustBeGone(t, ctx, f.dstore, pair[0].ID())
			mustGet(t, ctx, f.dstore, pair[1].ID())
		}},
	{name: "session.Get/touch", pattern: script,
		setup: func(t *testing.T, ctx context.Context, f *fixture) any { return mustCreate(t, ctx, f.dstore, "u") },
		run: func(ctx context.Context, f *fixture, st any) (any, error) {
			return f.store.Get(ctx, st.(*session.Session).ID())
		},
		check: func(t *testing.T, ctx context.Context, f *fixture, st, _ any) {
			s := mustGet(t, ctx, f.dstore, st.(*session.Session).ID())
			if !s.Info().LastSeen.After(st.(*session.Session).Info().LastSeen) {
				t.Fatal("the touch did not move last-seen")
			}
		}},
}

func mustValue(t *testing.T, ctx context.Context, c *cache.Cache, key, want string) {
	t.Helper()
	v, ok, err := c.Get(ctx, key)
	if err != nil || !ok || string(v) != want {
		t.Fatalf("Get(%q) = %q, %v, %v; want %q", key, v, ok, err, want)
	}
}

func counterIs(t *testing.T, ctx context.Context, c *cache.Cache, key string, want int64) {
	t.Helper()
	n, _, err := c.Counter(ctx, key)
	if err != nil || n != want {
		t.Fatalf("Counter(%q) = %d, %v after one call; want %d", key, n, err, want)
	}
}

var cacheWrites = []writeCase{
	{name: "cache.Set", pattern: keyed,
		run: func(ctx context.Context, f *fixture, _ any) (any, error) {
			return nil, f.cache.Set(ctx, "set", []byte("v"), time.Minute)
		},
		check: func(t *testing.T, ctx context.Context, f *fixture, _, _ any) { mustValue(t, ctx, f.dcache, "set", "v") }},
	{name: "cache.MSet", pattern: keyed,
		run: func(ctx context.Context, f *fixture, _ any) (any, error) {
			return nil, f.cache.MSet(ctx, map[string][]byte{"{m}1": []byte("a"), "{m}2": []byte("b")}, time.Minute)
		},
		check: func(t *testing.T, ctx context.Context, f *fixture, _, _ any) {
			mustValue(t, ctx, f.dcache, "{m}1", "a")
			mustValue(t, ctx, f.dcache, "{m}2", "b")
		}},
	{name: "cache.Incr", pattern: script, once: true,
		run: func(ctx context.Context, f *fixture, _ any) (any, error) {
			return f.cache.Incr(ctx, "n", 5, time.Minute)
		},
		check: func(t *testing.T, ctx context.Context, f *fixture, _, _ any) { counterIs(t, ctx, f.dcache, "n", 5) }},
	{name: "cache.Decr", pattern: script, once: true,
		run: func(ctx context.Context, f *fixture, _ any) (any, error) {
			return f.cache.Decr(ctx, "n", 5, time.Minute)
		},
		check: func(t *testing.T, ctx context.Context, f *fixture, _, _ any) { counterIs(t, ctx, f.dcache, "n", -5) }},
	leaseCase(),
	getOrSetCase("cache.GetOrSet/commit", "commit", script),
	{name: "cache.Delete", pattern: keyed,
		setup: func(t *testing.T, ctx context.Context, f *fixture) any {
			if err := f.dcache.Set(ctx, "del", []byte("v"), time.Minute); err != nil {
				t.Fatal(err)
			}
			return nil
		},
		run: func(ctx context.Context, f *fixture, _ any) (any, error) { return nil, f.cache.Delete(ctx, "del") },
		check: func(t *testing.T, ctx context.Context, f *fixture, _, _ any) {
			if ok, err := f.dcache.Exists(ctx, "del"); ok || err != nil {
				t.Fatalf("Exists after Delete = %v, %v", ok, err)
			}
		}},
	{name: "cache.Clear", pattern: func(string) string { return "unlink" },
		setup: func(t *testing.T, ctx context.Context, f *fixture) any {
			if err := f.dcache.MSet(ctx, map[string][]byte{"{c}1": []byte("v"), "{c}2": []byte("v")}, time.Minute); err != nil {
				t.Fatal(err)
			}
			return nil
		},
		run: func(ctx context.Context, f *fixture, _ any) (any, error) {
			return f.cache.Clear(ctx, cache.Prefix("{c}"), cache.ClearOptions{})
		},
		check: func(t *testing.T, ctx context.Context, f *fixture, _, _ any) {
			for _, k := range []string{"{c}1", "{c}2"} {
				if ok, err := f.dcache.Exists(ctx, k); ok || err != nil {
					t.Fatalf("Exists(%q) after Clear = %v, %v", k, ok, err)
				}
			}
		}},
}

// leaseCase is getOrSetCase with the lease's reply lost. When every re-send
// is refused too, the miss answers as with Redis unavailable (FailClosed, the
// default: an error matching retry.ErrUnavailable and retry.ErrAmbiguous, no
// load), and the lease, which did run, is handed back once the server
// returns: another process's GetOrSet of the key loads well before the
// lease's 12 s would have run out.
func leaseCase() writeCase {
	wc := getOrSetCase("cache.GetOrSet/lease", "lease", keyed)
	wc.refused = func(t *testing.T, ctx context.Context, f *fixture, err error) {
		if !errors.Is(err, retry.ErrUnavailable) || !errors.Is(err, retry.ErrAmbiguous) || f.loads.Load() != 0 {
			t.Fatalf("GetOrSet = %v after %d loads; want an error matching ErrUnavailable and ErrAmbiguous, no load", err, f.loads.Load())
		}
		ctx, cancel := context.WithTimeout(ctx, 8*time.Second)
		defer cancel()
		v, err := f.dcache.GetOrSet(ctx, "lease", time.Minute, func(context.Context) ([]byte, error) { return []byte("next"), nil })
		if err != nil || string(v) != "next" {
			t.Fatalf("another process's GetOrSet of the key = %q, %v: the lease was not handed back", v, err)
		}
	}
	return wc
}

// getOrSetCase is a GetOrSet miss of key whose reply is lost at the request
// pattern picks: the lease (the first request naming the key) or the
// commit (the script). The loader runs once and its value is stored.
func getOrSetCase(name, key string, pattern func(string) string) writeCase {
	return writeCase{name: name, pattern: pattern,
		run: func(ctx context.Context, f *fixture, _ any) (any, error) {
			return f.cache.GetOrSet(ctx, key, time.Minute, func(context.Context) ([]byte, error) {
				f.loads.Add(1)
				return []byte("loaded"), nil
			})
		},
		check: func(t *testing.T, ctx context.Context, f *fixture, _, _ any) {
			if n := f.loads.Load(); n != 1 {
				t.Fatalf("loader ran %d times, want 1", n)
			}
			mustValue(t, ctx, f.dcache, key, "loaded")
		}}
}

// TestLostReplyMatrix: every write × every client kind × AutoPipeline off
// and on. The proxy lets the write reach the server and run, then swallows
// its reply. The server's state must show the write applied exactly once;
// a write that must not run twice reports retry.ErrAmbiguous, a write that
// is safe to repeat reports the definite answer of a retry.
func TestLostReplyMatrix(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			d := newDeployment(t, kind)
			for _, mode := range []session.Pipelining{session.PipelineOff, session.PipelineAdaptive, session.PipelineAlways} {
				t.Run("pipelining="+mode.String(), func(t *testing.T) {
					for _, wc := range append(append([]writeCase(nil), sessionWrites...), cacheWrites...) {
						t.Run(wc.name, func(t *testing.T) { runWriteCase(t, d, mode, wc) })
					}
				})
			}
		})
	}
}

// resends reports whether go-redis itself re-sends every write that is safe
// to repeat on this client: not on a Ring or a Cluster, whose per-node
// clients never retry (see writeCase).
func resends(rdb redis.UniversalClient) bool {
	switch rdb.(type) {
	case *redis.Ring, *redis.ClusterClient:
		return false
	}
	return true
}

// newFixture makes the stores and caches of one subtest: on d's client with
// the session store's and the cache's Pipelining set to mode (the cache's
// mode of the same name), and their twins on the direct client.
func newFixture(t *testing.T, d *deployment, mode session.Pipelining) *fixture {
	ctx := context.Background()
	f := &fixture{prefix: redistest.Prefix(t)}
	var err error
	sopts := session.Options{Prefix: f.prefix, TouchInterval: -1, Pipelining: mode}
	if f.store, err = session.New(d.client, sopts); err != nil {
		if _, ring := d.client.(*redis.Ring); ring && mode == session.PipelineAlways {
			t.Skipf("go-redis has no AutoPipeliner for a Ring, and New says so: %v", err)
		}
		t.Fatal(err)
	}
	sopts.Pipelining = session.PipelineOff
	if f.dstore, err = session.New(d.direct, sopts); err != nil {
		t.Fatal(err)
	}
	copts := cache.Options{Prefix: f.prefix, Pipelining: cache.Pipelining(mode)}
	if f.cache, err = cache.New(d.client, copts); err != nil {
		t.Fatal(err)
	}
	copts.Pipelining = cache.PipelineOff
	if f.dcache, err = cache.New(d.direct, copts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, c := range []interface{ Close() error }{f.store, f.dstore, f.cache, f.dcache} {
			_ = c.Close()
		}
	})
	// Scripts cached on every node, and every connection the operation
	// needs already dialled: the lost reply is the only fault.
	for _, p := range []interface{ Preload(context.Context) error }{f.store, f.dstore, f.cache, f.dcache} {
		if err := p.Preload(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// prepare makes the fixture of a case of wc with Pipelining mode, and runs
// wc's setup.
func prepare(t *testing.T, d *deployment, mode session.Pipelining, wc writeCase) (*fixture, any) {
	f := newFixture(t, d, mode)
	var st any
	if wc.setup != nil {
		st = wc.setup(t, context.Background(), f)
	}
	return f, st
}

// runWriteCase runs wc on d's client with Pipelining mode.
func runWriteCase(t *testing.T, d *deployment, mode session.Pipelining, wc writeCase) {
	ctx := context.Background()
	f, st := prepare(t, d, mode, wc)
	before := d.dropped()
	d.arm(wc.pattern(f.prefix))
	res, err := wc.run(ctx, f, st)
	d.disarm()
	if got := d.dropped() - before; got != 1 {
		t.Fatalf("the fault fired %d times, want 1 (err %v)", got, err)
	}
	switch {
	case wc.once && !errors.Is(err, retry.ErrAmbiguous):
		t.Fatalf("err = %v, want one matching retry.ErrAmbiguous", err)
	case !wc.once && err != nil && !errors.Is(err, retry.ErrAmbiguous):
		t.Fatalf("err = %v, want the definite answer of a retry, or retry.ErrAmbiguous", err)
	case !wc.once && err != nil && resends(d.client):
		t.Fatalf("err = %v, want the definite answer of a retry: this client re-sends the write", err)
	}
	wc.check(t, ctx, f, st, res)
}

// TestLostReplyThenRefused: every write that is safe to repeat × every
// client kind × AutoPipeline off and on. The write runs and its reply is
// lost, and then the server is down: the connection is reset and every
// re-send a client makes is refused at the dial. The last error only proves
// that the last attempt did not run, so the caller must be told the outcome
// is unknown (retry.ErrAmbiguous), never that Redis was unavailable, which
// a caller reads as "nothing happened" (a Rotate the caller thinks failed
// has removed the old ID). The server's state must show the write applied
// once. A Get's touch and GetOrSet's commit are left out: to their callers
// they are reads, whose failure is just a failure; GetOrSet's lease has its
// own answer (leaseCase).
func TestLostReplyThenRefused(t *testing.T) {
	t.Parallel() // its proxies are its own; it takes no shared server down
	var repeatable []writeCase
	for _, wc := range append(append([]writeCase(nil), sessionWrites...), cacheWrites...) {
		if !wc.once && wc.name != "session.Get/touch" && wc.name != "cache.GetOrSet/commit" {
			repeatable = append(repeatable, wc)
		}
	}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			d := newDeployment(t, kind)
			for _, mode := range []session.Pipelining{session.PipelineOff, session.PipelineAlways} {
				t.Run("pipelining="+mode.String(), func(t *testing.T) {
					for _, wc := range repeatable {
						t.Run(wc.name, func(t *testing.T) { runRefusedCase(t, d, mode, wc) })
					}
				})
			}
		})
	}
}

func runRefusedCase(t *testing.T, d *deployment, mode session.Pipelining, wc writeCase) {
	ctx := context.Background()
	f, st := prepare(t, d, mode, wc)
	type result struct {
		res any
		err error
	}
	done := make(chan result, 1)
	before := d.swallowed()
	d.arm(wc.pattern(f.prefix))
	go func() {
		res, err := wc.run(ctx, f, st)
		done <- result{res, err}
	}()
	// Down only once the server has run the write and answered.
	for deadline := time.Now().Add(5 * time.Second); d.swallowed() == before; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			d.disarm()
			t.Fatalf("the fault never fired (result %+v)", <-done)
		}
	}
	d.down(t, true)
	r := <-done
	d.down(t, false)
	d.disarm()
	d.awaitUp(t)
	if wc.refused != nil {
		wc.refused(t, ctx, f, r.err)
		return
	}
	if r.err == nil {
		t.Fatal("the write succeeded while every re-send was refused")
	}
	if !errors.Is(r.err, retry.ErrAmbiguous) {
		t.Fatalf("err = %v (unavailable: %v), want one matching retry.ErrAmbiguous", r.err, retry.IsUnavailable(r.err))
	}
	wc.check(t, ctx, f, st, r.res)
}
