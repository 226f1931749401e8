package metrics_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rediskit/rediskit"
	"github.com/rediskit/rediskit/cache"
	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/metrics"
	"github.com/rediskit/rediskit/retry"
	"github.com/rediskit/rediskit/session"
)

func TestMain(m *testing.M) { redistest.Main(m) }

func TestCollectors(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	cfg, err := rediskit.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	client, err := rediskit.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	rdb := client.Redis()

	c, err := cache.New(rdb, cache.Options{Prefix: "m"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	store, err := session.New(rdb, session.Options{Prefix: "ms:"})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	if _, err := c.GetOrSet(ctx, "k", time.Minute, func(context.Context) ([]byte, error) { return []byte("v"), nil }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	// Two calls that end on their deadline: counted apart, not as failures.
	for range 2 {
		dctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		if err := rdb.BLPop(dctx, 0, "m:empty").Err(); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("BLPOP with a deadline: %v", err)
		}
		cancel()
	}
	for _, u := range []string{"alice", "alice", "bob"} {
		if _, err := store.Create(ctx, u, nil, session.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		metrics.NewClientCollector(client),
		metrics.NewCacheCollector("products", c),
		metrics.NewSessionCollector(store),
	)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}

	want := `
# HELP rediskit_cache_loads_total Loader calls in this process.
# TYPE rediskit_cache_loads_total counter
rediskit_cache_loads_total{cache="products"} 1
# HELP rediskit_cache_hits_total Reads answered from Redis, stale values included.
# TYPE rediskit_cache_hits_total counter
rediskit_cache_hits_total{cache="products"} 1
# HELP rediskit_session_active Sessions stored (anonymous ones included).
# TYPE rediskit_session_active gauge
rediskit_session_active 3
# HELP rediskit_session_users Users with a live session.
# TYPE rediskit_session_users gauge
rediskit_session_users 2
# HELP rediskit_breaker_state Circuit breaker state: 0 closed, 1 open, 2 half-open.
# TYPE rediskit_breaker_state gauge
rediskit_breaker_state 0
# HELP rediskit_client_deadlines_total Calls ended by the caller's context (deadline or cancellation); not failures.
# TYPE rediskit_client_deadlines_total counter
rediskit_client_deadlines_total 2
# HELP rediskit_client_failures_total Calls Redis could not serve: network errors, timeouts, LOADING, breaker refusals, ambiguous writes.
# TYPE rediskit_client_failures_total counter
rediskit_client_failures_total 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"rediskit_cache_loads_total", "rediskit_cache_hits_total", "rediskit_session_active",
		"rediskit_session_users", "rediskit_breaker_state", "rediskit_client_deadlines_total",
		"rediskit_client_failures_total"); err != nil {
		t.Fatal(err)
	}

	// The latency histogram counts every command the client issued.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, mf := range mfs {
		switch mf.GetName() {
		case "rediskit_client_command_duration_seconds":
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() == 0 || len(h.GetBucket()) != len(rediskit.LatencyBuckets()) {
				t.Fatalf("latency histogram: %d samples, %d buckets", h.GetSampleCount(), len(h.GetBucket()))
			}
			found = true
		case "rediskit_pool_waits_total", "rediskit_pool_wait_seconds_total":
			found = found && len(mf.GetMetric()) == 1
		case "rediskit_server_up":
			if v := mf.GetMetric()[0].GetGauge().GetValue(); v != 1 {
				t.Fatalf("rediskit_server_up = %v", v)
			}
		}
	}
	if !found {
		t.Fatal("no latency histogram")
	}

	// With the server gone, scrapes still answer, and say what failed.
	srv.Kill()
	var scrapeErr float64
	done := make(chan struct{})
	go func() {
		defer close(done)
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "rediskit_client_scrape_error" {
				scrapeErr = mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * metrics.ScrapeTimeout):
		t.Fatal("a scrape with Redis down did not return")
	}
	if scrapeErr != 1 {
		t.Fatalf("rediskit_client_scrape_error = %v with the server killed", scrapeErr)
	}
	if _, err := store.Stats(ctx); !errors.Is(err, retry.ErrUnavailable) {
		t.Fatalf("store.Stats with the server killed: %v, want retry.ErrUnavailable", err)
	}
}

func TestRegisterTouchesNoRedis(t *testing.T) {
	t.Parallel()
	// Registering describes the metrics without reading any statistics:
	// a collector over a source that would block must register at once.
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewClientCollector(blocking{}), metrics.NewSessionCollector(blockingSessions{}))
}

type blocking struct{}

func (blocking) Stats(ctx context.Context) (rediskit.Stats, error) {
	select {}
}

type blockingSessions struct{}

func (blockingSessions) Stats(ctx context.Context) (session.Stats, error) {
	select {}
}

// TestCacheCollectorNearTier: a Cache with a near tier exports its counters
// as rediskit_cache_near_*, equal to NearStats; a Cache without one exports
// none of them.
func TestCacheCollectorNearTier(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	c, err := cache.New(rdb, cache.Options{Prefix: "mn", Near: &cache.NearOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	plain, err := cache.New(rdb, cache.Options{Prefix: "mp"})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	typed := cache.NewTyped[string](c, nil)
	if err := typed.Set(ctx, "k", "v", 0); err != nil {
		t.Fatal(err)
	}
	// Read until a value and a "not found" are both answered locally.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := typed.MGet(ctx, []string{"k", "missing"}); err != nil {
			t.Fatal(err)
		}
		if st := c.NearStats(); st.Hits > 0 && st.NegativeHits > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no local hit and negative hit: %+v", c.NearStats())
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCacheCollector("near", c), metrics.NewCacheCollector("plain", plain))
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	st := c.NearStats() // no read since the gather: the read counters are unchanged
	got := map[string]float64{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "rediskit_cache_near_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			if cache := m.GetLabel()[0].GetValue(); cache != "near" {
				t.Fatalf("%s exported for the cache %q, which has no near tier", mf.GetName(), cache)
			}
			got[mf.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	want := map[string]float64{
		"rediskit_cache_near_hits_total":           float64(st.Hits),
		"rediskit_cache_near_negative_hits_total":  float64(st.NegativeHits),
		"rediskit_cache_near_misses_total":         float64(st.Misses),
		"rediskit_cache_near_fills_total":          float64(st.Fills),
		"rediskit_cache_near_negative_fills_total": float64(st.NegativeFills),
		"rediskit_cache_near_serving":              1,
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v (NearStats %+v)", name, got[name], v, st)
		}
	}
	for _, name := range []string{"rediskit_cache_near_evictions_total", "rediskit_cache_near_invalidations_total",
		"rediskit_cache_near_flushes_total"} {
		if _, ok := got[name]; !ok {
			t.Errorf("%s not exported", name)
		}
	}
	if got["rediskit_cache_near_entries"] < 2 || got["rediskit_cache_near_bytes"] <= 0 {
		t.Errorf("entries %v, bytes %v; want 2 entries or more and some bytes", got["rediskit_cache_near_entries"], got["rediskit_cache_near_bytes"])
	}
}
