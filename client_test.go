package rediskit

import (
	"context"
	"errors"
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

func TestOpen(t *testing.T) {
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			ctx := context.Background()
			cfg := topo.cfg(t)
			cfg.HealthCheckInterval = time.Minute
			c := open(t, cfg)
			rdb := c.Redis()
			key := redistest.Prefix(t) + "k"
			if err := rdb.Set(ctx, key, "v", time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			if got, err := rdb.Get(ctx, key).Result(); err != nil || got != "v" {
				t.Fatalf("Get = %q, %v", got, err)
			}
			if _, err := rdb.Get(ctx, key+"missing").Result(); !errors.Is(err, redis.Nil) {
				t.Fatalf("Get(missing) err = %v, want redis.Nil", err)
			}
			if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.Get(ctx, key)
				p.Get(ctx, key)
				return nil
			}); err != nil {
				t.Fatal(err)
			}

			wantNodes := 1
			if topo.name == "cluster" {
				wantNodes = 3
			}
			h := c.Health(ctx)
			if h.Status != StatusUp || len(h.Nodes) != wantNodes {
				t.Fatalf("Health = %+v, want up with %d nodes", h, wantNodes)
			}
			for _, n := range h.Nodes {
				if n.Role != "master" || !strings.HasPrefix(n.Version, "7.") && !strings.Contains(n.Version, ".") {
					t.Fatalf("node %+v: want role master and a version", n)
				}
			}

			st, err := c.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Commands < 5 || st.Pipelines < 1 || st.Latency.Count < 4 || st.Latency.P50 <= 0 || st.Latency.P99 < st.Latency.P50 {
				t.Fatalf("client stats %+v", st)
			}
			if st.Failures != 0 {
				t.Fatalf("Failures = %d, want 0 (redis.Nil is no failure)", st.Failures)
			}
			if len(st.Nodes) != wantNodes || st.Server.UsedMemory <= 0 || st.Server.KeyspaceHits < 1 || st.Server.UptimeSeconds < 0 || st.Server.ConnectedClients < 1 {
				t.Fatalf("server stats %+v nodes %+v", st.Server, st.Nodes)
			}
			if st.Server.HitRatio <= 0 || st.Server.HitRatio > 1 {
				t.Fatalf("HitRatio = %v", st.Server.HitRatio)
			}
			if st.Pool.TotalConns < 1 || st.Breaker != BreakerClosed {
				t.Fatalf("pool %+v breaker %v", st.Pool, st.Breaker)
			}
		})
	}
}

func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := redistest.Start(t)
	addr := s.Addr
	s.Kill()
	for _, cfg := range []Config{
		{Addr: addr, Password: "hunter2-secret"},
		{ClusterAddrs: []string{addr}, Password: "hunter2-secret"},
		{MasterName: "mymaster", SentinelAddrs: []string{addr}, Password: "hunter2-secret", SentinelPassword: "hunter2-secret"},
	} {
		cfg.Retry.MaxAttempts = 1
		c, err := Open(ctx, cfg)
		if err == nil {
			_ = c.Close()
			t.Fatalf("Open(%v) succeeded against a dead server", cfg)
		}
		if !strings.Contains(err.Error(), addr) || strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("Open(%v) error %q: want the address and no password", cfg, err)
		}
	}
	if _, err := Open(ctx, Config{Addr: "nope"}); err == nil || !strings.Contains(err.Error(), "Addr") {
		t.Fatalf("Open with a bad Addr: %v, want a validation error", err)
	}
}

// faultClient opens a client through a proxy in front of a fresh server,
// with a short read timeout, and a counter on its innermost hook.
func faultClient(t *testing.T, mod func(*Config)) (*Client, *redistest.Proxy, *redis.Client, *counter) {
	s := redistest.Start(t)
	p := redistest.NewProxy(t, s.Addr)
	cfg := Config{
		Addr:                p.Addr,
		ReadTimeout:         200 * time.Millisecond,
		HealthCheckInterval: -1,
		BreakerThreshold:    -1,
		Retry:               retry.Policy{MaxAttempts: 3, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond},
	}
	if mod != nil {
		mod(&cfg)
	}
	c := open(t, cfg)
	n := newCounter()
	c.Redis().AddHook(n)
	return c, p, s.Client(t), n
}

