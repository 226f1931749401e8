package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
)

// manyKeys returns n keys "<p><i>".
func manyKeys(p string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = p + strconv.Itoa(i)
	}
	return keys
}

// echoLoader returns a batch loader that records the keys of each call and
// returns "v-<key>" for every key but those skip says to leave out.
func echoLoader(calls *[][]string, mu *sync.Mutex, skip func(string) bool) BatchLoaderFunc[[]byte] {
	return func(ctx context.Context, keys []string) (map[string][]byte, error) {
		mu.Lock()
		*calls = append(*calls, slices.Clone(keys))
		mu.Unlock()
		m := make(map[string][]byte, len(keys))
		for _, k := range keys {
			if skip == nil || !skip(k) {
				m[k] = []byte("v-" + k)
			}
		}
		return m, nil
	}
}

// A cold batch is one loader call, one round trip per master for the reads
// and leases and one for the commits; a warm batch is one round trip per
// master and no load.
func TestGetOrSetManyRoundTrips(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c, keys, calls, loader := batchSetup(t, tp)
		got, err := c.GetOrSetMany(ctx, append(keys, keys[:10]...), time.Minute, loader) // duplicates asked once
		if err != nil {
			t.Fatal(err)
		}
		if len(*calls) != 1 || len((*calls)[0]) != 100 {
			t.Fatalf("loader calls %d (first with %d keys), want 1 with 100", len(*calls), len((*calls)[0]))
		}
		checkAll(t, got, keys)
		cmds, trips, perNode, names := tp.cnt.snapshot()
		commits := 100
		if c.grouped && tp.name != "valkey" { // two group calls: 64 keys, then 36
			commits = 2
		}
		if cmds != 100+commits {
			t.Fatalf("cold batch: %d commands (%v), want 100 SET NX GET + %d commits", cmds, names, commits)
		}
		checkTrips(t, tp, "cold GetOrSetMany", trips, perNode, 2)
		if tp.name == "valkey" { // SET … IFEQ commits: no script at all
			for _, n := range names {
				if n != "set" {
					t.Fatalf("cold batch on Valkey sent %q (all: %v), want only SETs", n, names)
				}
			}
		}

		tp.cnt.reset()
		got, err = c.GetOrSetMany(ctx, keys, time.Minute, loader)
		if err != nil {
			t.Fatal(err)
		}
		if len(*calls) != 1 {
			t.Fatalf("warm batch called the loader: %v", (*calls)[1:])
		}
		checkAll(t, got, keys)
		cmds, trips, perNode, _ = tp.cnt.snapshot()
		if cmds != 100 {
			t.Fatalf("warm batch: %d commands, want 100", cmds)
		}
		checkTrips(t, tp, "warm GetOrSetMany", trips, perNode, 1)
		st, err := c.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Hits != 100 || st.Misses != 3+100 || st.Loads != 1 { // 3: the warm-up MGet
			t.Fatalf("stats hits %d misses %d loads %d, want 100 103 1", st.Hits, st.Misses, st.Loads)
		}
	})
}

func checkAll(t *testing.T, got map[string][]byte, keys []string) {
	t.Helper()
	if len(got) != len(keys) {
		t.Fatalf("%d values, want %d", len(got), len(keys))
	}
	for _, k := range keys {
		if string(got[k]) != "v-"+k {
			t.Fatalf("[%q] = %q, want %q", k, got[k], "v-"+k)
		}
	}
}

// checkTrips asserts want round trips per master (cluster) or in total.
func checkTrips(t *testing.T, tp topo, op string, trips int, perNode map[string]int, want int) {
	t.Helper()
	if !tp.cluster {
		if trips != want {
			t.Fatalf("%s: %d round trips, want %d", op, trips, want)
		}
		return
	}
	if len(perNode) != tp.masters {
		t.Fatalf("%s: round trips per node %v, want all %d masters", op, perNode, tp.masters)
	}
	for addr, n := range perNode {
		if n != want {
			t.Fatalf("%s: %d round trips to %s (%v), want %d per master", op, n, addr, perNode, want)
		}
	}
}

