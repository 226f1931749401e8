package bench

// Cache benchmarks: rediskit/cache side by side with go-redis/cache (no local
// tier), eko/gocache (lib/v4 + store/redis/v4) and bare go-redis GET (pooled
// and auto-pipelined), on the one redis-server that TestMain starts, with
// 100-byte values, at 1, 16 and 128 goroutines. Run:
//
//	cd bench && go test -run '^$' -bench 'Cache' -benchtime 3s -count 3
//
// Each reports ops/s and Redis commands per operation (counted by a go-redis
// hook); Get benchmarks report allocations. rueidisaside is not here: its
// module could not be fetched from the Go module proxy.
// MGet on a cluster is measured in the cache package itself
// (cd cache && go test -run '^$' -bench MGet100), where the test harness
// starts a 3-master cluster.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gocache "github.com/eko/gocache/lib/v4/cache"
	gocacheredis "github.com/eko/gocache/store/redis/v4"
	grcache "github.com/go-redis/cache/v9"
	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/cache"
)

var cacheConcurrency = []int{1, 16, 128}

var value100 = []byte("0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789")

// newBenchClient returns a fresh client with a command counter; the pool is
// sized for 128 goroutines so no library waits on it.
func newBenchClient(b *testing.B) (*redis.Client, *cmdCounter) {
	rdb := redis.NewClient(&redis.Options{Addr: benchAddr, PoolSize: 128})
	b.Cleanup(func() { _ = rdb.Close() })
	cnt := &cmdCounter{}
	rdb.AddHook(cnt)
	return rdb, cnt
}