// warm makes sure the command pool and the pipeline pool each hold an open,
// initialized connection, so that a fault set next hits the commands under
// test and not a connection handshake (HELLO runs through the hooks too).
func warm(t *testing.T, c *Client, n *counter) {
	t.Helper()
	ctx := context.Background()
	if err := c.Redis().Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Redis().Pipelined(ctx, func(p redis.Pipeliner) error { p.Ping(ctx); return nil }); err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	clear(n.cmds)
	n.mu.Unlock()
	n.pipelines.Store(0)
	n.failOnce = sync.Once{}
}

// TestRetryProof is the acceptance test of safe retries: replies delayed past
// the read timeout make INCR fail as ambiguous and be applied exactly once,
// while a GET under the same (transient) fault succeeds after a retry.
func TestRetryProof(t *testing.T) {
	ctx := context.Background()
	c, p, direct, n := faultClient(t, nil)
	rdb := c.Redis()
	key := redistest.Prefix(t) + "counter"

	// The fault clears after the first failed attempt, so a re-send would
	// succeed: the only thing that keeps INCR from being applied twice is
	// the decision not to re-send it.
	warm(t, c, n)
	p.SetDelay(time.Second)
	n.afterFail = func() { p.SetDelay(0) }
	err := rdb.Incr(ctx, key).Err()
	if !errors.Is(err, retry.ErrAmbiguous) {
		t.Fatalf("Incr under delayed replies: err = %v, want retry.ErrAmbiguous", err)
	}
	var amb *retry.AmbiguousError
	if !errors.As(err, &amb) || amb.Cmd != "incr" || amb.Cause == nil {
		t.Fatalf("err = %#v, want *retry.AmbiguousError for incr with a cause", err)
	}
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v: the cause (a timeout) should be reachable with errors.As", err)
	}
	if got := n.n("incr"); got != 1 {
		t.Fatalf("INCR sent %d times, want 1", got)
	}
	if v, err := direct.Get(ctx, key).Int(); err != nil || v != 1 {
		t.Fatalf("server value = %d, %v; want 1 (applied exactly once)", v, err)
	}

	// GET under the same fault is retried and succeeds.
	warm(t, c, n)
	p.SetDelay(time.Second)
	if v, err := rdb.Get(ctx, key).Int(); err != nil || v != 1 {
		t.Fatalf("Get under a transient fault = %d, %v; want 1 after a retry", v, err)
	}
	if got := n.n("get"); got != 2 {
		t.Fatalf("GET sent %d times, want 2 (one failure, one retry)", got)
	}

	// A caller may vouch for a write: then it is retried like a read.
	warm(t, c, n)
	p.SetDelay(time.Second)
	if err := rdb.Incr(retry.WithIdempotent(ctx), key).Err(); err != nil {
		t.Fatalf("Incr marked idempotent: %v", err)
	}
	if v, _ := direct.Get(ctx, key).Int(); v != 3 {
		t.Fatalf("server value = %d, want 3: the marked INCR is re-sent (applied twice)", v)
	}

	st, _ := c.Stats(ctx)
	if st.Retries != 2 || st.Ambiguous != 1 {
		t.Fatalf("Stats: retries %d ambiguous %d, want 2 and 1", st.Retries, st.Ambiguous)
	}
}

// TestRetryBoundedByDeadline: with the fault permanent, a GET gives up when
// the next backoff would pass the context deadline, instead of sleeping
// past it; the error is the transient cause, not ErrAmbiguous.
func TestRetryPermanentFault(t *testing.T) {
	ctx := context.Background()
	c, p, _, n := faultClient(t, nil)
	key := redistest.Prefix(t) + "k"
	warm(t, c, n)
	p.SetDelay(time.Second)
	err := c.Redis().Get(ctx, key).Err()
	if err == nil || errors.Is(err, retry.ErrAmbiguous) || retry.Classify(err) != retry.ClassTransient {
		t.Fatalf("Get under a permanent fault: %v, want a transient error", err)
	}
	if got := n.n("get"); got != 3 {
		t.Fatalf("GET sent %d times, want 3 (MaxAttempts)", got)
	}

	// A deadline shorter than the backoff stops retries at once.
	c2, p2, _, n2 := faultClient(t, func(cfg *Config) {
		cfg.Retry = retry.Policy{MaxAttempts: 10, BaseBackoff: time.Hour, MaxBackoff: time.Hour}
	})
	p2.SetDelay(time.Second)
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c2.Redis().Get(dctx, key).Err(); err == nil {
		t.Fatal("want an error")
	}
	if dctx.Err() != nil {
		t.Fatal("the call outlived its context deadline")
	}
	_ = n2
}

