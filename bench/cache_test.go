package bench

// Cache benchmarks: rediskit/cache side by side with go-redis/cache (no local
// tier), eko/gocache (lib/v4 + store/redis/v4), bare go-redis GET, rueidis
// GET and rueidisaside, on the one redis-server that TestMain starts, with
// 100-byte values, at 1, 16 and 128 goroutines. Every row names the client
// it ran on: "pooled" is a go-redis client's connection pool,
// "autopipelined" that client's AutoPipeliner (rdb.AutoPipeline(), the same
// one rediskit's Pipelining uses), "adaptive" rediskit's default (pooled
// while one command is in flight, the AutoPipeliner above). rueidis always
// pipelines. Tables and commands: CACHE.md.
//
// Each reports ops/s, allocations and Redis commands per operation twice:
// cmds/op, the commands the client sent (a go-redis hook; not reported for
// rueidis, which has none), and srv-cmds/op, the commands the server ran
// (INFO total_commands_processed), which counts rueidis like the others and
// includes the commands a script runs. MGet on a cluster is measured in the
// cache package itself (cd cache && go test -run '^$' -bench MGet100), where
// the test harness starts a 3-master cluster.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gocache "github.com/eko/gocache/lib/v4/cache"
	gocacheredis "github.com/eko/gocache/store/redis/v4"
	grcache "github.com/go-redis/cache/v9"
	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	"github.com/redis/rueidis/rueidisaside"

	"github.com/rediskit/rediskit/bench/internal/rounds"
	"github.com/rediskit/rediskit/cache"
	"github.com/rediskit/rediskit/internal/pipeline"
)

var cacheConcurrency = []int{1, 16, 128}

var value100 = []byte("0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789")

// newBenchClient returns a fresh go-redis client with a command counter; the
// pool is sized for 128 goroutines so no library waits on it.
func newBenchClient(b *testing.B) (*redis.Client, *cmdCounter) {
	rdb := redis.NewClient(&redis.Options{Addr: benchAddr, PoolSize: 128, AutoPipelineOptions: benchAP})
	b.Cleanup(func() { _ = rdb.Close() })
	cnt := &cmdCounter{}
	rdb.AddHook(cnt)
	return rdb, cnt
}

// autoPipeliner returns rdb's AutoPipeliner: the one go-redis keeps per
// client, which rediskit's Pipelining uses too, with the settings rediskit
// asks for on a plain client (pipeline.Options), or benchAP's when set.
// Closing rdb stops it.
func autoPipeliner(b *testing.B, rdb *redis.Client) *redis.AutoPipeliner {
	opts := benchAP
	if opts == nil {
		opts = pipeline.Options()
	}
	ap, err := rdb.AutoPipelineWithOptions(opts)
	if err != nil {
		b.Fatal(err)
	}
	return ap
}

// onClient is a client mode of the go-redis based rows.
type onClient struct {
	name string
	pick func(b *testing.B, rdb *redis.Client) redis.UniversalClient
}

var goredisModes = []onClient{
	{"pooled", func(_ *testing.B, rdb *redis.Client) redis.UniversalClient { return rdb }},
	{"autopipelined", func(b *testing.B, rdb *redis.Client) redis.UniversalClient { return autoPipeliner(b, rdb) }},
}

var rediskitModes = []struct {
	name string
	mode cache.Pipelining
}{
	{"adaptive", cache.PipelineAdaptive}, // the default: cache.Options{}
	{"pooled", cache.PipelineOff},
	{"autopipelined", cache.PipelineAlways},
}

// statsClient reads the server's command counter on one connection of its
// own, opened on first use.
var statsClient = sync.OnceValue(func() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: benchAddr, PoolSize: 1})
})

// usage is what the server and this process have done so far: the
// commands the server ran and the CPU time each used.
type usage struct {
	cmds           int64
	srvCPU, cliCPU time.Duration
}

