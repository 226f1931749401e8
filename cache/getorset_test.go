package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/retry"
)

func TestGetOrSetMissIsTwoCommandsHitIsOne(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{})
		var calls atomic.Int64
		load := countingLoader(&calls, 0)
		// Warm the cluster client and the Pub/Sub-free path once.
		if _, err := c.GetOrSet(ctx, "warm", time.Minute, load); err != nil {
			t.Fatal(err)
		}
		tp.cnt.reset()
		v, err := c.GetOrSet(ctx, "k", time.Minute, load)
		if err != nil || string(v) != "value-2" {
			t.Fatalf("GetOrSet miss = %q, %v", v, err)
		}
		// SET NX GET of the lease marker (which would have returned a value) and the
		// conditional write: 2 commands, within the budget of 3.
		if cmds, _, _, names := tp.cnt.snapshot(); cmds != 2 {
			t.Fatalf("GetOrSet miss: %d commands %v, want 2", cmds, names)
		}
		tp.cnt.reset()
		v, err = c.GetOrSet(ctx, "k", time.Minute, load)
		if err != nil || string(v) != "value-2" {
			t.Fatalf("GetOrSet hit = %q, %v", v, err)
		}
		if cmds, _, _, names := tp.cnt.snapshot(); cmds != 1 {
			t.Fatalf("GetOrSet hit: %d commands %v, want 1", cmds, names)
		}
		if calls.Load() != 2 {
			t.Fatalf("loader called %d times, want 2", calls.Load())
		}
		// The lease is gone after the commit.
		if n, _ := tp.rdb.Exists(ctx, c.leaseKey(c.key("k"))).Result(); n != 0 {
			t.Fatal("lease left behind after a successful load")
		}
	})
}

func TestGetOrSetSingleflightInProcess(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{})
		var calls atomic.Int64
		release := make(chan struct{})
		loader := func(ctx context.Context) ([]byte, error) {
			calls.Add(1)
			<-release
			return []byte("v"), nil
		}
		// A waiter that leaves on its own context does not cancel the load.
		short, cancel := context.WithCancel(ctx)
		leaverErr := make(chan error, 1)
		go func() {
			_, err := c.GetOrSet(short, "k", time.Minute, loader)
			leaverErr <- err
		}()
		waitFor(t, "the first load to start", func() bool { return calls.Load() == 1 })
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for range 100 {
			wg.Go(func() {
				v, err := c.GetOrSet(ctx, "k", time.Minute, loader)
				if err == nil && string(v) != "v" {
					err = fmt.Errorf("got %q", v)
				}
				errs <- err
			})
		}
		cancel()
		if err := <-leaverErr; !errors.Is(err, context.Canceled) {
			t.Fatalf("leaving waiter got %v, want context.Canceled", err)
		}
		waitFor(t, "100 waiters to join", func() bool { return c.LocalStats().DedupLoads >= 100 })
		close(release)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if calls.Load() != 1 {
			t.Fatalf("loader called %d times, want 1", calls.Load())
		}
		if v, ok, _ := c.Get(ctx, "k"); !ok || string(v) != "v" {
			t.Fatalf("value not stored: %q %v", v, ok)
		}
	})
}

