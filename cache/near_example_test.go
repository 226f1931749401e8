package cache_test

import (
	"context"
	"fmt"
	"time"

	"github.com/rediskit/rediskit/cache"
)

func ExampleNearOptions() {
	rdb := exampleClient()
	defer rdb.Close()
	c, err := cache.New(rdb, cache.Options{Prefix: "example-near", Near: &cache.NearOptions{MaxEntries: 10_000}})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	for !c.NearStats().Serving { // tracking is armed in the background
		time.Sleep(time.Millisecond)
	}
	ctx := context.Background()
	users := cache.NewTyped[string](c, nil)
	_ = users.Set(ctx, "42", "Ada", time.Minute)
	// The first reads go to Redis and fill the near tier; Redis then reports
	// our own write (an invalidation, usually within a millisecond), after
	// which reads are served from process memory until the key changes.
	var v string
	for c.NearStats().Hits == 0 {
		v, _, _ = users.Get(ctx, "42")
	}
	fmt.Println(v, "served locally")
	// Output: Ada served locally
}