// Keys a loader leaves out are absent from the answer; with NegativeTTL
// they are cached as "not found", without it they are asked again.
func TestGetOrSetManyPartialResults(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		for _, neg := range []time.Duration{0, time.Minute} {
			t.Run(fmt.Sprintf("NegativeTTL=%v", neg), func(t *testing.T) {
				ctx := ctxT(t)
				c := newCache(t, tp.rdb, Options{NegativeTTL: neg})
				keys := manyKeys("p", 20)
				odd := func(k string) bool { n, _ := strconv.Atoi(k[1:]); return n%2 == 1 }
				var calls [][]string
				var mu sync.Mutex
				loader := echoLoader(&calls, &mu, odd)
				for range 2 {
					got, err := c.GetOrSetMany(ctx, keys, time.Minute, loader)
					if err != nil {
						t.Fatal(err)
					}
					if len(got) != 10 {
						t.Fatalf("%d values, want the 10 even keys", len(got))
					}
					for k, v := range got {
						if odd(k) || string(v) != "v-"+k {
							t.Fatalf("[%q] = %q", k, v)
						}
					}
				}
				if neg > 0 {
					if len(calls) != 1 {
						t.Fatalf("loader calls %v, want 1: not found is cached", calls)
					}
				} else if len(calls) != 2 || len(calls[1]) != 10 || !odd(calls[1][0]) {
					t.Fatalf("loader calls %v, want a second with the 10 odd keys", calls)
				}
				// Every lease was settled: nothing but values (and negative
				// entries) is left.
				for _, k := range keys {
					v, err := tp.rdb.Get(ctx, c.key(k)).Bytes()
					if errors.Is(err, redis.Nil) {
						if !odd(k) || neg > 0 {
							t.Fatalf("%q missing", k)
						}
						continue
					}
					if e, derr := c.decode(v, codecRaw); derr != nil || e.h.Lease {
						t.Fatalf("%q holds a lease or garbage (%v)", k, derr)
					}
				}
			})
		}
	})
}

// A loader error or panic fails every key of its call in a *BatchError and
// releases their leases; hits in the same batch are still answered.
func TestGetOrSetManyLoaderFailure(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{})
		if err := c.Set(ctx, "hit", []byte("v-hit"), time.Minute); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		keys := []string{"hit", "a", "b", "c"}
		for _, fail := range []BatchLoaderFunc[[]byte]{
			func(context.Context, []string) (map[string][]byte, error) { return nil, boom },
			func(context.Context, []string) (map[string][]byte, error) { panic("kaboom") },
		} {
			got, err := c.GetOrSetMany(ctx, keys, time.Minute, fail)
			var be *BatchError
			if !errors.As(err, &be) || len(be.Errs) != 3 || be.Op != "getorsetmany" {
				t.Fatalf("err = %v, want a *BatchError for a, b, c", err)
			}
			var pe *PanicError
			if !errors.Is(err, boom) && !errors.As(err, &pe) {
				t.Fatalf("err = %v, want the loader's error or a *PanicError", err)
			}
			if len(got) != 1 || string(got["hit"]) != "v-hit" {
				t.Fatalf("got %q, want the hit alone", got)
			}
		}
		// The leases were released: the next call loads at once.
		var calls [][]string
		var mu sync.Mutex
		got, err := c.GetOrSetMany(ctx, keys, time.Minute, echoLoader(&calls, &mu, nil))
		if err != nil || len(got) != 4 || len(calls) != 1 || len(calls[0]) != 3 {
			t.Fatalf("after failures: %q, %v, calls %v", got, err, calls)
		}
	})
}

// A key whose lease another process holds is waited for, not loaded: its
// value is the other load's.
func TestGetOrSetManyWaitsForAnotherLoad(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{})
		other := newCache(t, tp.client(t), Options{Prefix: c.opt.Prefix}) // another process
		started, finish := make(chan struct{}), make(chan struct{})
		done := make(chan error, 1)
		go func() {
			_, err := other.GetOrSet(ctx, "slow", time.Minute, func(context.Context) ([]byte, error) {
				close(started)
				<-finish
				return []byte("from-other"), nil
			})
			done <- err
		}()
		<-started
		var calls [][]string
		var mu sync.Mutex
		res := make(chan map[string][]byte, 1)
		go func() {
			got, err := c.GetOrSetMany(ctx, []string{"slow", "x", "y"}, time.Minute, echoLoader(&calls, &mu, nil))
			if err != nil {
				t.Error(err)
			}
			res <- got
		}()
		// The batch loads x and y and waits for slow.
		waitFor(t, "the batch's load", func() bool { mu.Lock(); defer mu.Unlock(); return len(calls) == 1 })
		close(finish)
		got := <-res
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if string(got["slow"]) != "from-other" || string(got["x"]) != "v-x" || string(got["y"]) != "v-y" {
			t.Fatalf("got %q", got)
		}
		if len(calls) != 1 || slices.Contains(calls[0], "slow") {
			t.Fatalf("loader calls %v, want one without slow", calls)
		}
	})
}