func TestLoaderErrorAndPanicReachEveryWaiterAndReleaseLease(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{})
		boom := errors.New("db down")
		for _, tc := range []struct {
			name   string
			loader func() ([]byte, error)
			check  func(error) bool
		}{
			{"error", func() ([]byte, error) { return nil, boom }, func(err error) bool { return errors.Is(err, boom) }},
			{"panic", func() ([]byte, error) { panic("kaboom") }, func(err error) bool {
				var pe *PanicError
				return errors.As(err, &pe) && pe.Value == "kaboom" && len(pe.Stack) > 0
			}},
		} {
			key := "k-" + tc.name
			start := make(chan struct{})
			loader := func(ctx context.Context) ([]byte, error) {
				<-start
				return tc.loader()
			}
			d0 := c.LocalStats().DedupLoads
			var wg sync.WaitGroup
			errs := make(chan error, 50)
			for range 50 {
				wg.Go(func() {
					_, err := c.GetOrSet(ctx, key, time.Minute, loader)
					errs <- err
				})
			}
			waitFor(t, "50 waiters to share one flight", func() bool { return c.LocalStats().DedupLoads-d0 == 49 })
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				if !tc.check(err) {
					t.Fatalf("%s: waiter got %v", tc.name, err)
				}
			}
			// Neither a lease marker in the key nor a lease key is left.
			if n, _ := tp.rdb.Exists(ctx, c.key(key)).Result(); n != 0 {
				t.Fatalf("%s: lease not released", tc.name)
			}
			if n, _ := tp.rdb.Exists(ctx, c.leaseKey(c.key(key))).Result(); n != 0 {
				t.Fatalf("%s: lease key left", tc.name)
			}
			// The next call loads again.
			v, err := c.GetOrSet(ctx, key, time.Minute, func(context.Context) ([]byte, error) { return []byte("ok"), nil })
			if err != nil || string(v) != "ok" {
				t.Fatalf("%s: retry = %q, %v", tc.name, v, err)
			}
		}
		if st := c.LocalStats(); st.LoaderErrors != 2 {
			t.Fatalf("LoaderErrors = %d, want 2", st.LoaderErrors)
		}
	})
}

func TestDeleteDuringLoadIsNotUndone(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{})
		started, finish := make(chan struct{}), make(chan struct{})
		done := make(chan error, 1)
		go func() {
			v, err := c.GetOrSet(ctx, "k", time.Minute, func(context.Context) ([]byte, error) {
				close(started)
				<-finish
				return []byte("stale-by-now"), nil
			})
			if err == nil && string(v) != "stale-by-now" {
				err = fmt.Errorf("got %q", v)
			}
			done <- err
		}()
		<-started
		if err := c.Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		close(finish)
		if err := <-done; err != nil {
			t.Fatal(err) // the caller still gets its loaded value
		}
		if _, ok, err := c.Get(ctx, "k"); err != nil || ok {
			t.Fatalf("the load wrote its value after Delete: %v, %v", ok, err)
		}
	})
}

func TestLeaseTakeoverWhenOwnerDies(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{LeasePoll: 20 * time.Millisecond})
		// The lease marker of a load whose owner died without publishing.
		marker := append(appendHeader(nil, valueHeader{Lease: true}), "dead-owner"...)
		if err := tp.rdb.Set(ctx, c.key("k"), marker, 300*time.Millisecond).Err(); err != nil {
			t.Fatal(err)
		}
		// Reads see no value while the load runs.
		if _, ok, err := c.Get(ctx, "k"); ok || err != nil {
			t.Fatalf("Get of a lease marker = %v, %v; want a miss", ok, err)
		}
		var calls atomic.Int64
		v, err := c.GetOrSet(ctx, "k", time.Minute, countingLoader(&calls, 0))
		if err != nil || string(v) != "value-1" || calls.Load() != 1 {
			t.Fatalf("GetOrSet after takeover = %q, %v (calls %d)", v, err, calls.Load())
		}
		if st := c.LocalStats(); st.LeaseWaits != 1 || st.DecodeFailures != 0 {
			t.Fatalf("LeaseWaits = %d, DecodeFailures = %d; want 1, 0", st.LeaseWaits, st.DecodeFailures)
		}
	})
}

