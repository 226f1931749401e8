package rediskit_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/rediskit/rediskit"
	"github.com/rediskit/rediskit/internal/redisproc"
)

// exampleServer starts a throw-away redis-server for the examples (the
// harness of internal/redistest, without a *testing.T).
func exampleServer() (addr string, stop func()) {
	bin, err := redisproc.Binary("redis-server")
	if err != nil {
		panic(err)
	}
	dir, err := os.MkdirTemp("", "rediskit-example-")
	if err != nil {
		panic(err)
	}
	s, err := redisproc.Start(redisproc.Config{Bin: bin, Dir: dir})
	if err != nil {
		panic(err)
	}
	return s.Addr, func() { s.Stop(); _ = os.RemoveAll(dir) }
}

func Example() {
	addr, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	cfg, err := rediskit.ParseURL("redis://" + addr + "/0?read_timeout=2s&health_check_interval=1s")
	if err != nil {
		fmt.Println(err)
		return
	}
	client, err := rediskit.Open(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()

	rdb := client.Redis()
	rdb.Set(ctx, "greeting", "hello", time.Minute)
	fmt.Println(rdb.Get(ctx, "greeting").Val())
	fmt.Println(client.Health(ctx).Status)
	st, _ := client.Stats(ctx)
	fmt.Println(st.Breaker, st.Server.KeyspaceHits)
	// Output:
	// hello
	// up
	// closed 1
}

func ExampleParseURL() {
	cfg, err := rediskit.ParseURL("redis-sentinel://:secret@10.0.0.1,10.0.0.2:26380/mymaster/2?pool_size=20")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg)
	_, err = rediskit.ParseURL("redis://:secret@localhost?pool_size=lots")
	fmt.Println(err)
	// Output:
	// rediskit.Config{mode=sentinel master=mymaster sentinels=10.0.0.1:26379,10.0.0.2:26380 password=[redacted] db=2 pool_size=20}
	// rediskit: config: URL parameter pool_size = "lots": want an integer
}
