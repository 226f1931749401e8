package cache

import (
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rediskit/rediskit/internal/redistest"
)

// TestSharedClientLifecycle: two Caches on one client, both with
// Options.AutoPipeline (so they share the client's one AutoPipeliner), one
// with a near tier, next to the caller's own commands on the client and on
// that AutoPipeliner. Closing either Cache first leaves the other Cache, the
// AutoPipeliner and the client working; closing the client last leaves no
// goroutine behind (goleak). On every deployment, in both orders.
func TestSharedClientLifecycle(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		for _, nearFirst := range []bool{false, true} {
			t.Run("close near cache first="+strconv.FormatBool(nearFirst), func(t *testing.T) {
				testSharedClientLifecycle(t, tp, nearFirst)
			})
		}
	})
}

func testSharedClientLifecycle(t *testing.T, tp topo, nearFirst bool) {
	ctx := ctxT(t)
	ignore := goleak.IgnoreCurrent()
	rdb := tp.client(t) // closed below; the cleanup's second Close is a no-op
	prefix := strings.TrimSuffix(redistest.Prefix(t), ":")
	plain, err := New(rdb, Options{Prefix: prefix + "-plain", Pipelining: PipelineAlways})
	if err != nil {
		t.Fatal(err)
	}
	withNear, err := New(rdb, Options{Prefix: prefix + "-near", Pipelining: PipelineAlways, Near: &NearOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	ap, err := rdb.AutoPipeline()
	if err != nil {
		t.Fatal(err)
	}
	if plain.reader.AutoPipeliner() != ap || withNear.reader.AutoPipeliner() != ap {
		t.Fatal("the Caches do not share the client's AutoPipeliner; the test would prove nothing")
	}
	waitFor(t, "the near tier to serve", func() bool { return withNear.NearStats().Serving })

	var loads atomic.Int64
	useCache := func(t *testing.T, c *Cache, round string) {
		t.Helper()
		key := "k-" + round
		if err := c.Set(ctx, key, []byte("v"), time.Minute); err != nil {
			t.Fatalf("%s: Set: %v", c.opt.Prefix, err)
		}
		if v, ok, err := c.Get(ctx, key); err != nil || !ok || string(v) != "v" {
			t.Fatalf("%s: Get = %q, %v, %v", c.opt.Prefix, v, ok, err)
		}
		if _, err := c.GetOrSet(ctx, "g-"+round, time.Minute, countingLoader(&loads, 0)); err != nil {
			t.Fatalf("%s: GetOrSet: %v", c.opt.Prefix, err)
		}
		if n, err := c.Incr(ctx, "n-"+round, 1, time.Minute); err != nil || n != 1 {
			t.Fatalf("%s: Incr = %d, %v", c.opt.Prefix, n, err)
		}
		if c.near != nil {
			typed := NewTyped[string](c, nil)
			if err := typed.Set(ctx, "t-"+round, "tv", time.Minute); err != nil {
				t.Fatalf("%s: Typed.Set: %v", c.opt.Prefix, err)
			}
			waitFor(t, "a near hit", func() bool {
				before := c.NearStats().Hits
				v, ok, err := typed.Get(ctx, "t-"+round)
				return err == nil && ok && v == "tv" && c.NearStats().Hits > before
			})
		}
	}
	useClient := func(t *testing.T, round string) {
		t.Helper()
		key := prefix + ":own-" + round
		if err := rdb.Set(ctx, key, "x", time.Minute).Err(); err != nil {
			t.Fatalf("the caller's own SET: %v", err)
		}
		if v, err := ap.Get(ctx, key).Result(); err != nil || v != "x" {
			t.Fatalf("the caller's own GET on the AutoPipeliner = %q, %v", v, err)
		}
	}
	useCache(t, plain, "0")
	useCache(t, withNear, "0")
	useClient(t, "0")

	first, second := plain, withNear
	if nearFirst {
		first, second = withNear, plain
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	useCache(t, second, "1")
	useClient(t, "1")
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	useClient(t, "2")
	if err := rdb.Close(); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, ignore)
}