func TestWaiterInAnotherCacheIsWokenByPubSub(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		// Two Caches on one namespace stand for two processes. The fallback
		// poll is an hour: only the Pub/Sub event can wake the waiter.
		a := newCache(t, tp.rdb, Options{LeasePoll: time.Hour})
		b := newCache(t, tp.rdb, Options{Prefix: a.opt.Prefix, LeasePoll: time.Hour})
		started, finish := make(chan struct{}), make(chan struct{})
		aDone := make(chan error, 1)
		go func() {
			_, err := a.GetOrSet(ctx, "k", time.Minute, func(context.Context) ([]byte, error) {
				close(started)
				<-finish
				return []byte("from-a"), nil
			})
			aDone <- err
		}()
		<-started
		bDone := make(chan error, 1)
		var bCalls atomic.Int64
		go func() {
			v, err := b.GetOrSet(ctx, "k", time.Minute, countingLoader(&bCalls, 0))
			if err == nil && string(v) != "from-a" {
				err = fmt.Errorf("b got %q", v)
			}
			bDone <- err
		}()
		waitFor(t, "b to wait on the lease", func() bool { return b.LocalStats().LeaseWaits == 1 })
		close(finish)
		if err := <-aDone; err != nil {
			t.Fatal(err)
		}
		if err := <-bDone; err != nil {
			t.Fatal(err)
		}
		if bCalls.Load() != 0 {
			t.Fatal("b ran its loader although a held the lease")
		}
	})
}

func TestRemoteLoaderFailureReachesWaiters(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		a := newCache(t, tp.rdb, Options{LeasePoll: time.Hour})
		b := newCache(t, tp.rdb, Options{Prefix: a.opt.Prefix, LeasePoll: time.Hour})
		started, finish := make(chan struct{}), make(chan struct{})
		go func() {
			_, _ = a.GetOrSet(ctx, "k", time.Minute, func(context.Context) ([]byte, error) {
				close(started)
				<-finish
				return nil, errors.New("boom")
			})
		}()
		<-started
		bDone := make(chan error, 1)
		go func() {
			_, err := b.GetOrSet(ctx, "k", time.Minute, func(context.Context) ([]byte, error) { return []byte("b"), nil })
			bDone <- err
		}()
		waitFor(t, "b to wait on the lease", func() bool { return b.LocalStats().LeaseWaits == 1 })
		close(finish)
		if err := <-bDone; !errors.Is(err, ErrRemoteLoad) {
			t.Fatalf("b got %v, want ErrRemoteLoad", err)
		}
	})
}

func TestNegativeCaching(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{NegativeTTL: time.Minute})
		var calls atomic.Int64
		notFound := func(context.Context) ([]byte, error) {
			calls.Add(1)
			return nil, fmt.Errorf("user 7: %w", ErrNotFound)
		}
		for range 3 {
			if _, err := c.GetOrSet(ctx, "u7", time.Minute, notFound); !errors.Is(err, ErrNotFound) {
				t.Fatalf("GetOrSet = %v, want ErrNotFound", err)
			}
		}
		if calls.Load() != 1 {
			t.Fatalf("loader called %d times, want 1 (the marker is cached)", calls.Load())
		}
		if pttl := tp.rdb.PTTL(ctx, c.key("u7")).Val(); pttl <= 0 || pttl > time.Minute {
			t.Fatalf("marker TTL %v", pttl)
		}
		if _, ok, err := c.Get(ctx, "u7"); ok || err != nil {
			t.Fatalf("Get of a not-found marker = %v, %v; want a miss", ok, err)
		}
		// Without NegativeTTL nothing is cached.
		d := newCache(t, tp.rdb, Options{})
		for range 2 {
			if _, err := d.GetOrSet(ctx, "u8", time.Minute, notFound); !errors.Is(err, ErrNotFound) {
				t.Fatal(err)
			}
		}
		if calls.Load() != 3 {
			t.Fatalf("loader calls = %d, want 3", calls.Load())
		}
	})
}

