package rediskit

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/retry"
)

// The hook overhead: GET of an existing key through Client (stats, retry
// and breaker hooks) versus a bare go-redis client with default options, on
// one goroutine and in parallel.
//
//	go test -run '^$' -bench 'BenchmarkGet' -benchmem -count 5 .

func benchClients(b *testing.B) (client, bare redis.UniversalClient, key string) {
	s := redistest.Shared(b)
	c := open(b, Config{Addr: s.Addr, HealthCheckInterval: -1})
	key = redistest.Prefix(b) + "k"
	if err := c.Redis().Set(context.Background(), key, "value", 0).Err(); err != nil {
		b.Fatal(err)
	}
	return c.Redis(), s.Client(b), key
}

func benchGet(b *testing.B, rdb redis.UniversalClient, key string) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := rdb.Get(ctx, key).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

func benchGetParallel(b *testing.B, rdb redis.UniversalClient, key string) {
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := rdb.Get(ctx, key).Err(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkGet_Client(b *testing.B) {
	c, _, key := benchClients(b)
	benchGet(b, c, key)
}

func BenchmarkGet_Bare(b *testing.B) {
	_, bare, key := benchClients(b)
	benchGet(b, bare, key)
}

func BenchmarkGetParallel_Client(b *testing.B) {
	c, _, key := benchClients(b)
	benchGetParallel(b, c, key)
}

func BenchmarkGetParallel_Bare(b *testing.B) {
	_, bare, key := benchClients(b)
	benchGetParallel(b, bare, key)
}

// BenchmarkHooks_NoNetwork isolates the hooks' own cost: the same chain in
// front of a no-op, so the network round trip does not hide it.
func BenchmarkHooks_NoNetwork(b *testing.B) {
	c := &Client{retry: retry.NewHook(retry.Policy{}), drained: make(chan struct{})}
	noop := func(context.Context, redis.Cmder) error { return nil }
	chain := statsHook{c}.ProcessHook(c.retry.ProcessHook(breakerHook{b: newBreaker(5, 0, nil)}.ProcessHook(noop)))
	ctx := context.Background()
	cmd := redis.NewStringCmd(ctx, "get", "k")
	b.ReportAllocs()
	for b.Loop() {
		_ = chain(ctx, cmd)
	}
}