func TestPipelineRetry(t *testing.T) {
	ctx := context.Background()
	c, p, direct, n := faultClient(t, nil)
	rdb := c.Redis()
	pre := redistest.Prefix(t)

	// All idempotent: re-sent and successful.
	warm(t, c, n)
	p.SetDelay(time.Second)
	n.afterFail = func() { p.SetDelay(0) }
	cmds, err := rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		pl.Set(ctx, pre+"a", "1", time.Minute)
		pl.Get(ctx, pre+"a")
		return nil
	})
	if err != nil || cmds[1].(*redis.StringCmd).Val() != "1" {
		t.Fatalf("idempotent pipeline: %v", err)
	}
	if got := n.n("set"); got != 2 {
		t.Fatalf("pipeline sent %d times, want 2", got)
	}

	// With an INCR: not re-sent; INCR ambiguous, applied once. The SET's
	// reply was lost too and it is not re-sent either: ambiguous as well.
	warm(t, c, n)
	p.SetDelay(time.Second)
	cmds, err = rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		pl.Set(ctx, pre+"b", "x", time.Minute)
		pl.Incr(ctx, pre+"n")
		return nil
	})
	if err == nil || n.n("incr") != 1 {
		t.Fatalf("pipeline with INCR: err %v, sent %d times; want an error and 1 send", err, n.n("incr"))
	}
	if !errors.Is(cmds[1].Err(), retry.ErrAmbiguous) || !errors.Is(cmds[0].Err(), retry.ErrAmbiguous) {
		t.Fatalf("errors: SET %v, INCR %v; want both ambiguous", cmds[0].Err(), cmds[1].Err())
	}
	if v, _ := direct.Get(ctx, pre+"n").Int(); v != 1 {
		t.Fatalf("INCR applied %d times, want 1", v)
	}

	// A transaction with an INCR: same.
	warm(t, c, n)
	p.SetDelay(time.Second)
	cmds, err = rdb.TxPipelined(ctx, func(pl redis.Pipeliner) error {
		pl.Incr(ctx, pre+"n")
		return nil
	})
	if !errors.Is(err, retry.ErrAmbiguous) || n.n("incr") != 1 {
		t.Fatalf("tx with INCR: err %v, sent %d times", err, n.n("incr"))
	}
	if v, _ := direct.Get(ctx, pre+"n").Int(); v != 2 {
		t.Fatalf("value %d, want 2", v)
	}
	_ = cmds
}