func TestStaleWhileRevalidate(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{StaleWhileRevalidate: time.Minute})
		var calls atomic.Int64
		load := countingLoader(&calls, 0)
		if v, err := c.GetOrSet(ctx, "k", 50*time.Millisecond, load); err != nil || string(v) != "value-1" {
			t.Fatalf("first = %q, %v", v, err)
		}
		time.Sleep(80 * time.Millisecond) // past the soft TTL, inside the stale window
		if v, err := c.GetOrSet(ctx, "k", time.Minute, load); err != nil || string(v) != "value-1" {
			t.Fatalf("stale read = %q, %v; want the stale value-1", v, err)
		}
		if _, ok, _ := c.Get(ctx, "k"); ok && calls.Load() == 1 {
			t.Fatal("Get returned a stale value as a hit")
		}
		waitFor(t, "the background refresh", func() bool {
			v, ok, _ := c.Get(ctx, "k")
			return ok && string(v) == "value-2"
		})
		if st := c.LocalStats(); st.StaleServed != 1 || st.Loads != 2 {
			t.Fatalf("counters %+v", st)
		}
	})
}

func TestStaleIfError(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{StaleIfError: time.Minute})
		if _, err := c.GetOrSet(ctx, "k", 50*time.Millisecond, func(context.Context) ([]byte, error) { return []byte("old"), nil }); err != nil {
			t.Fatal(err)
		}
		time.Sleep(80 * time.Millisecond)
		v, err := c.GetOrSet(ctx, "k", time.Minute, func(context.Context) ([]byte, error) { return nil, errors.New("db down") })
		if err != nil || string(v) != "old" {
			t.Fatalf("GetOrSet with a failing loader = %q, %v; want the stale value", v, err)
		}
		v, err = c.GetOrSet(ctx, "k", time.Minute, func(context.Context) ([]byte, error) { return []byte("new"), nil })
		if err != nil || string(v) != "new" {
			t.Fatalf("after recovery = %q, %v", v, err)
		}
		if st := c.LocalStats(); st.StaleServed != 1 || st.LoaderErrors != 1 {
			t.Fatalf("counters %+v", st)
		}
	})
}

func TestCloseWaitsForBackgroundWork(t *testing.T) {
	ctx := ctxT(t)
	forEachTopology(t, func(t *testing.T, tp topo) {
		_ = tp.rdb.Ping(ctx).Err()
		ignore := goleak.IgnoreCurrent()
		c, err := New(tp.rdb, Options{Prefix: strings.TrimSuffix(t.Name(), "/"), StaleWhileRevalidate: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetOrSet(ctx, "k", 20*time.Millisecond, func(context.Context) ([]byte, error) { return []byte("v"), nil }); err != nil {
			t.Fatal(err)
		}
		time.Sleep(40 * time.Millisecond)
		started := make(chan struct{})
		// A stale read starts a refresh whose loader blocks until Close
		// cancels its context.
		if _, err := c.GetOrSet(ctx, "k", time.Minute, func(ctx context.Context) ([]byte, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		}); err != nil {
			t.Fatal(err)
		}
		<-started
		// Also a waiter subscribed to lease events.
		if err := c.subscribe(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal("second Close:", err)
		}
		if _, err := c.GetOrSet(ctx, "other", time.Minute, func(context.Context) ([]byte, error) { return nil, nil }); !errors.Is(err, ErrClosed) || !errors.Is(err, retry.ErrUnavailable) {
			t.Fatalf("GetOrSet after Close = %v, want ErrClosed matching retry.ErrUnavailable", err)
		}
		goleak.VerifyNone(t, ignore)
	})
}

// The multi-process stampede test: 4 processes × 200 goroutines ask for one
// missing key whose loader takes 100 ms; the loader runs once in total,
// counted with INCR on a counter key.
const helperEnv = "CACHE_STAMPEDE_HELPER"

func TestMultiProcessStampede(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{})
		prefix := c.opt.Prefix
		const procs = 4
		cmds := make([]*exec.Cmd, procs)
		outs := make([]*strings.Builder, procs)
		for i := range procs {
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
			cmd.Env = append(append(os.Environ(), tp.helperEnv()...),
				helperEnv+"=1",
				"CACHE_HELPER_PREFIX="+prefix,
				fmt.Sprintf("CACHE_HELPER_PROCS=%d", procs),
			)
			outs[i] = &strings.Builder{}
			cmd.Stdout, cmd.Stderr = outs[i], outs[i]
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			cmds[i] = cmd
		}
		for i, cmd := range cmds {
			if err := cmd.Wait(); err != nil {
				t.Fatalf("helper %d: %v\n%s", i, err, outs[i])
			}
			if !strings.Contains(outs[i].String(), "helper: 200 ok") {
				t.Fatalf("helper %d did not report 200 good answers:\n%s", i, outs[i])
			}
		}
		n, err := tp.rdb.Get(ctx, c.key("loader-calls")).Int()
		if err != nil || n != 1 {
			t.Fatalf("loader ran %d times across %d processes (%v), want 1", n, procs, err)
		}
	})
}

