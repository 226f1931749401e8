package bench

// Near-cache benchmarks: a Typed Get served from rediskit's near tier side by
// side with the in-process tiers of go-redis client-side caching (RESP3),
// go-redis/cache with TinyLFU, rueidis DoCache and rueidisaside, at 128
// goroutines, on the redis-server that TestMain starts; and the freshness of
// the near tier seen from another process. Run (figures in NEAR.md):
//
//	cd bench && go test -run '^$' -bench 'NearGetHit' -benchtime 2s -count 3
//	cd bench && go test -run '^$' -bench 'NearFreshness' -benchtime 1x

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	grcache "github.com/go-redis/cache/v9"
	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/rediskit/rediskit/cache"
)

const nearKeys = 1000

var nearValue = strings.Repeat("x", 100)

// runParallel runs op over g goroutines with testing's RunParallel (its
// counter is batched, so it does not become the bottleneck of a
// nanosecond-scale operation) and reports ops/s and the commands the server
// ran per op (0 when every read is served locally), with the CPU time.
func runParallel(b *testing.B, g int, op func(ctx context.Context, i int) error) {
	ctx := context.Background()
	b.SetParallelism(max(1, g/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	before := readUsage(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if err := op(ctx, i%nearKeys); err != nil {
				b.Error(err)
				return
			}
			i += 7
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	before.report(b)
}

func nearKeyNames(prefix string) []string {
	keys := make([]string, nearKeys)
	for i := range keys {
		keys[i] = prefix + strconv.Itoa(i)
	}
	return keys
}

func BenchmarkNearGetHit(b *testing.B) {
	const g = 128
	keys := nearKeyNames("k")

	b.Run(fmt.Sprintf("rediskit-near/g=%d", g), func(b *testing.B) {
		rdb, _ := newBenchClient(b)
		c, err := cache.New(rdb, cache.Options{Prefix: "bench-near", Near: &cache.NearOptions{}})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		typed := cache.NewTyped[string](c, nil)
		ctx := context.Background()
		for deadline := time.Now().Add(10 * time.Second); !c.NearStats().Serving; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatal("near tier not serving")
			}
		}
		for _, k := range keys {
			if err := typed.Set(ctx, k, nearValue, 0); err != nil {
				b.Fatal(err)
			}
			for range 2 { // the first read fills the near tier
				if _, _, err := typed.Get(ctx, k); err != nil {
					b.Fatal(err)
				}
			}
		}
		before := c.NearStats()
		runParallel(b, g, func(ctx context.Context, i int) error {
			v, ok, err := typed.Get(ctx, keys[i])
			if err != nil || !ok || len(v) != 100 {
				return fmt.Errorf("Get = %d bytes, %v, %v", len(v), ok, err)
			}
			return nil
		})
		after := c.NearStats()
		b.ReportMetric(float64(after.Hits-before.Hits)/float64(b.N), "local-hits/op")
	})

	b.Run(fmt.Sprintf("goredis-csc/g=%d", g), func(b *testing.B) {
		rdb := redis.NewClient(&redis.Options{Addr: benchAddr, PoolSize: 128, Protocol: 3,
			ClientSideCacheConfig: &redis.ClientSideCacheConfig{MaxEntries: 10 * nearKeys}})
		defer rdb.Close()
		ctx := context.Background()
		for _, k := range keys {
			if err := rdb.Set(ctx, "csc:"+k, nearValue, 0).Err(); err != nil {
				b.Fatal(err)
			}
			_ = rdb.Get(ctx, "csc:"+k).Err()
		}
		ck := nearKeyNames("csc:k")
		runParallel(b, g, func(ctx context.Context, i int) error {
			v, err := rdb.Get(ctx, ck[i]).Result()
			if err != nil || len(v) != 100 {
				return fmt.Errorf("Get = %d bytes, %v", len(v), err)
			}
			return nil
		})
	})

	b.Run(fmt.Sprintf("goredis-cache-tinylfu/g=%d", g), func(b *testing.B) {
		rdb, _ := newBenchClient(b)
		gc := grcache.New(&grcache.Options{Redis: rdb, LocalCache: grcache.NewTinyLFU(10*nearKeys, time.Hour)})
		ctx := context.Background()
		gk := nearKeyNames("grc:k")
		for _, k := range gk {
			if err := gc.Set(&grcache.Item{Ctx: ctx, Key: k, Value: nearValue, TTL: time.Hour}); err != nil {
				b.Fatal(err)
			}
		}
		runParallel(b, g, func(ctx context.Context, i int) error {
			var v string
			if err := gc.Get(ctx, gk[i], &v); err != nil || len(v) != 100 {
				return fmt.Errorf("Get = %d bytes, %v", len(v), err)
			}
			return nil
		})
	})

	b.Run(fmt.Sprintf("rueidis-docache/g=%d", g), func(b *testing.B) {
		rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{benchAddr}})
		if err != nil {
			b.Fatal(err)
		}
		defer rc.Close()
		ctx := context.Background()
		rk := nearKeyNames("rue:k")
		for _, k := range rk {
			if err := rc.Do(ctx, rc.B().Set().Key(k).Value(nearValue).Build()).Error(); err != nil {
				b.Fatal(err)
			}
			_ = rc.DoCache(ctx, rc.B().Get().Key(k).Cache(), time.Hour).Error()
		}
		runParallel(b, g, func(ctx context.Context, i int) error {
			v, err := rc.DoCache(ctx, rc.B().Get().Key(rk[i]).Cache(), time.Hour).ToString()
			if err != nil || len(v) != 100 {
				return fmt.Errorf("DoCache = %d bytes, %v", len(v), err)
			}
			return nil
		})
	})
	b.Run(fmt.Sprintf("rueidisaside/g=%d", g), func(b *testing.B) {
		ca := newAside(b)
		ctx := context.Background()
		ak := nearKeyNames("aside:k")
		fill := func(context.Context, string) (string, error) { return nearValue, nil }
		for _, k := range ak {
			for range 2 { // the first Get loads and stores, the second caches
				if _, err := ca.Get(ctx, time.Hour, k, fill); err != nil {
					b.Fatal(err)
				}
			}
		}
		never := func(context.Context, string) (string, error) { return "", fmt.Errorf("loader called on a hit") }
		runParallel(b, g, func(ctx context.Context, i int) error {
			v, err := ca.Get(ctx, time.Hour, ak[i], never)
			if err != nil || len(v) != 100 {
				return fmt.Errorf("Get = %d bytes, %v", len(v), err)
			}
			return nil
		})
	})
}