// TestClusterIncrNotResent pauses the master that owns a key (SIGSTOP):
// the INCR is written, its reply never comes. go-redis's ClusterClient
// re-sends such a command inside its redirect loop even with MaxRetries -1
// (the control shows it); through Client it is sent once and reported as
// ambiguous, and after the master resumes the counter is 1.
func TestClusterIncrNotResent(t *testing.T) {
	ctx := context.Background()
	cl := redistest.SharedCluster(t)
	run := func(t *testing.T, rdb *redis.ClusterClient) (int, error) {
		key := redistest.Prefix(t) + "n"
		srv, m := cl.MasterOf(t, rdb, key)
		warmNode(t, m, 3)
		srv.Pause()
		ierr := rdb.Incr(ctx, key).Err()
		srv.Resume()
		direct := redis.NewClient(&redis.Options{Addr: srv.Addr})
		defer direct.Close()
		// The paused server reads every buffered command when it resumes,
		// before it accepts this new connection's command.
		for range 3 {
			_ = direct.Ping(ctx).Err()
		}
		v, err := direct.Get(ctx, key).Int()
		if err != nil {
			t.Fatal(err)
		}
		return v, ierr
	}

	t.Run("client", func(t *testing.T) {
		c := open(t, Config{ClusterAddrs: cl.Addrs(), ReadTimeout: 300 * time.Millisecond, HealthCheckInterval: -1, BreakerThreshold: -1})
		v, err := run(t, c.Redis().(*redis.ClusterClient))
		if !errors.Is(err, retry.ErrAmbiguous) || v != 1 {
			t.Fatalf("Incr: err %v, counter %d; want ErrAmbiguous and 1", err, v)
		}
	})
	t.Run("control-bare-go-redis", func(t *testing.T) {
		rdb := cl.Client(t, func(o *redis.ClusterOptions) {
			o.MaxRetries = -1
			o.ReadTimeout = 300 * time.Millisecond
		})
		v, err := run(t, rdb)
		if v < 2 {
			t.Fatalf("bare ClusterClient: err %v, counter %d; expected go-redis to re-send (counter >= 2)", err, v)
		}
		t.Logf("bare go-redis ClusterClient with MaxRetries -1: err %v, INCR applied %d times", err, v)
	})
}

// TestClusterPipelineNotResent does the same for a cluster pipeline, whose
// re-send go-redis decides before any hook sees the error.
func TestClusterPipelineNotResent(t *testing.T) {
	ctx := context.Background()
	cl := redistest.SharedCluster(t)
	c := open(t, Config{ClusterAddrs: cl.Addrs(), ReadTimeout: 300 * time.Millisecond, HealthCheckInterval: -1, BreakerThreshold: -1})
	rdb := c.Redis().(*redis.ClusterClient)
	key := redistest.Prefix(t) + "n"
	srv, m := cl.MasterOf(t, rdb, key)
	warmNode(t, m, 3)
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error { p.Get(ctx, key); return nil }); !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	srv.Pause()
	cmds, _ := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, key)
		p.Get(ctx, key)
		return nil
	})
	srv.Resume()
	if !errors.Is(cmds[0].Err(), retry.ErrAmbiguous) {
		t.Fatalf("INCR in pipeline: %v, want ErrAmbiguous", cmds[0].Err())
	}
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer direct.Close()
	for range 3 {
		_ = direct.Ping(ctx).Err()
	}
	if v, err := direct.Get(ctx, key).Int(); err != nil || v != 1 {
		t.Fatalf("counter = %d, %v; want 1", v, err)
	}
}

// warmNode leaves n initialized connections idle in a node client's pool, so
// that commands sent while the node is paused are written on established
// connections (a new connection would stall in its handshake instead).
func warmNode(t *testing.T, node *redis.Client, n int) {
	t.Helper()
	ctx := context.Background()
	var conns []*redis.Conn
	for range n {
		cn := node.Conn()
		if err := cn.Ping(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, cn)
	}
	for _, cn := range conns {
		_ = cn.Close()
	}
}