// TestHelperProcess is the body of one process of TestMultiProcessStampede.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("helper process for TestMultiProcessStampede")
	}
	rdb := helperClient(300)
	defer rdb.Close()
	c, err := New(rdb, Options{Prefix: os.Getenv("CACHE_HELPER_PREFIX")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Preload(ctx); err != nil {
		t.Fatal(err)
	}
	// Barrier: start together so every process misses.
	procs := os.Getenv("CACHE_HELPER_PROCS")
	ready := c.key("ready")
	if err := rdb.Incr(ctx, ready).Err(); err != nil {
		t.Fatal(err)
	}
	for rdb.Get(ctx, ready).Val() != procs {
		time.Sleep(5 * time.Millisecond)
	}
	counter := c.key("loader-calls")
	loader := func(ctx context.Context) ([]byte, error) {
		if err := rdb.Incr(ctx, counter).Err(); err != nil {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond)
		return []byte("the-value"), nil
	}
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			v, err := c.GetOrSet(ctx, "hot", time.Minute, loader)
			if err != nil {
				fmt.Println("helper error:", err)
				return
			}
			if string(v) == "the-value" {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	fmt.Printf("helper: %d ok\n", ok.Load())
}

func TestAutoPipelineReadsAndLeases(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{Pipelining: PipelineAlways})
		var calls atomic.Int64
		if _, err := c.GetOrSet(ctx, "warm", time.Minute, countingLoader(&calls, 0)); err != nil {
			t.Fatal(err)
		}
		tp.cnt.reset()
		v, err := c.GetOrSet(ctx, "k", time.Minute, countingLoader(&calls, 0))
		if err != nil || string(v) != "value-2" {
			t.Fatalf("GetOrSet = %q, %v", v, err)
		}
		if cmds, _, _, names := tp.cnt.snapshot(); cmds > 3 {
			t.Fatalf("GetOrSet miss through the auto-pipeliner: %d commands %v", cmds, names)
		}
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				if v, ok, err := c.Get(ctx, "k"); err != nil || !ok || string(v) != "value-2" {
					t.Errorf("Get %d = %q, %v, %v", i, v, ok, err)
				}
			})
		}
		wg.Wait()
		if got, err := c.MGet(ctx, []string{"k", "warm", "none"}); err != nil || len(got) != 2 {
			t.Fatalf("MGet = %q, %v", got, err)
		}
	})
}

// The loader's context ends after Options.LoadTimeout, and the lease is
// released so the next call loads again.
func TestLoadTimeoutBoundsTheLoader(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{LoadTimeout: 100 * time.Millisecond})
		var deadline time.Time
		_, err := c.GetOrSet(ctx, "slow", time.Minute, func(ctx context.Context) ([]byte, error) {
			deadline, _ = ctx.Deadline()
			<-ctx.Done()
			return nil, ctx.Err()
		})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("GetOrSet = %v, want DeadlineExceeded", err)
		}
		if left := time.Until(deadline); left > 0 {
			t.Fatalf("loader returned %v before its deadline", left)
		}
		if n, _ := tp.rdb.Exists(ctx, c.key("slow")).Result(); n != 0 {
			t.Fatal("lease not released after the timeout")
		}
		v, err := c.GetOrSet(ctx, "slow", time.Minute, func(context.Context) ([]byte, error) { return []byte("v"), nil })
		if err != nil || string(v) != "v" {
			t.Fatalf("next GetOrSet = %q, %v", v, err)
		}
	})
}

