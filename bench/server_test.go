package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// benchAddr is the address of the redis-server that TestMain starts for
// this benchmark binary: its own process on a free loopback port, no
// persistence, stopped when the benchmarks end.
var benchAddr string

func TestMain(m *testing.M) {
	if os.Getenv("NEAR_FRESHNESS_ADDR") != "" {
		// The reader process of BenchmarkNearFreshness uses the parent's
		// server. Starting its own would leak it: the parent kills this
		// process, and deferred cleanup does not run on SIGKILL.
		os.Exit(m.Run())
	}
	os.Exit(runWithServer(m))
}

func runWithServer(m *testing.M) int {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: redis-server not on PATH (apt-get install -y redis-server)")
		return 1
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	dir, err := os.MkdirTemp("", "bench-redis-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	benchAddr = fmt.Sprintf("127.0.0.1:%d", port)
	rdb := redis.NewClient(&redis.Options{Addr: benchAddr})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for rdb.Ping(ctx).Err() != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "bench: redis-server did not start")
			return 1
		}
		time.Sleep(20 * time.Millisecond)
	}
	return m.Run()
}