func readUsage(b *testing.B) usage {
	info, err := statsClient().Info(context.Background(), "stats", "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var u usage
	found := 0
	for line := range strings.Lines(info) {
		name, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch name {
		case "total_commands_processed":
			u.cmds, err = strconv.ParseInt(v, 10, 64)
		case "used_cpu_sys", "used_cpu_user":
			var sec float64
			sec, err = strconv.ParseFloat(v, 64)
			u.srvCPU += time.Duration(sec * float64(time.Second))
		default:
			continue
		}
		if err != nil {
			b.Fatal(err)
		}
		found++
	}
	if found != 3 {
		b.Fatalf("INFO stats cpu: found %d of total_commands_processed, used_cpu_sys, used_cpu_user", found)
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	u.cliCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return u
}

// report reports what happened since u, per op of b: the commands the
// server ran and the CPU time of the server and of this process (the
// benchmark's own goroutines included, the same for every row).
func (u usage) report(b *testing.B) {
	now := readUsage(b)
	n := float64(b.N)
	// -1: the INFO that read u is counted in the second reading.
	b.ReportMetric(float64(now.cmds-u.cmds-1)/n, "srv-cmds/op")
	b.ReportMetric(float64((now.srvCPU-u.srvCPU).Microseconds())/n, "srv-µs/op")
	b.ReportMetric(float64((now.cliCPU-u.cliCPU).Microseconds())/n, "cli-µs/op")
}

// runConcurrent runs b.N calls of op over g goroutines and reports ops/s,
// the commands sent per op (counted by cnt, if not nil), the commands the
// server ran per op and the CPU time per op of the server and of this
// process.
func runConcurrent(b *testing.B, g int, cnt *cmdCounter, op func(ctx context.Context, i int) error) {
	// A handler's context can be cancelled (net/http cancels it when the
	// client leaves) and has no deadline unless the handler sets one: the
	// context users pass.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ReportAllocs()
	if cnt != nil {
		cnt.n.Store(0)
	}
	before := readUsage(b)
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
	if cnt != nil {
		b.ReportMetric(float64(cnt.n.Load())/float64(b.N), "cmds/op")
	}
	before.report(b)
}

const hitKeys = 1000

// cacheRow is one library on one client: setup fills what it needs and
// returns the operation to time.
type cacheRow struct {
	name  string
	setup func(b *testing.B) (*cmdCounter, func(ctx context.Context, i int) error)
}

func BenchmarkCacheGetHit(b *testing.B) {
	for r := range rounds.N() {
		for _, g := range cacheConcurrency {
			for _, row := range rounds.InOrder(hitRows(), r) {
				b.Run(fmt.Sprintf("g=%d/%s", g, row.name), func(b *testing.B) { row.run(b, g) })
			}
		}
	}
}

// run measures the row at g goroutines.
func (row cacheRow) run(b *testing.B, g int) {
	cnt, op := row.setup(b)
	runConcurrent(b, g, cnt, op)
}

// hitRows are the rows of BenchmarkCacheGetHit: every library reads one of
// hitKeys stored keys.
func hitRows() []cacheRow {
	ctx := context.Background()
	var rows []cacheRow
	for _, m := range rediskitModes {
		rows = append(rows, cacheRow{"rediskit/" + m.name, func(b *testing.B) (*cmdCounter, func(context.Context, int) error) {
			return rediskitGet(b, m.mode)
		}})
	}
	for _, m := range goredisModes {
		rows = append(rows, cacheRow{"go-redis-cache/" + m.name, func(b *testing.B) (*cmdCounter, func(context.Context, int) error) {
			rdb, cnt := newBenchClient(b)
			// go-redis/cache's Options.Redis is an interface that the
			// AutoPipeliner satisfies (it is a redis.UniversalClient).
			c := grcache.New(&grcache.Options{Redis: m.pick(b, rdb)})
			for i := range hitKeys {
				if err := c.Set(&grcache.Item{Ctx: ctx, Key: "grc:" + strconv.Itoa(i), Value: value100, TTL: time.Hour}); err != nil {
					b.Fatal(err)
				}
			}
			return cnt, func(ctx context.Context, i int) error {
				var v []byte
				return c.Get(ctx, "grc:"+strconv.Itoa(i%hitKeys), &v)
			}
		}})
	}
	for _, m := range goredisModes {
		rows = append(rows, cacheRow{"eko-gocache/" + m.name, func(b *testing.B) (*cmdCounter, func(context.Context, int) error) {
			rdb, cnt := newBenchClient(b)
			// store/redis takes an interface too, satisfied the same way.
			c := gocache.New[string](gocacheredis.NewRedis(m.pick(b, rdb)))
			for i := range hitKeys {
				if err := c.Set(ctx, "eko:"+strconv.Itoa(i), string(value100)); err != nil {
					b.Fatal(err)
				}
			}
			return cnt, func(ctx context.Context, i int) error {
				_, err := c.Get(ctx, "eko:"+strconv.Itoa(i%hitKeys))
				return err
			}
		}})
	}
	for _, m := range goredisModes {
		rows = append(rows, cacheRow{"go-redis-GET/" + m.name, func(b *testing.B) (*cmdCounter, func(context.Context, int) error) {
			rdb, cnt := newBenchClient(b)
			fillBare(b, rdb, "bare:")
			c := m.pick(b, rdb)
			return cnt, func(ctx context.Context, i int) error {
				return c.Get(ctx, "bare:"+strconv.Itoa(i%hitKeys)).Err()
			}
		}})
	}
	rows = append(rows, cacheRow{"rueidis-GET/autopipelined", func(b *testing.B) (*cmdCounter, func(context.Context, int) error) {
		rdb, _ := newBenchClient(b)
		fillBare(b, rdb, "bare:")
		rc := newRueidis(b)
		return nil, func(ctx context.Context, i int) error {
			return rc.Do(ctx, rc.B().Get().Key("bare:"+strconv.Itoa(i%hitKeys)).Build()).Error()
		}
	}})
	return rows
}

// newRueidis returns a rueidis client with its defaults: it pipelines
// concurrent commands on a shared connection.
func newRueidis(b *testing.B) rueidis.Client {
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{benchAddr}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rc.Close)
	return rc
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

func newBenchCache(b *testing.B, prefix string, mode cache.Pipelining) (*cache.Cache, *cmdCounter) {
	rdb, cnt := newBenchClient(b)
	c, err := cache.New(rdb, cache.Options{Prefix: prefix, Pipelining: mode})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return c, cnt
}

func rediskitGet(b *testing.B, mode cache.Pipelining) (*cmdCounter, func(context.Context, int) error) {
	c, cnt := newBenchCache(b, "rk", mode)
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

// missRow is one library on one client for the miss benchmark: the
// operation gets a key nobody has read or written.
type missRow struct {
	name  string
	setup func(b *testing.B) (*cmdCounter, func(ctx context.Context, key string) error)
}

func BenchmarkCacheGetOrSetMiss(b *testing.B) {
	for r := range rounds.N() {
		for _, g := range cacheConcurrency {
			for _, row := range rounds.InOrder(missRows(), r) {
				b.Run(fmt.Sprintf("g=%d/%s", g, row.name), func(b *testing.B) { row.run(b, g) })
			}
		}
	}
}

// run measures the row at g goroutines. Every library starts on an empty
// server: the keys earlier runs left (and their expiry) must not slow the
// next one.
func (row missRow) run(b *testing.B, g int) {
	flushBench(b)
	cnt, op := row.setup(b)
	run := strconv.FormatInt(missRun.Add(1), 10)
	runConcurrent(b, g, cnt, func(ctx context.Context, i int) error {
		return op(ctx, "miss:"+run+":"+strconv.Itoa(i))
	})
}

// missRows are the rows of BenchmarkCacheGetOrSetMiss.
func missRows() []missRow {
	load := func(ctx context.Context) ([]byte, error) { return value100, nil }
	var rows []missRow
	for _, m := range rediskitModes {
		rows = append(rows, missRow{"rediskit/" + m.name, func(b *testing.B) (*cmdCounter, func(context.Context, string) error) {
			c, cnt := newBenchCache(b, "rkmiss", m.mode)
			if err := c.Preload(context.Background()); err != nil {
				b.Fatal(err)
			}
			return cnt, func(ctx context.Context, key string) error {
				_, err := c.GetOrSet(ctx, key, time.Minute, load)
				return err
			}
		}})
	}
	// The same default-options miss on a context with a deadline: GetOrSet
	// then hands the flight to a goroutine of the Cache's, so that the
	// caller can leave at its deadline while the load goes on. The gap to
	// the row above, whose request-like context can only be cancelled and
	// whose caller runs the load itself, is what that hand-off costs.
	adaptive := rows[0] // rediskitModes[0]: the default
	rows = append(rows, missRow{"rediskit-deadline/adaptive", func(b *testing.B) (*cmdCounter, func(context.Context, string) error) {
		cnt, op := adaptive.setup(b)
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		b.Cleanup(cancel)
		return cnt, func(_ context.Context, key string) error { return op(ctx, key) }
	}})
	for _, m := range goredisModes {
		rows = append(rows, missRow{"go-redis-cache-Once/" + m.name, func(b *testing.B) (*cmdCounter, func(context.Context, string) error) {
			rdb, cnt := newBenchClient(b)
			c := grcache.New(&grcache.Options{Redis: m.pick(b, rdb)})
			return cnt, func(ctx context.Context, key string) error {
				var v []byte
				return c.Once(&grcache.Item{Ctx: ctx, Key: key, Value: &v, TTL: time.Minute,
					Do: func(*grcache.Item) (any, error) { return value100, nil }})
			}
		}})
	}
	// The commands alone, with no library around them, on each client:
	// what Once sends (GET, then SET PX), and what a rediskit miss sends
	// (the lease, then the commit that stores the value only while the
	// lease holds). The gap between the two is
	// what the cross-process lease costs the server and the wire; the gap
	// from each library to its row is the library's own work.
	for _, m := range goredisModes {
		rows = append(rows, missRow{"go-redis-GET+SET/" + m.name, func(b *testing.B) (*cmdCounter, func(context.Context, string) error) {
			rdb, cnt := newBenchClient(b)
			c := m.pick(b, rdb)
			return cnt, func(ctx context.Context, key string) error {
				if err := c.Get(ctx, key).Err(); !errors.Is(err, redis.Nil) {
					return fmt.Errorf("GET of a new key: %v", err)
				}
				return c.Set(ctx, key, value100, time.Minute).Err()
			}
		}})
		rows = append(rows, missRow{"go-redis-lease+commit/" + m.name, func(b *testing.B) (*cmdCounter, func(context.Context, string) error) {
			rdb, cnt := newBenchClient(b)
			c := m.pick(b, rdb)
			commit := leaseCommit(b, rdb)
			return cnt, func(ctx context.Context, key string) error {
				marker := "lease:" + key
				// Process, not Do: go-redis runs Do outside the batches.
				lease := redis.NewStringCmd(ctx, "set", key, marker, "px", 30000, "nx", "get")
				if err := c.Process(ctx, lease); !errors.Is(err, redis.Nil) {
					return fmt.Errorf("lease of a new key: %v", err)
				}
				return commit(ctx, c, key, marker)
			}
		}})
	}
	rows = append(rows, missRow{"rueidisaside/autopipelined", func(b *testing.B) (*cmdCounter, func(context.Context, string) error) {
		ca := newAside(b)
		return nil, func(ctx context.Context, key string) error {
			v, err := ca.Get(ctx, time.Minute, key, func(context.Context, string) (string, error) { return string(value100), nil })
			if err == nil && len(v) != len(value100) {
				err = fmt.Errorf("rueidisaside returned %d bytes", len(v))
			}
			return err
		}
	}})
	return rows
}

// compareAndSet is the least a commit can do on a server whose SET has no
// IFEQ: store the value only while the key holds the marker.
var compareAndSet = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`)

// leaseCommit returns the bare commit of the go-redis-lease+commit row:
// SET … IFEQ where the server takes it, as rediskit commits there, and
// compareAndSet where it does not.
func leaseCommit(b *testing.B, rdb *redis.Client) func(ctx context.Context, c redis.UniversalClient, key, marker string) error {
	ctx := context.Background()
	err := rdb.Do(ctx, "set", "bench:ifeq-probe", "x", "ifeq", "y").Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		if err := compareAndSet.Load(ctx, rdb).Err(); err != nil {
			b.Fatal(err)
		}
		return func(ctx context.Context, c redis.UniversalClient, key, marker string) error {
			return compareAndSet.EvalSha(ctx, c, []string{key}, marker, value100, 60000).Err()
		}
	}
	return func(ctx context.Context, c redis.UniversalClient, key, marker string) error {
		return c.Process(ctx, redis.NewStatusCmd(ctx, "set", key, value100, "px", 60000, "ifeq", marker))
	}
}

// newAside returns a rueidisaside client with its defaults (client-side
// caching through RESP3 tracking, SET NX GET as the lock).
func newAside(b *testing.B) rueidisaside.CacheAsideClient {
	ca, err := rueidisaside.NewClient(rueidisaside.ClientOption{
		ClientOption: rueidis.ClientOption{InitAddress: []string{benchAddr}},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ca.Close)
	return ca
}

func flushBench(b *testing.B) {
	rdb := redis.NewClient(&redis.Options{Addr: benchAddr})
	defer rdb.Close()
	if err := rdb.FlushAll(context.Background()).Err(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCacheGetOrSetHit is the steady state of cache-aside: GetOrSet of
// keys that are present, so the loader never runs. rediskit reads with the
// SET NX GET that would take the lease on a miss; go-redis/cache Once reads
// with GET.
func BenchmarkCacheGetOrSetHit(b *testing.B) {
	ctx := context.Background()
	never := func(ctx context.Context) ([]byte, error) { return nil, errors.New("loader called on a hit") }
	var rows []cacheRow
	for _, m := range rediskitModes {
		rows = append(rows, cacheRow{"rediskit/" + m.name, func(b *testing.B) (*cmdCounter, func(context.Context, int) error) {
			c, cnt := newBenchCache(b, "rkgos", m.mode)
			for i := range hitKeys {
				if err := c.Set(ctx, strconv.Itoa(i), value100, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
			return cnt, func(ctx context.Context, i int) error {
				_, err := c.GetOrSet(ctx, strconv.Itoa(i%hitKeys), time.Hour, never)
				return err
			}
		}})
	}
	for _, m := range goredisModes {
		rows = append(rows, cacheRow{"go-redis-cache-Once/" + m.name, func(b *testing.B) (*cmdCounter, func(context.Context, int) error) {
			rdb, cnt := newBenchClient(b)
			c := grcache.New(&grcache.Options{Redis: m.pick(b, rdb)})
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
		}})
	}
	for r := range rounds.N() {
		for _, g := range cacheConcurrency {
			for _, row := range rounds.InOrder(rows, r) {
				b.Run(fmt.Sprintf("g=%d/%s", g, row.name), func(b *testing.B) {
					cnt, op := row.setup(b)
					runConcurrent(b, g, cnt, op)
				})
			}
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