// TestMissCommands: an uncontended miss runs SET NX GET, then the commit —
// on Redis 7.0 the commit script's GET and SET, on a server whose SET takes
// IFEQ (Valkey 9) one SET … IFEQ and no script — and no PUBLISH, as nobody
// waits; a miss that another process (a second Cache) waits for publishes
// exactly one event, which wakes it (its poll is an hour). Counted by the
// server (INFO commandstats), scripts' inner commands included.
func TestMissCommands(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		testMissCommands(t, redistest.Start(t), map[string]int64{"set": 2, "evalsha": 1, "get": 1})
	})
	t.Run("valkey", func(t *testing.T) {
		testMissCommands(t, redistest.StartValkey(t), map[string]int64{"set": 2, "evalsha": 0, "get": 0})
	})
}

func testMissCommands(t *testing.T, srv *redistest.Server, want map[string]int64) {
	rdb := srv.Client(t)
	ctx := ctxT(t)
	a := newCache(t, rdb, Options{LeasePoll: time.Hour})
	b := newCache(t, rdb, Options{Prefix: a.opt.Prefix, LeasePoll: time.Hour})
	if err := a.Preload(ctx); err != nil {
		t.Fatal(err)
	}
	calls := func() map[string]int64 { t.Helper(); return commandCalls(t, rdb) }
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	if _, err := a.GetOrSet(ctx, "k", time.Minute, countingLoader(&n, 0)); err != nil {
		t.Fatal(err)
	}
	got := calls()
	for cmd, w := range want {
		if got[cmd] != w {
			t.Errorf("uncontended miss: %s ran %d times, want %d (all: %v)", cmd, got[cmd], w, got)
		}
	}
	if got["publish"] != 0 {
		t.Errorf("uncontended miss published %d events, want none", got["publish"])
	}
	if v, err := rdb.Get(ctx, a.key("k")).Bytes(); err != nil {
		t.Fatal(err)
	} else if e, err := a.decode(v, codecRaw); err != nil || e.h.Lease || !strings.HasPrefix(string(e.payload), "value-") {
		t.Fatalf("stored %q (%v), want the loaded value", v, err)
	}

	// Contended: b waits for a's load.
	started, finish := make(chan struct{}), make(chan struct{})
	aDone := make(chan error, 1)
	go func() {
		_, err := a.GetOrSet(ctx, "c", time.Minute, func(context.Context) ([]byte, error) {
			close(started)
			<-finish
			return []byte("from-a"), nil
		})
		aDone <- err
	}()
	<-started
	before := calls()["evalsha"]
	bDone := make(chan error, 1)
	go func() {
		v, err := b.GetOrSet(ctx, "c", time.Minute, countingLoader(&n, 0))
		if err == nil && string(v) != "from-a" {
			err = fmt.Errorf("b got %q", v)
		}
		bDone <- err
	}()
	// b has flagged the lease once its watch script ran.
	waitFor(t, "b to flag the lease", func() bool { return calls()["evalsha"] > before })
	close(finish)
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}
	if p := calls()["publish"]; p != 1 {
		t.Errorf("contended miss published %d events, want 1", p)
	}
}

// commandCalls returns the server's command counts (INFO commandstats) by
// command name.
func commandCalls(t *testing.T, rdb *redis.Client) map[string]int64 {
	t.Helper()
	return redistest.CommandStat(t, rdb, "calls")
}

