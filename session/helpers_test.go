package session_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/session"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// counter is a go-redis hook that counts round trips: one per processed
// command, one per pipeline (however many commands it carries).
type counter struct {
	mu    sync.Mutex
	trips int
	cmds  []string
}

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.mu.Lock()
		c.trips++
		c.cmds = append(c.cmds, cmd.Name())
		c.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.mu.Lock()
		c.trips++
		for _, cmd := range cmds {
			c.cmds = append(c.cmds, cmd.Name())
		}
		c.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (c *counter) reset() {
	c.mu.Lock()
	c.trips, c.cmds = 0, nil
	c.mu.Unlock()
}

func (c *counter) get() (int, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.trips, append([]string(nil), c.cmds...)
}

// env is one store on one topology, with the hook on its client.
type env struct {
	rdb   redis.UniversalClient
	store *session.Store
	count *counter
	opts  session.Options
}

// topologies names the deployments every store test runs on.
var topologies = []string{"standalone", "cluster", "sentinel"}

// topologyClient returns a fresh client of the shared deployment topo:
// a standalone server, a 3-master cluster, or a master with a replica behind
// Sentinel (a failover client).
func topologyClient(t *testing.T, topo string) redis.UniversalClient {
	t.Helper()
	switch topo {
	case "cluster":
		return redistest.SharedCluster(t).Client(t)
	case "sentinel":
		return redistest.SharedSentinel(t).Client(t)
	}
	return redistest.Shared(t).Client(t)
}

// forEachTopology runs fn as one subtest per topology, each with a fresh
// client, a counting hook and a unique key prefix.
func forEachTopology(t *testing.T, opts session.Options, fn func(t *testing.T, e *env)) {
	t.Helper()
	for _, topo := range topologies {
		t.Run(topo, func(t *testing.T) {
			fn(t, newEnv(t, topologyClient(t, topo), opts))
		})
	}
}

func newEnv(t *testing.T, rdb redis.UniversalClient, opts session.Options) *env {
	t.Helper()
	c := &counter{}
	rdb.AddHook(c)
	if opts.Prefix == "" {
		opts.Prefix = redistest.Prefix(t)
	}
	st, err := session.New(rdb, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Preload(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.reset()
	return &env{rdb: rdb, store: st, count: c, opts: opts}
}

// keysWith lists every key with the prefix on every master, but a
// Delete's tombstones, which it checks expire within 10 s.
func keysWith(t *testing.T, rdb redis.UniversalClient, prefix string) []string {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	var out []string
	scan := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			k := iter.Val()
			if strings.Contains(k, "}:d:") {
				// A Delete's tombstone (Store.Delete): it must expire
				// within 10 s, and it is not a key left behind.
				if ttl, err := c.PTTL(ctx, k).Result(); err != nil || ttl <= 0 || ttl > 10*time.Second {
					return fmt.Errorf("tombstone %s has TTL %v (%v), want at most 10 s", k, ttl, err)
				}
				continue
			}
			mu.Lock()
			out = append(out, k)
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, scan)
	case *redis.Client:
		err = scan(ctx, c)
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fakeClock is a settable Options.Clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}