// BenchmarkNearFreshness measures, over NEAR_TRIALS trials (default 1000),
// how long after a write acknowledged by Redis another process's near tier
// stops serving the old value. The other process (this binary re-executed)
// reads the key in a loop through its near tier and reports every change of
// what it reads, with wall-clock timestamps of when that read began and
// ended; before each write it is serving the old value from its near tier.
// Two figures per trial, from the ack: "stale" until the first read that
// no longer served the old value began (how long the tier served it: the
// invalidation's delivery, within one reader pause), and the plain p50/p99
// until that read returned the new value (adding the reader's Redis round
// trip).
func BenchmarkNearFreshness(b *testing.B) {
	b.Run("process", func(b *testing.B) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestNearFreshnessHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), "NEAR_FRESHNESS_ADDR="+benchAddr)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		measureFreshness(b, stdout)
	})
	// The same reader as a goroutine of this process, on its own client and
	// Cache: what the near tier itself takes, without a second process
	// competing for the two cores.
	b.Run("in-process", func(b *testing.B) {
		r, w := io.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := freshnessReader(benchAddr, w); err != nil && !errors.Is(err, io.ErrClosedPipe) {
				b.Error(err)
			}
		}()
		defer func() { _ = r.Close(); <-done }()
		measureFreshness(b, r)
	})
}