func TestBreaker(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t)
	var tr transitions
	cfg := Config{
		Addr:                s.Addr,
		BreakerThreshold:    3,
		BreakerCooldown:     300 * time.Millisecond,
		HealthCheckInterval: -1,
		Retry:               retry.Policy{MaxAttempts: 1},
		OnBreakerChange:     tr.record,
	}
	c := open(t, cfg)
	n := newCounter()
	c.Redis().AddHook(n)
	rdb := c.Redis()
	key := redistest.Prefix(t) + "k"
	history := tr.String

	// Errors that are not infrastructure failures never open it.
	for range 10 {
		if err := rdb.Get(ctx, key).Err(); !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		_ = rdb.Do(ctx, "NOSUCHCOMMAND").Err()
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_ = rdb.Get(cctx, key).Err()
	}
	if c.BreakerState() != BreakerClosed {
		t.Fatalf("breaker %v after caller errors, want closed", c.BreakerState())
	}

	s.Kill()
	for i := 0; i < 3; i++ {
		if err := rdb.Get(ctx, key).Err(); !retry.IsUnavailable(err) || errors.Is(err, ErrCircuitOpen) {
			t.Fatalf("call %d with the server dead: %v, want a transient failure", i, err)
		}
	}
	if c.BreakerState() != BreakerOpen || history() != "closed>open" {
		t.Fatalf("state %v history %q after 3 failures, want open", c.BreakerState(), history())
	}

	// Open: calls fail without touching the network.
	dials, sent := n.dials.Load(), n.n("get")
	for range 100 {
		err := rdb.Get(ctx, key).Err()
		if !errors.Is(err, ErrCircuitOpen) || !errors.Is(err, retry.ErrUnavailable) || !retry.IsUnavailable(err) {
			t.Fatalf("call while open: %v, want ErrCircuitOpen", err)
		}
	}
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error { p.Get(ctx, key); return nil }); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("pipeline while open: %v", err)
	}
	if d := n.dials.Load() - dials; d != 0 {
		t.Fatalf("%d dials while open, want 0", d)
	}
	if got := n.n("get") - sent; got != 0 {
		t.Fatalf("%d GETs passed the breaker while open, want 0", got)
	}

	// Half-open probe fails while the server is still dead: open again.
	eventually(t, 5*time.Second, "a probe after the cool-down", func() bool {
		return !errors.Is(rdb.Get(ctx, key).Err(), ErrCircuitOpen)
	})
	if c.BreakerState() != BreakerOpen || history() != "closed>open open>half-open half-open>open" {
		t.Fatalf("state %v history %q after a failed probe", c.BreakerState(), history())
	}

	// Restart: the next probe succeeds and closes it.
	s.Restart(t)
	eventually(t, 10*time.Second, "the breaker closing after a restart", func() bool {
		return rdb.Get(ctx, key).Err() == redis.Nil
	})
	if c.BreakerState() != BreakerClosed || !strings.HasSuffix(history(), "open>half-open half-open>closed") {
		t.Fatalf("state %v history %q after restart", c.BreakerState(), history())
	}
	st, _ := c.Stats(ctx)
	if st.BreakerOpens != 2 || st.BreakerRejected < 101 {
		t.Fatalf("stats: opens %d rejected %d", st.BreakerOpens, st.BreakerRejected)
	}
}

func TestHealth(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t)
	const interval = 200 * time.Millisecond
	c := open(t, Config{Addr: s.Addr, HealthCheckInterval: interval, BreakerThreshold: -1})
	eventually(t, 5*time.Second, "a first report", func() bool { return !c.Health(ctx).CheckedAt.IsZero() })
	h := c.Health(ctx)
	if h.Status != StatusUp || !h.Healthy() || len(h.Nodes) != 1 || h.Nodes[0].Role != "master" || h.Nodes[0].Version == "" || h.LastError != "" {
		t.Fatalf("Health = %+v, want up", h)
	}

	s.Kill()
	killed := time.Now()
	// Every check that started after the kill must report down; the first
	// such check runs within one interval.
	eventually(t, interval+5*time.Second, "a check after the kill", func() bool { return c.Health(ctx).CheckedAt.After(killed) })
	h = c.Health(ctx)
	if h.Status != StatusDown || h.Nodes[0].Up || h.Nodes[0].Err == "" || h.LastError == "" || h.LastErrorAt.Before(killed) {
		t.Fatalf("Health after kill = %+v, want down with an error", h)
	}

	s.Restart(t)
	restarted := time.Now()
	eventually(t, interval+5*time.Second, "a check after the restart", func() bool { return c.Health(ctx).CheckedAt.After(restarted) })
	// The pool may need one failed dial to notice the new process: wait
	// for the second check after the restart at most.
	eventually(t, 2*interval+5*time.Second, "up after restart", func() bool { return c.Health(ctx).Status == StatusUp })
	h = c.Health(ctx)
	if h.LastError == "" {
		t.Fatalf("LastError forgotten after recovery: %+v", h)
	}
}

