package cache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/retry"
)

// TestDegradationWithKilledServer kills the server(s) under a Cache (on
// Sentinel: the master, the replica and the sentinel): with
// FailOpen GetOrSet serves the loader's value, with FailClosed it returns an
// error matching retry.ErrUnavailable; neither hangs.
func TestDegradationWithKilledServer(t *testing.T) {
	for _, topology := range []string{"standalone", "cluster", "sentinel"} {
		t.Run(topology, func(t *testing.T) {
			var rdb redis.UniversalClient
			var kill func()
			switch topology {
			case "standalone":
				srv := redistest.Start(t)
				rdb = srv.Client(t, func(o *redis.Options) { o.MaxRetries = -1 })
				kill = srv.Kill
			case "sentinel":
				s := redistest.StartSentinel(t)
				rdb = s.Client(t, func(o *redis.FailoverOptions) { o.MaxRetries = -1 })
				kill = func() {
					for _, srv := range append([]*redistest.Server{s.Master, s.Replica}, s.Sentinels...) {
						srv.Kill()
					}
				}
			default:
				cl := redistest.StartCluster(t)
				rdb = cl.Client(t, func(o *redis.ClusterOptions) { o.MaxRetries = -1; o.MaxRedirects = 1 })
				kill = func() {
					for _, m := range cl.Masters {
						m.Kill()
					}
				}
			}
			open := newCache(t, rdb, Options{Degrade: FailOpen, LoadTimeout: time.Second})
			closed := newCache(t, rdb, Options{Degrade: FailClosed, LoadTimeout: time.Second})
			// Warm the client (slot map, command info) as a running service has.
			if _, err := open.GetOrSet(context.Background(), "warm", time.Minute, func(context.Context) ([]byte, error) { return []byte("w"), nil }); err != nil {
				t.Fatal(err)
			}
			kill()

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var calls int
			v, err := open.GetOrSet(ctx, "k", time.Minute, func(context.Context) ([]byte, error) {
				calls++
				return []byte("from-db"), nil
			})
			if err != nil || string(v) != "from-db" || calls != 1 {
				t.Fatalf("fail-open GetOrSet = %q, %v (calls %d)", v, err, calls)
			}
			_, err = closed.GetOrSet(ctx, "k", time.Minute, func(context.Context) ([]byte, error) {
				t.Error("fail-closed called the loader")
				return nil, nil
			})
			if !errors.Is(err, retry.ErrUnavailable) {
				t.Fatalf("fail-closed GetOrSet = %v, want retry.ErrUnavailable", err)
			}
			if _, _, err := open.Get(ctx, "k"); err == nil || !retry.IsUnavailable(err) {
				t.Fatalf("Get with the server down = %v, want an unavailable error", err)
			}
			if ctx.Err() != nil {
				t.Fatal("calls ran into the 20s test deadline")
			}
		})
	}
}
