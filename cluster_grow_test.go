package rediskit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
)

// Masters added to a running Cluster get their own breaker and appear in
// the health report without any call from the application; a master
// removed with del-node leaves the report and its breaker no longer counts
// in BreakerState.
func TestClusterGrowShrinkBreakersAndHealth(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t)
	c := open(t, Config{ClusterAddrs: cl.Addrs(), BreakerThreshold: 2, BreakerCooldown: time.Minute,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, HealthCheckInterval: -1})
	rdb := c.Redis().(*redis.ClusterClient)
	ctx := context.Background()
	prefix := redistest.Prefix(t)

	// Two masters joined, each given 100 slots of an original master
	// (internal/loadtest's TestClusterGrowShrink runs the full rebalance).
	var added []*redistest.Server
	for i := range 2 {
		s, err := cl.AddMaster(ctx)
		if err != nil {
			t.Fatal(err)
		}
		added = append(added, s)
		if err := cl.Reshard(ctx, cl.Masters[i], s, 100); err != nil {
			t.Fatal(err)
		}
		if n, err := redistest.SlotsOf(ctx, s); err != nil || n != 100 {
			t.Fatalf("new master %s serves %d slots after the reshard (%v), want 100", s.Addr, n, err)
		}
	}
	// go-redis reloads the slot map at least every 10 s: the health check
	// then lists every master, each with a breaker, without a command
	// from the application.
	waitFor(t, "health lists the 5 masters", func() bool {
		h := c.Health(ctx)
		return h.Status == StatusUp && len(upAddrs(h)) == 5
	})
	h := c.Health(ctx)
	for _, s := range added {
		if !slices.Contains(upAddrs(h), s.Addr) {
			t.Fatalf("health does not list new master %s: %+v", s.Addr, h.Nodes)
		}
		if !c.hasBreaker(s.Addr) {
			t.Fatalf("no breaker for new master %s", s.Addr)
		}
	}

	// Remove the first new master; then kill the second: its own breaker
	// opens, and keys on the original masters keep being served.
	gone := added[0]
	if err := cl.RemoveMasters(ctx, gone); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "health drops the removed master", func() bool {
		return !slices.Contains(nodeAddrs(c.Health(ctx)), gone.Addr)
	})
	if len(c.breakers.current()) != 4 {
		t.Fatalf("%d breakers in the topology after del-node, want 4", len(c.breakers.current()))
	}

	victim := added[1]
	var dead, alive string
	for i := 0; dead == "" || alive == ""; i++ {
		k := fmt.Sprintf("%sk%d", prefix, i)
		m, err := rdb.MasterForKey(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if m.Options().Addr == victim.Addr {
			dead = k
		} else {
			alive = k
		}
	}
	victim.Kill()
	for i := 0; c.BreakerState() != BreakerOpen; i++ {
		if i == 50 {
			t.Fatal("the new master's breaker never opened after it was killed")
		}
		_ = rdb.Get(ctx, dead).Err()
	}
	if err := rdb.Get(ctx, dead).Err(); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("GET on the killed new master: %v, want ErrCircuitOpen", err)
	}
	if err := rdb.Set(ctx, alive, "v", 0).Err(); err != nil {
		t.Fatalf("SET on an original master while the new one's breaker is open: %v", err)
	}
}

func (c *Client) hasBreaker(addr string) bool {
	c.breakers.mu.Lock()
	defer c.breakers.mu.Unlock()
	_, ok := c.breakers.byAddr[addr]
	return ok && !c.breakers.gone[addr]
}

func nodeAddrs(h Health) []string {
	var out []string
	for _, n := range h.Nodes {
		out = append(out, n.Addr)
	}
	return out
}

func upAddrs(h Health) []string {
	var out []string
	for _, n := range h.Nodes {
		if n.Up {
			out = append(out, n.Addr)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
