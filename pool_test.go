package rediskit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
)

// TestWatchConflicts runs 20 goroutines × 20 optimistic increments
// (WATCH, GET, MULTI/SET/EXEC, retried on redis.TxFailedErr) on one key of
// the shared cluster, with the default Cluster pool and with one twice as
// big (the size rediskit used before). Both must end at 400; the numbers of
// conflicts are logged, as they depend on scheduling: the bigger pool lets
// more transactions overlap, and more of them fail.
func TestWatchConflicts(t *testing.T) {
	cl := redistest.SharedCluster(t)
	for _, tc := range []struct {
		name string
		pool int
	}{{"default", 0}, {"double", 2 * DefaultPoolSize(Cluster)}} {
		t.Run(tc.name, func(t *testing.T) {
			c := open(t, Config{ClusterAddrs: cl.Addrs(), PoolSize: tc.pool})
			rdb := c.Redis()
			ctx := context.Background()
			key := redistest.Prefix(t) + "n"
			var conflicts atomic.Int64
			var wg sync.WaitGroup
			for range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 20 {
						for {
							err := rdb.Watch(ctx, func(tx *redis.Tx) error {
								n, err := tx.Get(ctx, key).Int()
								if err != nil && !errors.Is(err, redis.Nil) {
									return err
								}
								_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
									p.Set(ctx, key, n+1, 0)
									return nil
								})
								return err
							}, key)
							if errors.Is(err, redis.TxFailedErr) {
								conflicts.Add(1)
								continue
							}
							if err != nil {
								t.Error(err)
							}
							break
						}
					}
				}()
			}
			wg.Wait()
			if v, err := rdb.Get(ctx, key).Int(); err != nil || v != 400 {
				t.Fatalf("counter = %d, %v; want 400", v, err)
			}
			t.Logf("PoolSize %d per node: %d conflicts for 400 increments", c.Config().PoolSize, conflicts.Load())
		})
	}
}