// TestHealthFromCache: Health answers from the cache while it is fresh.
func TestHealthFromCache(t *testing.T) {
	ctx := context.Background()
	c := open(t, Config{Addr: redistest.Shared(t).Addr, HealthCheckInterval: time.Minute})
	first := c.Health(ctx) // the checker's first report, or one made now
	n := newCounter()
	c.Redis().AddHook(n)
	for range 1000 {
		if h := c.Health(ctx); h.CheckedAt != first.CheckedAt || h.Status != StatusUp {
			t.Fatalf("report changed: %+v", h)
		}
	}
	if got := n.total(); got != 0 {
		t.Fatalf("1000 Health calls sent %d commands, want 0", got)
	}

	// With the checker off, Health checks on demand.
	c2 := open(t, Config{Addr: redistest.Shared(t).Addr, HealthCheckInterval: -1})
	if h := c2.Health(ctx); h.Status != StatusUp {
		t.Fatalf("on-demand health = %+v", h)
	}
}

func TestSentinelFailover(t *testing.T) {
	ctx := context.Background()
	sen := redistest.StartSentinel(t)
	c := open(t, Config{MasterName: sen.MasterName, SentinelAddrs: sen.SentinelAddrs(), ReadTimeout: time.Second, HealthCheckInterval: -1, BreakerThreshold: -1})
	rdb := c.Redis()
	key := redistest.Prefix(t) + "n"

	var ok, failed atomic.Int64
	var afterFailover atomic.Bool
	var okAfter atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := rdb.Set(ctx, key, i, time.Minute).Err(); err != nil {
				failed.Add(1)
				time.Sleep(20 * time.Millisecond)
				continue
			}
			ok.Add(1)
			if afterFailover.Load() {
				okAfter.Add(1)
			}
		}
	}()
	eventually(t, 5*time.Second, "writes before the failover", func() bool { return ok.Load() > 10 })
	oldMaster := sen.Master.Addr
	sen.Failover(t)
	if sen.Master.Addr == oldMaster {
		t.Fatal("no failover happened")
	}
	afterFailover.Store(true)

	// The running client follows the failover: its writes reach the new
	// master (the old one keeps accepting writes until the sentinel turns
	// it into a replica, which the client then notices).
	newMaster := redis.NewClient(&redis.Options{Addr: sen.Master.Addr})
	defer newMaster.Close()
	probe := key + ":probe"
	i := 0
	eventually(t, 30*time.Second, "a write through the client reaching the new master", func() bool {
		i++
		if err := rdb.Set(ctx, probe, i, time.Minute).Err(); err != nil {
			return false
		}
		got, err := newMaster.Get(ctx, probe).Int()
		return err == nil && got == i
	})
	eventually(t, 10*time.Second, "background writes after the failover", func() bool { return okAfter.Load() > 10 })
	close(stop)
	<-done
	t.Logf("writes: %d ok, %d failed during the failover", ok.Load(), failed.Load())
}

