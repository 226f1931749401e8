package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	grcache "github.com/go-redis/cache/v9"

	"github.com/rediskit/rediskit/bench/internal/rounds"
	"github.com/rediskit/rediskit/cache"
)

// batchSize is how many keys one operation of BenchmarkCacheBatch asks for.
const batchSize = 100

var batchRun atomic.Int64

// BenchmarkCacheBatch: one op asks for 100 keys that all miss and loads
// them, as a page that shows 100 products does on a cold cache. rediskit's
// GetOrSetMany (one loader call, leases for every key in one round trip per
// master) beside 100 calls of rediskit's GetOrSet and 100 calls of
// go-redis/cache's Once, each on its client; "hit" rows ask again for keys
// the op before stored. Reports ops/s (batches), keys/s, commands and
// loader calls per batch.
func BenchmarkCacheBatch(b *testing.B) {
	type op func(ctx context.Context, keys []string, loads *atomic.Int64) error
	rows := []struct {
		name  string
		setup func(b *testing.B) (*cmdCounter, op)
	}{
		{"rediskit-GetOrSetMany/adaptive", func(b *testing.B) (*cmdCounter, op) {
			c, cnt := newBenchCache(b, "rkbatch", cache.PipelineAdaptive)
			return cnt, func(ctx context.Context, keys []string, loads *atomic.Int64) error {
				out, err := c.GetOrSetMany(ctx, keys, time.Minute, func(_ context.Context, miss []string) (map[string][]byte, error) {
					loads.Add(1)
					m := make(map[string][]byte, len(miss))
					for _, k := range miss {
						m[k] = value100
					}
					return m, nil
				})
				if err == nil && len(out) != len(keys) {
					err = fmt.Errorf("GetOrSetMany returned %d of %d", len(out), len(keys))
				}
				return err
			}
		}},
		{"rediskit-GetOrSet-x100/adaptive", func(b *testing.B) (*cmdCounter, op) {
			c, cnt := newBenchCache(b, "rkbatch1", cache.PipelineAdaptive)
			return cnt, func(ctx context.Context, keys []string, loads *atomic.Int64) error {
				load := func(context.Context) ([]byte, error) { loads.Add(1); return value100, nil }
				for _, k := range keys {
					if _, err := c.GetOrSet(ctx, k, time.Minute, load); err != nil {
						return err
					}
				}
				return nil
			}
		}},
	}
	for _, m := range goredisModes {
		rows = append(rows, struct {
			name  string
			setup func(b *testing.B) (*cmdCounter, op)
		}{"go-redis-cache-Once-x100/" + m.name, func(b *testing.B) (*cmdCounter, op) {
			rdb, cnt := newBenchClient(b)
			c := grcache.New(&grcache.Options{Redis: m.pick(b, rdb)})
			return cnt, func(ctx context.Context, keys []string, loads *atomic.Int64) error {
				for _, k := range keys {
					var v []byte
					if err := c.Once(&grcache.Item{Ctx: ctx, Key: k, Value: &v, TTL: time.Minute,
						Do: func(*grcache.Item) (any, error) { loads.Add(1); return value100, nil }}); err != nil {
						return err
					}
				}
				return nil
			}
		}})
	}
	for r := range rounds.N() {
		for _, kind := range []string{"miss", "hit"} {
			for _, g := range []int{1, 16} {
				for _, row := range rounds.InOrder(rows, r) {
					b.Run(fmt.Sprintf("%s/g=%d/%s", kind, g, row.name), func(b *testing.B) {
						flushBench(b)
						cnt, do := row.setup(b)
						run := strconv.FormatInt(batchRun.Add(1), 10)
						keysOf := func(i int) []string {
							keys := make([]string, batchSize)
							for j := range keys {
								keys[j] = "batch:" + run + ":" + strconv.Itoa(i) + ":" + strconv.Itoa(j)
							}
							return keys
						}
						var loads atomic.Int64
						if kind == "hit" {
							// Every op reads the same batch, stored before the timer starts.
							keys := keysOf(0)
							if err := do(context.Background(), keys, &loads); err != nil {
								b.Fatal(err)
							}
							loads.Store(0)
							runConcurrent(b, g, cnt, func(ctx context.Context, _ int) error { return do(ctx, keys, &loads) })
						} else {
							runConcurrent(b, g, cnt, func(ctx context.Context, i int) error { return do(ctx, keysOf(i), &loads) })
						}
						b.ReportMetric(float64(b.N*batchSize)/b.Elapsed().Seconds(), "keys/s")
						b.ReportMetric(float64(loads.Load())/float64(b.N), "loader-calls/op")
					})
				}
			}
		}
	}
}