// measureFreshness writes new values and times, from the reports of a
// reader on out, when the reader stops serving the old one.
func measureFreshness(b *testing.B, out io.Reader) {
	trials := 1000
	if s := os.Getenv("NEAR_TRIALS"); s != "" {
		trials, _ = strconv.Atoi(s)
	}
	rdb, _ := newBenchClient(b)
	c, err := cache.New(rdb, cache.Options{Prefix: "bench-fresh"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	typed := cache.NewTyped[string](c, nil)
	ctx := context.Background()
	if err := typed.Set(ctx, "fresh", "v0", 0); err != nil {
		b.Fatal(err)
	}
	stdout := out
	lines := bufio.NewScanner(stdout)
	// next returns the helper's next report: value, local, and when the
	// read that returned it began and ended (unix ns).
	next := func() (string, bool, int64, int64) {
		if !lines.Scan() {
			b.Fatalf("helper gone: %v", lines.Err())
		}
		f := strings.Fields(lines.Text())
		if len(f) != 4 {
			b.Fatalf("helper said %q", lines.Text())
		}
		began, _ := strconv.ParseInt(f[2], 10, 64)
		ended, _ := strconv.ParseInt(f[3], 10, 64)
		return f[0], f[1] == "local", began, ended
	}
	// stale: from the ack until the first read that did not serve the old
	// value began (0 when one had already begun: the tier had dropped the
	// old value by the ack). lat: until that read returned the new value,
	// which adds one Redis round trip of the reader.
	lat := make([]time.Duration, 0, trials)
	stale := make([]time.Duration, 0, trials)
	b.ResetTimer()
	for range b.N {
		lat = lat[:0]
		for i := range trials {
			old, nv := "v"+strconv.Itoa(i), "v"+strconv.Itoa(i+1)
			for {
				if v, local, _, _ := next(); v == old && local {
					break
				}
			}
			if err := typed.Set(ctx, "fresh", nv, 0); err != nil {
				b.Fatal(err)
			}
			acked := time.Now().UnixNano()
			for {
				v, _, began, ended := next()
				if v == nv {
					lat = append(lat, time.Duration(ended-acked))
					stale = append(stale, time.Duration(max(0, began-acked)))
					break
				}
			}
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	slices.Sort(stale)
	q := func(d []time.Duration, p float64) float64 {
		return float64(d[min(len(d)-1, int(p*float64(len(d))))].Microseconds())
	}
	b.ReportMetric(q(stale, 0.50), "stale-p50-µs")
	b.ReportMetric(q(stale, 0.99), "stale-p99-µs")
	b.ReportMetric(q(lat, 0.50), "p50-µs")
	b.ReportMetric(q(lat, 0.99), "p99-µs")
	b.ReportMetric(q(lat, 1), "max-µs")
}

// TestNearFreshnessHelper is the reader process of BenchmarkNearFreshness.
func TestNearFreshnessHelper(t *testing.T) {
	addr := os.Getenv("NEAR_FRESHNESS_ADDR")
	if addr == "" {
		t.Skip("helper process of BenchmarkNearFreshness")
	}
	if err := freshnessReader(addr, os.Stdout); err != nil {
		t.Fatal(err)
	}
}

// freshnessReader reads the key "fresh" in a tight loop through a near tier
// and writes every change of what it reads (value, local or redis, unix ns)
// to out, until a write to out fails.
func freshnessReader(addr string, w io.Writer) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	c, err := cache.New(rdb, cache.Options{Prefix: "bench-fresh", Near: &cache.NearOptions{}})
	if err != nil {
		return err
	}
	defer c.Close()
	typed := cache.NewTyped[string](c, nil)
	ctx := context.Background()
	out := bufio.NewWriter(w)
	last, lastLocal := "", false
	// pause between reads (NEAR_READER_PAUSE, a duration, "0" for none;
	// default 20µs). A reader that never pauses keeps one of the 2 cores
	// busy, and the writes, Redis and the invalidations then queue for the
	// other: that, not the near tier, was the 3–4 ms tail measured before.
	// The pause adds up to one sleep (tens of µs) to each figure.
	pause := 20 * time.Microsecond
	if s := os.Getenv("NEAR_READER_PAUSE"); s != "" {
		pause, _ = time.ParseDuration(s)
	}
	// The pauses are kernel sleeps on this goroutine's own thread, with the
	// thread's timer slack (50 µs by default) cut to 1 µs, so a pause lasts
	// about what it says.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_, _, _ = syscall.Syscall(syscall.SYS_PRCTL, 29 /* PR_SET_TIMERSLACK */, 1000, 0)
	for {
		if pause > 0 {
			// A kernel sleep, not time.Sleep: when this process has
			// nothing else to run, the Go scheduler may wait for a timer
			// in the network poller, with a granularity of 1 ms, and
			// every such wait showed up as a 1 ms freshness tail.
			ts := syscall.NsecToTimespec(int64(pause))
			_ = syscall.Nanosleep(&ts, nil)
		}
		hits := c.NearStats().Hits
		began := time.Now().UnixNano()
		v, _, err := typed.Get(ctx, "fresh")
		if err != nil {
			return err
		}
		local := c.NearStats().Hits > hits
		if v != last || local != lastLocal {
			last, lastLocal = v, local
			where := "redis"
			if local {
				where = "local"
			}
			fmt.Fprintln(out, v, where, began, time.Now().UnixNano())
			if err := out.Flush(); err != nil {
				return err // the benchmark is gone
			}
		}
	}
}
