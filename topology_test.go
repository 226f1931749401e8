package rediskit

import (
	"context"
	"testing"
	"time"

	"github.com/rediskit/rediskit/internal/redistest"
)

// After a master dies and its replica takes over, the client finds the new
// master by itself: go-redis alone keeps dialling the dead node until its
// 60 s state reload (redistest's TestClusterKillMaster shows it).
func TestClusterFollowsPromotedReplica(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, redistest.WithReplicas(1))
	c := open(t, Config{ClusterAddrs: cl.Addrs(), DialTimeout: 500 * time.Millisecond, ReadTimeout: 500 * time.Millisecond,
		BreakerThreshold: 2, BreakerCooldown: 200 * time.Millisecond, HealthCheckInterval: 200 * time.Millisecond})
	rdb := c.Redis()
	ctx := context.Background()
	key := redistest.Prefix(t) + "k"
	if err := rdb.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	owner := -1
	for i, m := range cl.Masters {
		if n, err := m.Do(ctx, "EXISTS", key); err == nil && n.(int64) == 1 {
			owner = i
			// Replication is asynchronous: wait until the replica has it.
			if n, err := m.Do(ctx, "WAIT", 1, 5000); err != nil || n.(int64) != 1 {
				t.Fatalf("WAIT: %v, %v", n, err)
			}
		}
	}
	if owner < 0 {
		t.Fatal("no master holds the key")
	}
	cl.KillMaster(t, owner)
	// Within a few seconds (one failed attempt triggers the reload, the
	// retry goes to the new master), a read succeeds again.
	eventually(t, 5*time.Second, "GET after the failover", func() bool {
		v, err := rdb.Get(ctx, key).Result()
		return err == nil && v == "v"
	})
	if err := rdb.Set(ctx, key, "w", 0).Err(); err != nil {
		t.Fatalf("SET on the promoted master: %v", err)
	}
	// The dead node left the topology: its open breaker no longer counts.
	eventually(t, 5*time.Second, "the breaker state closed after the failover", func() bool {
		return c.BreakerState() == BreakerClosed
	})
}
