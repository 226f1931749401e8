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

// benchAddr is the address of the server that TestMain starts for
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

// BENCH_SERVER names the server binary the benchmarks run on: redis-server
// (Redis 7.0 here) unless it says otherwise, such as valkey-server (built
// by .ci/install-valkey), a server whose SET takes IFEQ.
func runWithServer(m *testing.M) int {
	name := os.Getenv("BENCH_SERVER")
	if name == "" {
		name = "redis-server"
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %s not on PATH (apt-get install -y redis-server; .ci/install-valkey)\n", name)
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
			fmt.Fprintf(os.Stderr, "bench: %s did not start\n", name)
			return 1
		}
		time.Sleep(20 * time.Millisecond)
	}
	return m.Run()
}