func TestTypedGetOrSetMany(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		for _, near := range []bool{false, true} {
			t.Run(fmt.Sprintf("near=%v", near), func(t *testing.T) {
				ctx := ctxT(t)
				opt := Options{}
				if near {
					opt.Near = &NearOptions{}
				}
				c := newCache(t, tp.rdb, opt)
				ty := NewTyped[int](c, nil)
				var loads atomic.Int64
				loader := func(ctx context.Context, keys []string) (map[string]int, error) {
					loads.Add(1)
					m := make(map[string]int)
					for _, k := range keys {
						n, _ := strconv.Atoi(k[1:])
						if n != 3 {
							m[k] = n * n
						}
					}
					return m, nil
				}
				keys := manyKeys("t", 10)
				// A corrupt stored value is deleted and reloaded.
				if err := tp.rdb.Set(ctx, c.key("t5"), "garbage", time.Minute).Err(); err != nil {
					t.Fatal(err)
				}
				for range 2 {
					got, err := ty.GetOrSetMany(ctx, keys, time.Minute, loader)
					if err != nil {
						t.Fatal(err)
					}
					if len(got) != 9 {
						t.Fatalf("got %v, want 9 values", got)
					}
					for k, v := range got {
						n, _ := strconv.Atoi(k[1:])
						if v != n*n {
							t.Fatalf("[%q] = %d", k, v)
						}
					}
				}
				// The corrupt t5 is dropped and loaded alone, as GetOrSet
				// would (its lease step found no lease to take); the second
				// call asks t3 again.
				if n := loads.Load(); n != 3 {
					t.Fatalf("loader ran %d times, want 3", n)
				}
			})
		}
	})
}

// The multi-process batch stampede: 4 processes × 50 goroutines each ask
// an overlapping batch of 100 of 296 missing keys; every key is loaded once
// in total (an INCR per key counts the loads) and every caller gets every
// value.
const manyHelperEnv = "CACHE_MANY_HELPER"

func TestMultiProcessGetOrSetMany(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{})
		const procs = 4
		cmds := make([]*exec.Cmd, procs)
		outs := make([]*strings.Builder, procs)
		for i := range procs {
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestManyHelperProcess$", "-test.count=1")
			cmd.Env = append(append(os.Environ(), tp.helperEnv()...),
				helperEnv+"=1", manyHelperEnv+"=1",
				"CACHE_HELPER_PREFIX="+c.opt.Prefix,
				fmt.Sprintf("CACHE_HELPER_PROCS=%d", procs))
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
			if !strings.Contains(outs[i].String(), "helper: 50 ok") {
				t.Fatalf("helper %d did not report 50 complete answers:\n%s", i, outs[i])
			}
		}
		for _, k := range manyKeys("m", manyKeySpace) {
			n, err := tp.rdb.Get(ctx, c.key("loads:"+k)).Int()
			if err != nil || n != 1 {
				t.Fatalf("%q loaded %d times across %d processes (%v), want 1", k, n, procs, err)
			}
		}
	})
}

const manyKeySpace = 49*4 + 100 // goroutine g asks keys 4g .. 4g+99