// TestCommitLearnsIfEq: without Preload, the first commit of a Cache tries
// SET … IFEQ. Redis 7.0 refuses it with a syntax error, and that commit and
// every later one run the script: the value is stored either way, and the
// refused command is sent once in the Cache's life. Valkey takes it, and no
// commit runs the script.
func TestCommitLearnsIfEq(t *testing.T) {
	for _, tc := range []struct {
		name        string
		start       func(testing.TB, ...redistest.Option) *redistest.Server
		failed, sha int64 // refused SETs and script runs, over three misses
	}{
		// Three commits by script; the first EVALSHA meets NOSCRIPT (no
		// Preload) and is sent again as EVAL.
		{"redis", redistest.Start, 1, 4},
		{"valkey", redistest.StartValkey, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t)
			rdb := srv.Client(t)
			ctx := ctxT(t)
			c, err := New(rdb, Options{Prefix: redistest.Prefix(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			for _, k := range []string{"a", "b", "c"} {
				v, err := c.GetOrSet(ctx, k, time.Minute, func(context.Context) ([]byte, error) { return []byte("v-" + k), nil })
				if err != nil || string(v) != "v-"+k {
					t.Fatalf("GetOrSet(%s) = %q, %v", k, v, err)
				}
				if got, ok, err := c.Get(ctx, k); err != nil || !ok || string(got) != "v-"+k {
					t.Fatalf("Get(%s) = %q, %v, %v: the load was not stored", k, got, ok, err)
				}
			}
			calls := commandCalls(t, rdb)
			if sha := calls["evalsha"] + calls["eval"]; sha != tc.sha {
				t.Errorf("scripts ran %d times over three misses, want %d", sha, tc.sha)
			}
			if failed := redistest.CommandStat(t, rdb, "failed_calls")["set"]; failed != tc.failed {
				t.Errorf("%d SETs refused, want %d (all calls: %v)", failed, tc.failed, calls)
			}
		})
	}
}

// TestGetOrSetReadsFirstUnderLoad: while reads mostly hit and commands
// overlap, GetOrSet reads with a plain GET and takes a lease only for what
// that GET does not answer; a lone caller keeps the lease command (SET NX
// PX GET), whose miss is one round trip shorter. Either way every value is
// loaded once and stored, and a miss found by the GET still takes the
// lease.
func TestGetOrSetReadsFirstUnderLoad(t *testing.T) {
	rdb := redistest.Start(t).Client(t) // its command counts are the test's alone
	ctx := ctxT(t)
	c := newCache(t, rdb, Options{})
	const keys, workers, rounds = 100, 16, 64
	for i := range keys {
		if err := c.Set(ctx, strconv.Itoa(i), []byte("v"+strconv.Itoa(i)), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	var loads atomic.Int64
	load := func(k string) LoaderFunc[[]byte] {
		return func(context.Context) ([]byte, error) { loads.Add(1); return []byte("v" + k), nil }
	}
	// run does n GetOrSets of keys from first on, from workers goroutines
	// at once, and checks every answer.
	run := func(workers, n, first int) {
		t.Helper()
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := range n {
					k := strconv.Itoa(first + (w*n+i)%keys)
					if v, err := c.GetOrSet(ctx, k, time.Hour, load(k)); err != nil || string(v) != "v"+k {
						t.Errorf("GetOrSet(%s) = %q, %v", k, v, err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	resetStat := func() {
		if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}

	// Hits from 16 goroutines: once a sample shows them, GETs.
	resetStat()
	run(workers, rounds, 0)
	calls := commandCalls(t, rdb)
	if total := int64(workers * rounds); calls["get"] < total/2 || calls["get"]+calls["set"] != total {
		t.Errorf("%d hits from %d goroutines: %d GET, %d SET; want most of them GETs", total, workers, calls["get"], calls["set"])
	}
	// Hits from one goroutine: the lease command, after the lone commands
	// that stay on the overlapping path (warm).
	resetStat()
	run(1, 1024, 0)
	if calls := commandCalls(t, rdb); calls["set"] < 900 {
		t.Errorf("1024 hits from one goroutine: %d SET, %d GET; want the lease command", calls["set"], calls["get"])
	}
	// Misses under load, while the last sample still says hits: the GET
	// finds nothing, and the lease path loads each key once and stores it.
	run(workers, 1, 0) // overlapping again, read-first on
	resetStat()
	run(workers, keys/workers, 1000)
	if n := loads.Load(); n != keys/workers*workers {
		t.Errorf("%d loads of %d new keys", n, keys/workers*workers)
	}
	for i := range keys / workers * workers {
		k := strconv.Itoa(1000 + i)
		if v, ok, err := c.Get(ctx, k); err != nil || !ok || string(v) != "v"+k {
			t.Errorf("Get(%s) = %q, %v, %v: the load was not stored", k, v, ok, err)
		}
	}
	if calls := commandCalls(t, rdb); calls["get"] == 0 {
		t.Errorf("no GET in the misses right after hits: the read-first path was not tried (%v)", calls)
	}
}

// TestReadFirstAnswersAsTheLeaseDoes runs GetOrSet with its read-first path
// on (forced; PipelineAlways counts every command as overlapping) on every
// deployment: a hit is one GET and no loader; a missing key is loaded once
// and stored; a cached "not found" is ErrNotFound without the loader; a
// value past its TTL but within StaleWhileRevalidate is served and
// refreshed once.
func TestReadFirstAnswersAsTheLeaseDoes(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{Pipelining: PipelineAlways, NegativeTTL: time.Minute, StaleWhileRevalidate: time.Minute})
		c.st.win.readFirst.Store(true)
		var loads atomic.Int64
		load := func(v string, err error) LoaderFunc[[]byte] {
			return func(context.Context) ([]byte, error) { loads.Add(1); return []byte(v), err }
		}
		if err := c.Set(ctx, "hit", []byte("stored"), time.Minute); err != nil {
			t.Fatal(err)
		}
		tp.cnt.reset()
		if v, err := c.GetOrSet(ctx, "hit", time.Minute, load("loaded", nil)); err != nil || string(v) != "stored" {
			t.Fatalf("hit = %q, %v", v, err)
		}
		if _, _, _, names := tp.cnt.snapshot(); len(names) != 1 || names[0] != "get" || loads.Load() != 0 {
			t.Errorf("hit sent %v and called the loader %d times; want one get, no load", names, loads.Load())
		}
		if v, err := c.GetOrSet(ctx, "miss", time.Minute, load("loaded", nil)); err != nil || string(v) != "loaded" || loads.Load() != 1 {
			t.Fatalf("miss = %q, %v after %d loads", v, err, loads.Load())
		}
		if v, ok, err := c.Get(ctx, "miss"); err != nil || !ok || string(v) != "loaded" {
			t.Fatalf("Get after the miss = %q, %v, %v: not stored", v, ok, err)
		}
		for i := range 2 { // the first loads "not found", the second reads it
			if _, err := c.GetOrSet(ctx, "absent", time.Minute, load("", ErrNotFound)); !errors.Is(err, ErrNotFound) {
				t.Fatalf("absent, call %d: %v, want ErrNotFound", i+1, err)
			}
		}
		if loads.Load() != 2 {
			t.Fatalf("%d loads after the absent key twice, want 2", loads.Load())
		}
		if err := c.Set(ctx, "stale", []byte("old"), 20*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		if v, err := c.GetOrSet(ctx, "stale", time.Minute, load("new", nil)); err != nil || string(v) != "old" {
			t.Fatalf("stale within StaleWhileRevalidate = %q, %v; want the old value served", v, err)
		}
		waitFor(t, "the refresh", func() bool {
			v, ok, err := c.Get(ctx, "stale")
			return err == nil && ok && string(v) == "new"
		})
		if loads.Load() != 3 {
			t.Errorf("%d loads in all, want 3", loads.Load())
		}
	})
}