func TestClose(t *testing.T) {
	ctx := context.Background()
	// Start the fixtures first: their goroutines are not the client's.
	srv := redistest.Shared(t)
	p := redistest.NewProxy(t, srv.Addr)
	var cfgs []Config
	for _, topo := range topologies {
		cfgs = append(cfgs, topo.cfg(t))
	}
	before := goleak.IgnoreCurrent()

	for i, topo := range topologies {
		cfg := cfgs[i]
		cfg.HealthCheckInterval = 50 * time.Millisecond
		c, err := Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Redis().Set(ctx, redistest.Prefix(t)+"k", "v", time.Minute).Err()
		time.Sleep(120 * time.Millisecond) // let the checker run
		if err := c.Close(); err != nil {
			t.Fatalf("%s: Close: %v", topo.name, err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("%s: second Close: %v", topo.name, err)
		}
		if err := c.Redis().Get(ctx, "x").Err(); !errors.Is(err, ErrClosed) {
			t.Fatalf("%s: Get after Close: %v, want ErrClosed", topo.name, err)
		}
	}

	// Close waits for a command in flight (its reply delayed by the proxy).
	c, err := Open(ctx, Config{Addr: p.Addr, ReadTimeout: 5 * time.Second, HealthCheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	key := redistest.Prefix(t) + "slow"
	p.SetDelay(300 * time.Millisecond)
	// An innermost hook marks the reply's arrival: the goroutine's own
	// report may come after Close returned even when the reply came before.
	var replied atomic.Bool
	c.Redis().AddHook(afterHook{func() { replied.Store(true) }})
	res := make(chan error, 1)
	go func() { res <- c.Redis().Set(ctx, key, "v", time.Minute).Err() }()
	eventually(t, 5*time.Second, "the command in flight", func() bool { return c.inflight.Load() == 1 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if !replied.Load() {
		t.Fatal("Close returned before the command in flight finished")
	}
	if err := <-res; err != nil {
		t.Fatalf("command in flight during Close: %v, want success", err)
	}
	p.SetDelay(0)
	p.Close()
	goleak.VerifyNone(t, before)
}

// afterHook calls after once a command's reply (or error) is back, before
// the outer hooks see it.
type afterHook struct{ after func() }

func (h afterHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h afterHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.after()
		return err
	}
}

func (h afterHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func TestStatsHistogram(t *testing.T) {
	t.Parallel()
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.observe(time.Duration(i) * time.Microsecond)
	}
	s := h.snapshot()
	check := func(name string, got, exact time.Duration) {
		if got < exact || got > exact*5/4+time.Microsecond {
			t.Errorf("%s = %v, want within [%v, +25%%]", name, got, exact)
		}
	}
	if s.Count != 1000 {
		t.Fatalf("Count = %d", s.Count)
	}
	check("P50", s.P50, 500*time.Microsecond)
	check("P90", s.P90, 900*time.Microsecond)
	check("P99", s.P99, 990*time.Microsecond)
	check("Max", s.Max, 1000*time.Microsecond)
	for ns := uint64(0); ns < 1<<20; ns += 7 {
		if i := bucketOf(ns); bucketUpper(i) <= ns || bucketUpper(i) > ns+ns/4+1 {
			t.Fatalf("ns %d in bucket %d with upper %d", ns, i, bucketUpper(i))
		}
	}
}

func TestParseInfo(t *testing.T) {
	t.Parallel()
	info := "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:42\r\n# Clients\r\nconnected_clients:3\r\n# Memory\r\nused_memory:1024\r\n# Stats\r\ninstantaneous_ops_per_sec:7\r\nexpired_keys:5\r\nevicted_keys:1\r\nkeyspace_hits:3\r\nkeyspace_misses:1\r\nbogus_line\r\nused_memory_human:1K\r\n# Keyspace\r\ndb0:keys=12,expires=3,avg_ttl=0\r\ndb3:keys=2,expires=0,avg_ttl=0\r\n"
	got := parseInfo(info)
	want := ServerStats{UsedMemory: 1024, KeyspaceHits: 3, KeyspaceMisses: 1, HitRatio: 0.75, ConnectedClients: 3, OpsPerSec: 7, EvictedKeys: 1, ExpiredKeys: 5, UptimeSeconds: 42, Keys: 14}
	if got != want {
		t.Fatalf("parseInfo = %+v, want %+v", got, want)
	}
	if v := infoField(info, "redis_version"); v != "7.0.15" {
		t.Fatalf("infoField = %q", v)
	}
}

// TestHealthDegraded: one paused cluster master makes the report degraded,
// with the failing node named.
func TestHealthDegraded(t *testing.T) {
	ctx := context.Background()
	cl := redistest.SharedCluster(t)
	c := open(t, Config{ClusterAddrs: cl.Addrs(), ReadTimeout: 200 * time.Millisecond, HealthCheckInterval: -1})
	if h := c.Health(ctx); h.Status != StatusUp || len(h.Nodes) != 3 {
		t.Fatalf("Health = %+v, want up with 3 nodes", h)
	}
	victim := cl.Masters[1]
	victim.Pause()
	h := c.Health(ctx)
	victim.Resume()
	if h.Status != StatusDegraded {
		t.Fatalf("Health with a paused master = %+v, want degraded", h)
	}
	for _, n := range h.Nodes {
		if (n.Addr == victim.Addr) == n.Up {
			t.Fatalf("node %+v: want only %s down", n, victim.Addr)
		}
	}
	if !strings.Contains(h.LastError, victim.Addr) {
		t.Fatalf("LastError %q does not name %s", h.LastError, victim.Addr)
	}
}
