package rediskit

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
)

// On a Cluster each node has its own breaker: a dead master makes its own
// slots fail fast, and the other masters keep serving.
func TestClusterBreakerPerNode(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t)
	c := open(t, Config{ClusterAddrs: cl.Addrs(), BreakerThreshold: 2, BreakerCooldown: time.Minute,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, HealthCheckInterval: -1})
	rdb := c.Redis().(*redis.ClusterClient)
	ctx := context.Background()
	prefix := redistest.Prefix(t)

	// One key on the master to kill, one on another master.
	victim := cl.Masters[0]
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
			t.Fatal("the dead master's breaker never opened")
		}
		_ = rdb.Get(ctx, dead).Err()
	}
	if err := rdb.Get(ctx, dead).Err(); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("GET on the dead master with its breaker open: %v, want ErrCircuitOpen", err)
	}
	// The healthy masters are not refused.
	for range 20 {
		if err := rdb.Set(ctx, alive, "v", 0).Err(); err != nil {
			t.Fatalf("SET on a healthy master while another's breaker is open: %v", err)
		}
	}
	st, _ := c.Stats(ctx)
	if st.Breaker != BreakerOpen || st.BreakerOpens != 1 || st.BreakerRejected == 0 {
		t.Fatalf("stats: breaker %v, %d opens, %d rejected; want open, 1, > 0", st.Breaker, st.BreakerOpens, st.BreakerRejected)
	}
}
