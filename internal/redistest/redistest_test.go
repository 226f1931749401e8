package redistest

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { Main(m) }

func TestServerKillRestartPause(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	rdb := s.Client(t, func(o *redis.Options) { o.MaxRetries = -1; o.ReadTimeout = 200 * time.Millisecond })
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	if s.Running() {
		t.Fatal("running after Kill")
	}
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("PING succeeded on a killed server")
	}
	s.Restart(t)
	if v, err := rdb.Get(ctx, "k").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("after restart without persistence: got %q, %v; want redis.Nil", v, err)
	}
	s.Pause()
	var ne net.Error
	if err := rdb.Ping(ctx).Err(); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("PING on a paused server: %v; want a timeout", err)
	}
	s.Resume()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after resume: %v", err)
	}
}

func TestProxyFaults(t *testing.T) {
	s := Shared(t)
	p := NewProxy(t, s.Addr)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr, MaxRetries: -1, ReadTimeout: 100 * time.Millisecond, PoolSize: 1})
	defer rdb.Close()
	key := Prefix(t) + "k"
	if err := rdb.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	p.SetDelay(300 * time.Millisecond)
	if err := rdb.Incr(ctx, key+"n").Err(); err == nil {
		t.Fatal("INCR through a 300 ms delay with a 100 ms read timeout succeeded")
	}
	p.SetDelay(0)
	direct := s.Client(t)
	// The delayed INCR still reached the server: the outcome was ambiguous.
	waitFor(t, func() bool { n, _ := direct.Get(ctx, key+"n").Int(); return n == 1 })

	p.SetBlackHole(true)
	if err := rdb.Get(ctx, key).Err(); err == nil {
		t.Fatal("GET through a black hole succeeded")
	}
	p.SetBlackHole(false)
	p.CutAll()
	if v, err := rdb.Get(ctx, key).Result(); err != nil || v != "v" {
		t.Fatalf("GET after cut: %q, %v", v, err)
	}

	if err := p.SetDown(true); err != nil {
		t.Fatal(err)
	}
	var ne *net.OpError
	if err := rdb.Get(ctx, key).Err(); !errors.As(err, &ne) || ne.Op != "dial" {
		t.Fatalf("GET through a proxy that is down: %v, want a refused dial", err)
	}
	if err := p.SetDown(false); err != nil {
		t.Fatal(err)
	}
	// go-redis's pool probes a failed address again once a second.
	waitFor(t, func() bool { v, err := rdb.Get(ctx, key).Result(); return err == nil && v == "v" })
}

func TestCluster(t *testing.T) {
	c := SharedCluster(t)
	if len(c.Masters) != 3 {
		t.Fatalf("masters = %d", len(c.Masters))
	}
	rdb := c.Client(t)
	ctx := context.Background()
	prefix := Prefix(t)
	for i := range 100 {
		if err := rdb.Set(ctx, prefix+string(rune('a'+i%26))+string(rune('a'+i/26)), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var masters atomic.Int32 // ForEachMaster runs the callbacks concurrently
	err := rdb.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, err := m.DBSize(ctx).Result()
		if err == nil && n == 0 {
			t.Errorf("master %s holds no key: slots not spread", m.Options().Addr)
		}
		masters.Add(1)
		return err
	})
	if err != nil || masters.Load() != 3 {
		t.Fatalf("ForEachMaster: %v, %d masters", err, masters.Load())
	}
}

func TestSentinelFailover(t *testing.T) {
	s := StartSentinel(t)
	ctx := context.Background()
	rdb := s.Client(t)
	if err := rdb.Set(ctx, "k", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	old := s.Master.Addr
	s.Failover(t)
	if s.Master.Addr == old {
		t.Fatal("master unchanged after failover")
	}
	waitFor(t, func() bool { return rdb.Incr(ctx, "k").Err() == nil })
	if addr, _ := s.MasterAddr(ctx); addr != s.Master.Addr {
		t.Fatalf("sentinel names %s, want %s", addr, s.Master.Addr)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestClusterKillMaster(t *testing.T) {
	c := StartCluster(t, WithReplicas(1))
	rdb := c.Client(t)
	ctx := context.Background()
	key := Prefix(t) + "k"
	if err := rdb.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	owner, err := rdb.MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	i := -1
	for j, m := range c.Masters {
		if m.Addr == owner.Options().Addr {
			i = j
		}
	}
	if i < 0 {
		t.Fatalf("owner %s is not among the masters", owner.Options().Addr)
	}
	// Replication is asynchronous: wait until the replica has the write.
	if n, err := owner.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT: %d replicas, %v", n, err)
	}
	old := c.Masters[i].Addr
	promoted := c.KillMaster(t, i)
	if promoted.Addr == old || c.Masters[i] != promoted {
		t.Fatalf("Masters[%d] = %s after failover, promoted %s", i, c.Masters[i].Addr, promoted.Addr)
	}
	// The replica had the key: it was in sync before the kill.
	var last error
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last GET error: %v", last)
		}
	})
	waitFor(t, func() bool {
		// go-redis reloads the slot map only on MOVED or every 60 s: tell
		// it, on every try, since the node a reload asks may not have heard
		// of the promotion yet.
		rdb.ReloadState(ctx)
		v, err := rdb.Get(ctx, key).Result()
		last = err
		return err == nil && v == "v"
	})
}

// A failed reshard's output keeps its error and the slot it stopped at, and
// counts the progress lines before them instead of showing them.
func TestCLIOutput(t *testing.T) {
	out := "Ready to move 3 slots.\n" +
		"Moving slot 0 from a:1 to b:2: \n" +
		"Moving slot 1 from a:1 to b:2: \n" +
		"Moving slot 2 from a:1 to b:2: [ERR] Calling MIGRATE: IOERR\n" +
		"*** Please fix your cluster problems\n"
	want := "Ready to move 3 slots.\n" +
		"(1 \"Moving slot\" lines left out)\n" +
		"Moving slot 1 from a:1 to b:2: \n" +
		"Moving slot 2 from a:1 to b:2: [ERR] Calling MIGRATE: IOERR\n" +
		"*** Please fix your cluster problems\n"
	if got := cliOutput([]byte(out)); got != want {
		t.Errorf("cliOutput:\n%s\nwant:\n%s", got, want)
	}
	if got := cliOutput([]byte("Moving slot 7 from a:1 to b:2: ")); got != "Moving slot 7 from a:1 to b:2: " {
		t.Errorf("cliOutput of a lone line: %q", got)
	}
}
