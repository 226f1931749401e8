package loadtest_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/rediskit/rediskit"
	"github.com/rediskit/rediskit/cache"
	"github.com/rediskit/rediskit/internal/loadtest"
	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/session"
)

var longFlag = flag.Bool("long", false, "run the long reliability scenarios (minutes each); or set RELIABILITY_LONG=1")

func TestMain(m *testing.M) {
	// go-redis logs every failed dial; the faults cause thousands.
	redis.SetLogger(quiet{})
	redistest.Main(m)
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// long reports whether the long versions of the scenarios run.
func long() bool { return *longFlag || os.Getenv("RELIABILITY_LONG") == "1" }

// pick returns quick or, in a long run, slow.
func pick[T any](quick, slow T) T {
	if long() {
		return slow
	}
	return quick
}

// Client settings of every scenario: short timeouts so that a fault is felt
// within a second, the breaker's defaults except a 1 s cool-down.
const (
	readTimeout     = 500 * time.Millisecond
	breakerCooldown = time.Second
	loadTimeout     = 500 * time.Millisecond
	leaseTTL        = time.Second
)

func clientConfig(cfg rediskit.Config) rediskit.Config {
	cfg.ReadTimeout = readTimeout
	cfg.DialTimeout = readTimeout
	cfg.BreakerCooldown = breakerCooldown
	return cfg
}

// runs numbers the runs of this process: each run has its own key prefixes,
// so runs sharing a deployment (the cluster) do not audit each other's keys.
var (
	runs  atomic.Int64
	runMu sync.Mutex
)

// deploy runs start (a deployment's set-up) while no run is going: the
// servers and clients of a parallel test starting during a run would count
// as that run's goroutines.
func deploy[T any](start func() T) T {
	runMu.Lock()
	defer runMu.Unlock()
	return start()
}

func sessionOptions(run int64) session.Options {
	return session.Options{Prefix: fmt.Sprintf("lt%d:s:", run), IdleTimeout: 10 * time.Minute, UserKey: []byte("loadtest user key")}
}

func cacheOptions(run int64) cache.Options {
	return cache.Options{Prefix: fmt.Sprintf("lt%d:c", run), LoadTimeout: loadTimeout, LeaseTTL: leaseTTL}
}

// scenario is one run of the workload against one deployment.
type scenario struct {
	name string
	cfg  rediskit.Config // how the workload reaches Redis (maybe through a proxy)
	// peek returns a plain go-redis client that reaches the servers
	// directly, for the audits; run closes it.
	peek func() redis.UniversalClient
	rate int
	dur  time.Duration
	// losesData says the fault may lose acknowledged writes (a restart
	// without persistence, an asynchronous failover): the audits then report
	// missing data instead of failing on it.
	losesData bool
	// awaitLeases waits out the lease TTL after the run and requires that no
	// lease is left.
	awaitLeases bool
	// sessionOpts adjusts the session options of the workload.
	sessionOpts func(*session.Options)
	// fault runs while the load runs; it must return when ctx ends and
	// leave no fault behind. Its error fails the test.
	fault func(ctx context.Context, d *loadtest.Driver) error
	// check runs extra assertions on the result.
	check func(t *testing.T, r *loadtest.Result)
	// onBreaker counts breaker transitions, if set.
	onBreaker func(from, to rediskit.BreakerState)
	// onClient sees the workload's client before the load starts, if set.
	onClient func(*rediskit.Client)
}

// run runs s and checks what every scenario must satisfy: no panic, no
// unexpected error, recovery after every fault, no goroutine or heap growth,
// nothing resurrected, no index entry leaked, no counter doubled (and, unless
// s.losesData, nothing acknowledged lost).
func run(t *testing.T, s scenario) *loadtest.Result {
	t.Helper()
	ctx := context.Background()
	// Runs never overlap, even when their tests do (the sentinel and
	// cluster set-ups overlap in the quick run): goroutines and heap are
	// counted for the whole process.
	runMu.Lock()
	defer runMu.Unlock()
	n := runs.Add(1)
	sopts := sessionOptions(n)
	if s.sessionOpts != nil {
		s.sessionOpts(&sopts)
	}
	copts := cacheOptions(n)

	gBefore, hBefore := settle(0)
	ignore := goleak.IgnoreCurrent()

	cfg := clientConfig(s.cfg)
	cfg.OnBreakerChange = s.onBreaker
	client, err := rediskit.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.onClient != nil {
		s.onClient(client)
	}
	store, err := session.New(client.Redis(), sopts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(client.Redis(), copts)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Preload(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Preload(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := loadtest.New(loadtest.Config{Client: client, Store: store, Cache: c, Rate: s.rate, Duration: s.dur})
	if err != nil {
		t.Fatal(err)
	}

	runCtx, cancel := context.WithCancel(ctx)
	faultErr := make(chan error, 1)
	go func() {
		if s.fault == nil {
			faultErr <- nil
			return
		}
		faultErr <- s.fault(runCtx, d)
	}()
	r := d.Run(ctx)
	cancel()
	if err := <-faultErr; err != nil {
		t.Errorf("fault injection: %v", err)
	}
	r.Name = s.name
	st, _ := client.Stats(ctx) // client-side figures are set even when INFO fails
	r.BreakerOpens, r.BreakerRejected = st.BreakerOpens, st.BreakerRejected
	finalBreaker := client.BreakerState()

	if err := c.Close(); err != nil {
		t.Errorf("cache close: %v", err)
	}
	if err := store.Close(); err != nil {
		t.Errorf("store close: %v", err)
	}
	if err := client.Close(); err != nil {
		t.Errorf("client close: %v", err)
	}

	// The audits read the servers directly, without rediskit's breaker,
	// through a client made now: it sees the deployment as the faults left it.
	auditCtx, auditCancel := context.WithTimeout(ctx, 60*time.Second)
	defer auditCancel()
	peek := s.peek()
	defer peek.Close() // on failure; closed below before the leak check
	peekStore, err := session.New(peek, sopts)
	if err != nil {
		t.Fatal(err)
	}
	peekCache, err := cache.New(peek, copts)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := loadtest.AuditSessions(auditCtx, peek, peekStore, sopts.Prefix, d)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := loadtest.AuditCounters(auditCtx, peekCache, d)
	if err != nil {
		t.Fatal(err)
	}
	la, err := loadtest.AuditLeases(auditCtx, peek, peekCache.Namespace())
	if err != nil {
		t.Fatal(err)
	}
	r.SessionAudit, r.CounterAudit = sa, ca
	r.Notes = append(r.Notes,
		"sessions audit: "+sa.String(),
		"counters audit: "+ca.String(),
		fmt.Sprintf("leases right after the run: %d markers, %d lease keys, %d without TTL", la.Markers, la.LeaseKeys, la.NoTTL))
	if s.awaitLeases {
		time.Sleep(leaseTTL + 200*time.Millisecond)
		la2, err := loadtest.AuditLeases(auditCtx, peek, peekCache.Namespace())
		if err != nil {
			t.Fatal(err)
		}
		r.Notes = append(r.Notes, fmt.Sprintf("leases after the lease TTL (%v): %d", leaseTTL, la2.Left()))
		if la2.Left() != 0 {
			t.Errorf("%d stampede leases left %v after the run", la2.Left(), leaseTTL)
		}
	}
	_ = peekCache.Close()
	_ = peekStore.Close()
	_ = peek.Close()

	r.GoroutinesBefore, r.HeapBefore = gBefore, hBefore
	r.GoroutinesAfter, r.HeapAfter = settle(gBefore)
	// A restarted server brings new process-watching goroutines; they
	// belong to redistest.
	// Another test waiting in run for its turn is not ours either.
	leakOpts := []goleak.Option{ignore,
		goleak.IgnoreAnyFunction("github.com/rediskit/rediskit/internal/redisproc.(*Server).launch.func1"),
		goleak.IgnoreAnyFunction("os/exec.(*Cmd).writerDescriptor.func1"),
		goleak.IgnoreAnyFunction("github.com/rediskit/rediskit/internal/loadtest_test.run")}
	// go-redis's pool re-dials a dead node once a second and only then
	// sees that its pool was closed: give such goroutines a few seconds.
	for deadline := time.Now().Add(5 * time.Second); goleak.Find(leakOpts...) != nil && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	goleak.VerifyNone(t, leakOpts...)
	r.Command = command(t)
	defer report(t, r) // after the checks, which add notes

	// What every scenario must satisfy.
	if r.Panics != 0 {
		t.Errorf("%d panics in the workload; first:\n%s", r.Panics, r.PanicStack)
	}
	if n := r.Outcomes[loadtest.Other]; n != 0 {
		t.Errorf("%d operations failed with an unexpected error: %q", n, r.OtherErrors)
	}
	if r.Attempted == 0 || r.Succeeded == 0 {
		t.Errorf("attempted %d, succeeded %d: the workload did not run", r.Attempted, r.Succeeded)
	}
	if _, _, unrec := r.MaxRecovery(); unrec != 0 {
		t.Errorf("%d faults never recovered: %+v", unrec, r.Faults)
	}
	if finalBreaker != rediskit.BreakerClosed {
		t.Errorf("breaker %v at the end of the run, want closed", finalBreaker)
	}
	if r.GoroutinesAfter > r.GoroutinesBefore+goroutineSlack {
		t.Errorf("goroutines %d → %d", r.GoroutinesBefore, r.GoroutinesAfter)
	}
	if r.HeapAfter > r.HeapBefore+heapSlack {
		t.Errorf("heap %d → %d bytes after GC", r.HeapBefore, r.HeapAfter)
	}
	if sa.Leaked != 0 || sa.Unindexed != 0 || sa.IndexNoTTL != 0 {
		t.Errorf("per-user indexes out of step with sessions: %s", sa)
	}
	if ca.Doubled != 0 {
		t.Errorf("counter applied more often than acknowledged + ambiguous: %s", ca)
	}
	if la.NoTTL != 0 {
		t.Errorf("%d stampede leases without expiry", la.NoTTL)
	}
	if !s.losesData {
		if sa.Resurrected != 0 || sa.Missing != 0 || sa.Stale != 0 {
			t.Errorf("acknowledged session writes lost or undone: %s", sa)
		}
		if ca.Lost != 0 {
			t.Errorf("acknowledged increments lost: %s", ca)
		}
		if n := r.Outcomes[loadtest.NotFound] + r.Outcomes[loadtest.Stale]; n != 0 {
			t.Errorf("%d session operations found acknowledged data gone or stale", n)
		}
	}
	if s.check != nil {
		s.check(t, r)
	}
	return r
}

const (
	goroutineSlack = 2
	heapSlack      = 4 << 20
)

// settle runs the GC and returns the goroutine count and live heap; when
// target > 0 it waits up to 5 s for the goroutine count to come down to it
// (connections and workers wind down asynchronously).
func settle(target int) (goroutines int, heap uint64) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		goroutines = runtime.NumGoroutine()
		if target == 0 || goroutines <= target || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return goroutines, ms.HeapAlloc
}

var reportMu sync.Mutex

// report logs the result as Markdown and appends it to the file named by
// RELIABILITY_OUT, if set (docs/RELIABILITY.md is assembled from it).
func report(t *testing.T, r *loadtest.Result) {
	md := r.Markdown()
	t.Log("\n" + md)
	path := os.Getenv("RELIABILITY_OUT")
	if path == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("report: %v", err)
		return
	}
	defer f.Close()
	if _, err := f.WriteString(md); err != nil {
		t.Errorf("report: %v", err)
	}
}

func command(t *testing.T) string {
	top, _, _ := strings.Cut(t.Name(), "/")
	cmd := "go test ./internal/loadtest -run '^" + top + "$' -v"
	if long() {
		cmd += " -long -timeout 30m"
	}
	return cmd
}

// direct returns a peek function for a standalone server.
func direct(addr string) func() redis.UniversalClient {
	return func() redis.UniversalClient { return redis.NewClient(&redis.Options{Addr: addr}) }
}

// counterOf returns a breaker-transition callback counting transitions into
// each state.
func counterOf(counts *[3]atomic.Int64) func(from, to rediskit.BreakerState) {
	return func(_, to rediskit.BreakerState) { counts[to].Add(1) }
}