// runConcurrent runs b.N calls of op over g goroutines and reports ops/s
// and commands per op.
func runConcurrent(b *testing.B, g int, cnt *cmdCounter, op func(ctx context.Context, i int) error) {
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ReportAllocs()
	cnt.n.Store(0)
	b.ResetTimer()
	for range g {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > b.N {
					return
				}
				if err := op(ctx, i); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(float64(cnt.n.Load())/float64(b.N), "cmds/op")
}

const hitKeys = 1000

func BenchmarkCacheGetHit(b *testing.B) {
	ctx := context.Background()
	libs := []struct {
		name  string
		setup func(b *testing.B) (*cmdCounter, func(ctx context.Context, i int) error)
	}{
		{"rediskit", func(b *testing.B) (*cmdCounter, func(context.Context, int) error) {
			return rediskitGet(b, false)
		}},
		{"rediskit-autopipeline", func(b *testing.B) (*cmdCounter, func(context.Context, int) error) {
			return rediskitGet(b, true)
		}},
		{"go-redis-cache", func(b *testing.B) (*cmdCounter, func(context.Context, int) error) {
			rdb, cnt := newBenchClient(b)
			c := grcache.New(&grcache.Options{Redis: rdb})
			for i := range hitKeys {
				if err := c.Set(&grcache.Item{Ctx: ctx, Key: "grc:" + strconv.Itoa(i), Value: value100, TTL: time.Hour}); err != nil {
					b.Fatal(err)
				}
			}
			return cnt, func(ctx context.Context, i int) error {
				var v []byte
				return c.Get(ctx, "grc:"+strconv.Itoa(i%hitKeys), &v)
			}
		}},
		{"eko-gocache", func(b *testing.B) (*cmdCounter, func(context.Context, int) error) {
			rdb, cnt := newBenchClient(b)
			c := gocache.New[string](gocacheredis.NewRedis(rdb))
			for i := range hitKeys {
				if err := c.Set(ctx, "eko:"+strconv.Itoa(i), string(value100)); err != nil {
					b.Fatal(err)
				}
			}
			return cnt, func(ctx context.Context, i int) error {
				_, err := c.Get(ctx, "eko:"+strconv.Itoa(i%hitKeys))
				return err
			}
		}},
		{"go-redis-GET", func(b *testing.B) (*cmdCounter, func(context.Context, int) error) {
			rdb, cnt := newBenchClient(b)
			fillBare(b, rdb, "bare:")
			return cnt, func(ctx context.Context, i int) error {
				return rdb.Get(ctx, "bare:"+strconv.Itoa(i%hitKeys)).Err()
			}
		}},
		{"go-redis-autopipeline-GET", func(b *testing.B) (*cmdCounter, func(context.Context, int) error) {
			rdb, cnt := newBenchClient(b)
			fillBare(b, rdb, "bare:")
			ap, err := rdb.AutoPipeline()
			if err != nil {
				b.Fatal(err)
			}
			return cnt, func(ctx context.Context, i int) error {
				return ap.Get(ctx, "bare:"+strconv.Itoa(i%hitKeys)).Err()
			}
		}},
	}
	for _, g := range cacheConcurrency {
		for _, lib := range libs {
			b.Run(fmt.Sprintf("g=%d/%s", g, lib.name), func(b *testing.B) {
				cnt, op := lib.setup(b)
				runConcurrent(b, g, cnt, op)
			})
		}
	}
}

func fillBare(b *testing.B, rdb *redis.Client, prefix string) {
	_, err := rdb.Pipelined(context.Background(), func(p redis.Pipeliner) error {
		for i := range hitKeys {
			p.Set(context.Background(), prefix+strconv.Itoa(i), value100, time.Hour)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

func rediskitGet(b *testing.B, autoPipeline bool) (*cmdCounter, func(context.Context, int) error) {
	rdb, cnt := newBenchClient(b)
	c, err := cache.New(rdb, cache.Options{Prefix: "rk", AutoPipeline: autoPipeline})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	items := make(map[string][]byte, hitKeys)
	for i := range hitKeys {
		items[strconv.Itoa(i)] = value100
	}
	if err := c.MSet(context.Background(), items, time.Hour); err != nil {
		b.Fatal(err)
	}
	return cnt, func(ctx context.Context, i int) error {
		_, ok, err := c.Get(ctx, strconv.Itoa(i%hitKeys))
		if err == nil && !ok {
			err = fmt.Errorf("miss on key %d", i%hitKeys)
		}
		return err
	}
}

var missRun atomic.Int64

func BenchmarkCacheGetOrSetMiss(b *testing.B) {
	load := func(ctx context.Context) ([]byte, error) { return value100, nil }
	libs := []struct {
		name  string
		setup func(b *testing.B) (*cmdCounter, func(ctx context.Context, key string) error)
	}{
		{"rediskit", func(b *testing.B) (*cmdCounter, func(context.Context, string) error) {
			return rediskitMiss(b, false, load)
		}},
		{"rediskit-autopipeline", func(b *testing.B) (*cmdCounter, func(context.Context, string) error) {
			return rediskitMiss(b, true, load)
		}},
		{"go-redis-cache-Once", func(b *testing.B) (*cmdCounter, func(context.Context, string) error) {
			rdb, cnt := newBenchClient(b)
			c := grcache.New(&grcache.Options{Redis: rdb})
			return cnt, func(ctx context.Context, key string) error {
				var v []byte
				return c.Once(&grcache.Item{Ctx: ctx, Key: key, Value: &v, TTL: time.Minute,
					Do: func(*grcache.Item) (any, error) { return value100, nil }})
			}
		}},
	}
	for _, g := range cacheConcurrency {
		for _, lib := range libs {
			b.Run(fmt.Sprintf("g=%d/%s", g, lib.name), func(b *testing.B) {
				// Every library starts on an empty server: the keys earlier
				// runs left (and their expiry) must not slow the next one.
				flushBench(b)
				cnt, op := lib.setup(b)
				run := strconv.FormatInt(missRun.Add(1), 10)
				runConcurrent(b, g, cnt, func(ctx context.Context, i int) error {
					return op(ctx, "miss:"+run+":"+strconv.Itoa(i))
				})
			})
		}
	}
}

func flushBench(b *testing.B) {
	rdb := redis.NewClient(&redis.Options{Addr: benchAddr})
	defer rdb.Close()
	if err := rdb.FlushAll(context.Background()).Err(); err != nil {
		b.Fatal(err)
	}
}

func rediskitMiss(b *testing.B, autoPipeline bool, load cache.LoaderFunc[[]byte]) (*cmdCounter, func(context.Context, string) error) {
	rdb, cnt := newBenchClient(b)
	c, err := cache.New(rdb, cache.Options{Prefix: "rkmiss", AutoPipeline: autoPipeline})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	if err := c.Preload(context.Background()); err != nil {
		b.Fatal(err)
	}
	return cnt, func(ctx context.Context, key string) error {
		_, err := c.GetOrSet(ctx, key, time.Minute, load)
		return err
	}
}

// BenchmarkCacheGetOrSetHit is the steady state of cache-aside: GetOrSet of
// keys that are present, so the loader never runs. rediskit reads with the
// SET NX GET that would take the lease on a miss; go-redis/cache Once reads
// with GET.
func BenchmarkCacheGetOrSetHit(b *testing.B) {
	ctx := context.Background()
	never := func(ctx context.Context) ([]byte, error) { return nil, errors.New("loader called on a hit") }
	rediskit := func(autoPipeline bool) func(b *testing.B) (*cmdCounter, func(context.Context, int) error) {
		return func(b *testing.B) (*cmdCounter, func(context.Context, int) error) {
			rdb, cnt := newBenchClient(b)
			c, err := cache.New(rdb, cache.Options{Prefix: "rkgos", AutoPipeline: autoPipeline})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = c.Close() })
			for i := range hitKeys {
				if err := c.Set(ctx, strconv.Itoa(i), value100, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
			return cnt, func(ctx context.Context, i int) error {
				_, err := c.GetOrSet(ctx, strconv.Itoa(i%hitKeys), time.Hour, never)
				return err
			}
		}
	}
	libs := []struct {
		name  string
		setup func(b *testing.B) (*cmdCounter, func(ctx context.Context, i int) error)
	}{
		{"rediskit", rediskit(false)},
		{"rediskit-autopipeline", rediskit(true)},
		{"go-redis-cache-Once", func(b *testing.B) (*cmdCounter, func(context.Context, int) error) {
			rdb, cnt := newBenchClient(b)
			c := grcache.New(&grcache.Options{Redis: rdb})
			for i := range hitKeys {
				if err := c.Set(&grcache.Item{Ctx: ctx, Key: "grcos:" + strconv.Itoa(i), Value: value100, TTL: time.Hour}); err != nil {
					b.Fatal(err)
				}
			}
			return cnt, func(ctx context.Context, i int) error {
				var v []byte
				return c.Once(&grcache.Item{Ctx: ctx, Key: "grcos:" + strconv.Itoa(i%hitKeys), Value: &v, TTL: time.Hour,
					Do: func(*grcache.Item) (any, error) { return nil, errors.New("loader called on a hit") }})
			}
		}},
	}
	for _, g := range cacheConcurrency {
		for _, lib := range libs {
			b.Run(fmt.Sprintf("g=%d/%s", g, lib.name), func(b *testing.B) {
				cnt, op := lib.setup(b)
				runConcurrent(b, g, cnt, op)
			})
		}
	}
}

// BenchmarkCacheClearWhileGet clears CLEAR_KEYS keys (default 1,000,000)
// with Clear while 16 goroutines read other keys of the same server,
// and reports the readers' p50/p99 latency during the clear next to their
// p99 before it. One iteration is one clear: run with -benchtime 1x.
func BenchmarkCacheClearWhileGet(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("CLEAR_KEYS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	ctx := context.Background()
	rdb, _ := newBenchClient(b)
	victims, err := cache.New(rdb, cache.Options{Prefix: "clear-victims"})
	if err != nil {
		b.Fatal(err)
	}
	defer victims.Close()
	readers, err := cache.New(rdb, cache.Options{Prefix: "clear-readers"})
	if err != nil {
		b.Fatal(err)
	}
	defer readers.Close()
	items := map[string][]byte{}
	for i := range hitKeys {
		items[strconv.Itoa(i)] = value100
	}
	if err := readers.MSet(ctx, items, time.Hour); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for i := 0; i < n; i += 10_000 {
			batch := make(map[string][]byte, 10_000)
			for j := i; j < min(n, i+10_000); j++ {
				batch["v:"+strconv.Itoa(j)] = value100
			}
			if err := victims.MSet(ctx, batch, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
		base := readLatencies(ctx, readers, 16, func(int) bool { return false }, 20000)
		b.StartTimer()
		var done atomic.Bool
		var removed int64
		go func() {
			removed, err = victims.Clear(ctx, cache.Prefix("v:"), cache.ClearOptions{})
			done.Store(true)
		}()
		during := readLatencies(ctx, readers, 16, func(int) bool { return done.Load() }, -1)
		b.StopTimer()
		if err != nil || removed != int64(n) {
			b.Fatalf("cleared %d of %d: %v", removed, n, err)
		}
		b.ReportMetric(float64(base[len(base)*99/100].Microseconds()), "base-p99-µs")
		b.ReportMetric(float64(during[len(during)/2].Microseconds()), "clear-p50-µs")
		b.ReportMetric(float64(during[len(during)*99/100].Microseconds()), "clear-p99-µs")
		b.ReportMetric(float64(len(during)), "gets-during-clear")
		b.ReportMetric(float64(n), "keys-cleared")
	}
}

// readLatencies runs g readers until stop is true (or, with limit > 0, for
// limit reads in total) and returns their sorted latencies.
func readLatencies(ctx context.Context, c *cache.Cache, g int, stop func(int) bool, limit int) []time.Duration {
	var mu sync.Mutex
	var all []time.Duration
	var count atomic.Int64
	var wg sync.WaitGroup
	for w := range g {
		wg.Go(func() {
			var lat []time.Duration
			for i := w; ; i += g {
				if stop(i) || (limit > 0 && count.Add(1) > int64(limit)) {
					break
				}
				t0 := time.Now()
				_, _, _ = c.Get(ctx, strconv.Itoa(i%hitKeys))
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) == 0 {
		all = []time.Duration{0}
	}
	return all
}
