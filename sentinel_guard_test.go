package rediskit

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/cache"
	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/retry"
)

// The race go-redis leaves open: it asks a sentinel for the master, gets the
// old one (the sentinel has not noticed its death yet), and connects only
// once the old master is back — restarted without persistence, empty, and
// answering as master until a sentinel converts it, about 10 s later. The
// test holds that dial (testDialGate) until the failover is over and the old
// master restarted, then lets it go on: the guard must refuse the
// connection, and neither the client's commands nor the near tier's
// tracking connection may reach the old master. Without the guard the GET
// below reads the empty old master and returns redis.Nil.
func TestSentinelGuardRefusesRestartedOldMaster(t *testing.T) {
	ctx := context.Background()
	s := redistest.StartSentinel(t)
	c := open(t, Config{MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs(),
		// The held dial must outlive the failover.
		DialTimeout: 30 * time.Second, ReadTimeout: time.Second, HealthCheckInterval: -1, BreakerThreshold: -1})
	rdb := c.Redis()
	dials := &dialLog{}
	rdb.AddHook(dials)
	near, err := cache.New(rdb, cache.Options{Prefix: "guard", Near: &cache.NearOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	defer near.Close()
	eventually(t, 10*time.Second, "the near tier tracking the master", func() bool { return near.NearStats().Serving })

	key := redistest.Prefix(t) + "k"
	if err := rdb.Set(ctx, key, "acknowledged", 0).Err(); err != nil {
		t.Fatal(err)
	}
	old, next := s.Master, s.Replica
	eventually(t, 5*time.Second, "the write on the replica", func() bool {
		v, err := next.Do(ctx, "GET", key)
		return err == nil && v == "acknowledged"
	})

	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	gate := func(addr string) {
		if addr == old.Addr {
			once.Do(func() { close(held) })
			<-release
		}
	}
	testDialGate.Store(&gate)
	t.Cleanup(func() { testDialGate.Store(nil) })
	rel := sync.OnceFunc(func() { close(release) })
	defer rel() // on a Fatal too
	old.Kill()

	got := make(chan *redis.StringCmd, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
		defer cancel()
		got <- rdb.Get(ctx, key)
	}()
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("no dial to the dead master's address: the race was not set up")
	}
	// The failover completes, and the old master comes back empty.
	awaitFailoverDone(t, s, next.Addr)
	if err := old.Server.Restart(); err != nil {
		t.Fatal(err)
	}
	if st := redistest.State(ctx, old); st.Role != "master" || st.Keys != 0 {
		t.Fatalf("restarted old master: %s, want an empty master", st)
	}
	since := time.Now()
	rel()

	cmd := <-got
	if v, err := cmd.Result(); err != nil || v != "acknowledged" {
		t.Fatalf("GET after the failover = %q, %v; want the acknowledged value from %s", v, err, next.Addr)
	}
	if err := rdb.Set(ctx, key+":after", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// The near tier re-arms on the new master.
	eventually(t, 15*time.Second, "the near tier tracking again", func() bool { return near.NearStats().Serving })

	// Nothing of ours reached the old master: no connection was handed to
	// go-redis, no key was written, no tracking connection is open there.
	refused := 0
	for _, d := range dials.since(since) {
		if d.addr == old.Addr && d.err == nil {
			t.Errorf("the client connected to the restarted old master %s", old.Addr)
		}
		if errors.Is(d.err, ErrNotMaster) {
			refused++
			if retry.Classify(d.err) != retry.ClassTransient || !retry.NotApplied(d.err) {
				t.Errorf("refused dial: class %v, not applied %v; want transient and not applied", retry.Classify(d.err), retry.NotApplied(d.err))
			}
		}
	}
	if refused == 0 {
		t.Errorf("the guard refused no dial: %+v", dials.since(since))
	}
	st := redistest.State(ctx, old)
	if st.Role == "master" && st.Keys != 0 {
		t.Errorf("the old master, still a master, holds %d keys: something wrote to it", st.Keys)
	}
	if list, err := old.Do(ctx, "CLIENT", "LIST"); err != nil {
		t.Error(err)
	} else if strings.Contains(list.(string), "name=rediskit-near") {
		t.Errorf("the near tier's tracking connection is on the old master:\n%s", list)
	}
	if v, err := next.Do(ctx, "GET", key+":after"); err != nil || v != "x" {
		t.Errorf("the write after the failover is not on the new master: %v, %v", v, err)
	}
	t.Logf("%d dials refused; old master now %s", refused, st)
}

// awaitFailoverDone waits until the sentinel's master entry is addr with no
// failover in progress.
func awaitFailoverDone(t *testing.T, s *redistest.Sentinel, addr string) {
	t.Helper()
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.SentinelAddrs()[0]})
	defer sc.Close()
	eventually(t, 30*time.Second, "the failover to "+addr, func() bool {
		m, err := sc.Master(context.Background(), s.MasterName).Result()
		return err == nil && net.JoinHostPort(m["ip"], m["port"]) == addr && m["flags"] == "master"
	})
}

// dialLog records every dial's outcome and the address it reached.
type dialLog struct {
	mu    sync.Mutex
	dials []dialed
}

type dialed struct {
	at   time.Time
	addr string // the remote address, or "" on error
	err  error
}

func (l *dialLog) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		cn, err := next(ctx, network, addr)
		d := dialed{at: time.Now(), err: err}
		if err == nil {
			d.addr = cn.RemoteAddr().String()
		}
		l.mu.Lock()
		l.dials = append(l.dials, d)
		l.mu.Unlock()
		return cn, err
	}
}

func (l *dialLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (l *dialLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (l *dialLog) since(t time.Time) []dialed {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []dialed
	for _, d := range l.dials {
		if !d.at.Before(t) {
			out = append(out, d)
		}
	}
	return out
}