// TestManyHelperProcess is the body of one process of
// TestMultiProcessGetOrSetMany.
func TestManyHelperProcess(t *testing.T) {
	if os.Getenv(manyHelperEnv) == "" {
		t.Skip("helper process for TestMultiProcessGetOrSetMany")
	}
	rdb := helperClient(100)
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
	procs := os.Getenv("CACHE_HELPER_PROCS")
	ready := c.key("ready")
	if err := rdb.Incr(ctx, ready).Err(); err != nil {
		t.Fatal(err)
	}
	for rdb.Get(ctx, ready).Val() != procs {
		time.Sleep(5 * time.Millisecond)
	}
	loader := func(ctx context.Context, keys []string) (map[string][]byte, error) {
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				p.Incr(ctx, c.key("loads:"+k))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
		m := make(map[string][]byte, len(keys))
		for _, k := range keys {
			m[k] = []byte("v-" + k)
		}
		return m, nil
	}
	all := manyKeys("m", manyKeySpace)
	var ok atomic.Int64
	var wg sync.WaitGroup
	for g := range 50 {
		wg.Go(func() {
			keys := all[4*g : 4*g+100]
			got, err := c.GetOrSetMany(ctx, keys, time.Minute, loader)
			if err != nil {
				fmt.Println("helper error:", err)
				return
			}
			for _, k := range keys {
				if string(got[k]) != "v-"+k {
					fmt.Printf("helper: [%q] = %q\n", k, got[k])
					return
				}
			}
			ok.Add(1)
		})
	}
	wg.Wait()
	fmt.Printf("helper: %d ok\n", ok.Load())
}

// BenchmarkGetOrSetMany compares one GetOrSetMany of 100 keys with 100
// GetOrSet calls, on hits and on misses (fresh keys each time), on a
// standalone server, reporting commands and round trips per 100 keys. Run:
//
//	go test -run '^$' -bench GetOrSetMany -benchmem ./cache/
func BenchmarkGetOrSetMany(b *testing.B) {
	srvC := func(b *testing.B) (*Cache, *counter) {
		srv := redistest.Shared(b)
		cnt := &counter{trips: map[string]int{}}
		rdb := srv.Client(b)
		rdb.AddHook(nodeHook{c: cnt, addr: srv.Addr})
		return newCache(b, rdb, Options{}), cnt
	}
	batch := func(ctx context.Context, keys []string) (map[string][]byte, error) {
		m := make(map[string][]byte, len(keys))
		for _, k := range keys {
			m[k] = []byte(k)
		}
		return m, nil
	}
	for _, miss := range []bool{false, true} {
		for _, many := range []bool{true, false} {
			name := map[bool]string{false: "hit", true: "miss"}[miss] + "/" + map[bool]string{true: "GetOrSetMany", false: "100xGetOrSet"}[many]
			b.Run(name, func(b *testing.B) {
				c, cnt := srvC(b)
				ctx := context.Background()
				keys := manyKeys("b", 100)
				if !miss {
					if _, err := c.GetOrSetMany(ctx, keys, time.Hour, batch); err != nil {
						b.Fatal(err)
					}
				}
				cnt.reset()
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					if miss {
						keys = manyKeys("b"+strconv.Itoa(n)+":", 100)
						n++
					}
					if many {
						got, err := c.GetOrSetMany(ctx, keys, time.Hour, batch)
						if err != nil || len(got) != 100 {
							b.Fatalf("%d values, %v", len(got), err)
						}
						continue
					}
					for _, k := range keys {
						if _, err := c.GetOrSet(ctx, k, time.Hour, func(context.Context) ([]byte, error) { return []byte(k), nil }); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.StopTimer()
				cmds, trips, _, _ := cnt.snapshot()
				b.ReportMetric(float64(cmds)/float64(b.N), "cmds/op")
				b.ReportMetric(float64(trips)/float64(b.N), "roundtrips/op")
			})
		}
	}
}

// batchSetup returns a cache with the cluster client's slot map and command
// info warmed (an MGet of 3 of its 100 keys), the keys, the echo loader
// and the batches it was called with, the command counter reset.
func batchSetup(t *testing.T, tp topo) (*Cache, []string, *[][]string, BatchLoaderFunc[[]byte]) {
	c := newCache(t, tp.rdb, Options{})
	keys := manyKeys("k", 100)
	if _, err := c.MGet(ctxT(t), keys[:3]); err != nil {
		t.Fatal(err)
	}
	calls := new([][]string)
	loader := echoLoader(calls, new(sync.Mutex), nil)
	tp.cnt.reset()
	return c, keys, calls, loader
}
