package cache_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/cache"
	"github.com/rediskit/rediskit/internal/redistest"
)

// exampleTB lets runnable examples use the shared test server: Examples get
// no *testing.T.
type exampleTB struct{ testing.TB }

func (exampleTB) Helper()                   {}
func (exampleTB) Cleanup(func())            {}
func (exampleTB) Name() string              { return "Example" }
func (exampleTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (exampleTB) Skipf(f string, a ...any)  { panic(fmt.Sprintf(f, a...)) }

func exampleClient() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: redistest.Shared(exampleTB{}).Addr})
}

func Example() {
	rdb := exampleClient()
	defer rdb.Close()
	c, err := cache.New(rdb, cache.Options{Prefix: "example-basic"})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()

	_ = c.Set(ctx, "greeting", []byte("hello"), time.Minute)
	v, ok, _ := c.Get(ctx, "greeting")
	fmt.Println(string(v), ok)
	_, ok, _ = c.Get(ctx, "missing")
	fmt.Println(ok)
	// Output:
	// hello true
	// false
}

func ExampleTyped_GetOrSet() {
	rdb := exampleClient()
	defer rdb.Close()
	c, err := cache.New(rdb, cache.Options{Prefix: "example-typed", Version: 3})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	type User struct{ ID, Name string }
	users := cache.NewTyped[User](c, cache.MsgpackCodec{})
	ctx := context.Background()
	_ = users.Delete(ctx, "42")

	load := func(ctx context.Context) (User, error) {
		fmt.Println("loading from the database")
		return User{ID: "42", Name: "Ada"}, nil
	}
	u, _ := users.GetOrSet(ctx, "42", time.Minute, load)
	fmt.Println(u.Name)
	u, _ = users.GetOrSet(ctx, "42", time.Minute, load) // a hit: no load
	fmt.Println(u.Name)
	// Output:
	// loading from the database
	// Ada
	// Ada
}

func ExampleCache_GetOrSet_notFound() {
	rdb := exampleClient()
	defer rdb.Close()
	c, err := cache.New(rdb, cache.Options{Prefix: "example-negative", NegativeTTL: time.Minute})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()
	_ = c.Delete(ctx, "nobody")
	_, err = c.GetOrSet(ctx, "nobody", time.Minute, func(ctx context.Context) ([]byte, error) {
		return nil, cache.ErrNotFound
	})
	fmt.Println(errors.Is(err, cache.ErrNotFound))
	// Output: true
}

func ExampleCache_Clear() {
	rdb := exampleClient()
	defer rdb.Close()
	c, err := cache.New(rdb, cache.Options{Prefix: "example-clear"})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()
	_ = c.MSet(ctx, map[string][]byte{"user:1": {1}, "user:2": {2}, "user*": {3}, "order:1": {4}}, time.Minute)

	userInput := "user*" // escaped: it names one key, it is not a glob
	n, _ := c.Clear(ctx, cache.Literal(userInput), cache.ClearOptions{})
	fmt.Println(n)
	n, _ = c.Clear(ctx, cache.Prefix("user:"), cache.ClearOptions{})
	fmt.Println(n)
	// Output:
	// 1
	// 2
}

func ExampleCache_Incr() {
	rdb := exampleClient()
	defer rdb.Close()
	c, err := cache.New(rdb, cache.Options{Prefix: "example-incr"})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()
	_ = c.Delete(ctx, "hits")
	// The TTL is set when the counter is created and never extended.
	_, _ = c.Incr(ctx, "hits", 1, time.Hour)
	n, _ := c.Incr(ctx, "hits", 2, time.Hour)
	fmt.Println(n)
	// Output: 3
}
