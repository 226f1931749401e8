package cache

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
)

// BenchmarkMGet100 reads 100 keys in random slots with MGet on the harness's
// 3-master cluster (and on a standalone server for comparison), reporting
// ops/s, commands and round trips per MGet. Run:
//
//	go test ./cache -run '^$' -bench MGet100 -benchtime 3s
func BenchmarkMGet100(b *testing.B) {
	for _, topology := range []string{"cluster", "standalone"} {
		b.Run(topology, func(b *testing.B) {
			cnt := &counter{trips: map[string]int{}}
			var rdb redis.UniversalClient
			if topology == "cluster" {
				cc := redistest.SharedCluster(b).Client(b)
				cc.OnNewNode(func(n *redis.Client) { n.AddHook(nodeHook{c: cnt, addr: n.Options().Addr}) })
				rdb = cc
			} else {
				c := redistest.Shared(b).Client(b)
				c.AddHook(nodeHook{c: cnt, addr: "standalone"})
				rdb = c
			}
			c := newCache(b, rdb, Options{})
			ctx := context.Background()
			items := make(map[string][]byte, 100)
			keys := make([]string, 0, 100)
			for i := range 100 {
				k := "key-" + strconv.Itoa(i)
				items[k] = make([]byte, 100)
				keys = append(keys, k)
			}
			if err := c.MSet(ctx, items, time.Hour); err != nil {
				b.Fatal(err)
			}
			if _, err := c.MGet(ctx, keys); err != nil {
				b.Fatal(err)
			}
			cnt.reset()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				got, err := c.MGet(ctx, keys)
				if err != nil || len(got) != 100 {
					b.Fatalf("MGet: %d hits, %v", len(got), err)
				}
			}
			b.StopTimer()
			cmds, trips, perNode, _ := cnt.snapshot()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			b.ReportMetric(float64(cmds)/float64(b.N), "cmds/op")
			b.ReportMetric(float64(trips)/float64(b.N), "roundtrips/op")
			b.ReportMetric(float64(len(perNode)), "nodes")
		})
	}
}

// BenchmarkOps measures one call of each single-key operation on a
// standalone server with a plain go-redis client, in each Options.Pipelining
// mode (adaptive is the default), reporting commands and round trips per call:
// a GetOrSet hit and miss, a Get hit, a Set and an Incr. Run:
//
//	go test ./cache -run '^$' -bench 'Ops' -benchmem
func BenchmarkOps(b *testing.B) {
	for _, mode := range []Pipelining{PipelineOff, PipelineAdaptive, PipelineAlways} {
		b.Run(mode.String(), func(b *testing.B) {
			srv := redistest.Shared(b)
			cnt := &counter{trips: map[string]int{}}
			rdb := srv.Client(b)
			rdb.AddHook(nodeHook{c: cnt, addr: srv.Addr})
			c := newCache(b, rdb, Options{Pipelining: mode})
			ctx := context.Background()
			value := make([]byte, 100)
			load := func(context.Context) ([]byte, error) { return value, nil }
			if err := c.Set(ctx, "hit", value, time.Hour); err != nil {
				b.Fatal(err)
			}
			ops := []struct {
				name string
				op   func(i int) error
			}{
				{"GetOrSetHit", func(int) error {
					_, err := c.GetOrSet(ctx, "hit", time.Hour, load)
					return err
				}},
				{"GetOrSetMiss", func(i int) error {
					_, err := c.GetOrSet(ctx, "miss-"+strconv.Itoa(i), time.Minute, load)
					return err
				}},
				{"GetHit", func(int) error {
					_, ok, err := c.Get(ctx, "hit")
					if err == nil && !ok {
						b.Fatal("Get missed")
					}
					return err
				}},
				{"Set", func(int) error { return c.Set(ctx, "set", value, time.Minute) }},
				{"Incr", func(int) error {
					_, err := c.Incr(ctx, "counter", 1, time.Minute)
					return err
				}},
			}
			for _, o := range ops {
				b.Run(o.name, func(b *testing.B) {
					cnt.reset()
					b.ReportAllocs()
					i := 0
					for b.Loop() {
						if err := o.op(i); err != nil {
							b.Fatal(err)
						}
						i++
					}
					b.StopTimer()
					cmds, trips, _, _ := cnt.snapshot()
					b.ReportMetric(float64(cmds)/float64(b.N), "cmds/op")
					b.ReportMetric(float64(trips)/float64(b.N), "roundtrips/op")
				})
			}
		})
	}
}
