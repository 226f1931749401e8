// Package redistest starts real redis-server processes for tests: a
// standalone server, a 3-master cluster and a sentinel setup, each on free
// loopback ports with no persistence, and a TCP proxy that injects faults.
//
// Every process is started with a parent-death signal, so a test binary that
// is killed takes its servers with it. Servers started with a testing.TB stop
// in its Cleanup; the shared fixtures (Shared, SharedCluster, SharedSentinel)
// start once per test binary and stop when Main returns.
//
// Without redis-server on PATH the tests that need it skip with a loud
// message, except under CI=true, where that is a failure.
package redistest

import (
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redisproc"
)

// Binary returns the path of redis-server. When it is missing the test is
// skipped with a loud message, or fails when the CI environment variable is
// "true": CI must never pass by skipping every test.
func Binary(t testing.TB) string {
	t.Helper()
	return binary(t, "redis-server")
}

// ValkeyBinary returns the path of valkey-server, as Binary does for
// redis-server. Valkey stands for the servers newer than Redis 7.0 whose
// commands rediskit uses when they are there (SET … IFEQ); .ci/install-valkey
// builds it.
func ValkeyBinary(t testing.TB) string {
	t.Helper()
	return binary(t, "valkey-server")
}

func binary(t testing.TB, name string) string {
	t.Helper()
	path, err := redisproc.Binary(name)
	if err != nil {
		missing(t, err)
	}
	return path
}

func missing(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("redistest: %v; under CI=true this is a failure, not a skip", err)
	}
	t.Skipf("!!! SKIPPING: redistest: %v", err)
}

// Option configures a server started by Start.
type Option func(*redisproc.Config)

// WithArgs adds redis-server arguments, as on its command line:
// WithArgs("--maxmemory", "10mb").
func WithArgs(args ...string) Option {
	return func(c *redisproc.Config) { c.Args = append(c.Args, args...) }
}

// WithPassword makes the server require a password (requirepass).
func WithPassword(pw string) Option {
	return func(c *redisproc.Config) { c.Password = pw }
}

// Server is one redis-server process on a loopback port. Kill, Stop, Pause,
// Resume, Running, URL and Do come from the embedded process handle.
type Server struct {
	*redisproc.Server
}

// Start starts a standalone redis-server on a free loopback port, with no
// persistence, and stops it when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return start(t, Binary(t), opts)
}

// StartValkey is Start with valkey-server (see ValkeyBinary).
func StartValkey(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return start(t, ValkeyBinary(t), opts)
}

func start(t testing.TB, bin string, opts []Option) *Server {
	t.Helper()
	cfg := redisproc.Config{Bin: bin, Dir: testDir(t)}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := redisproc.Start(cfg)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Stop)
	return &Server{s}
}

// Client returns a go-redis client for the server, closed when the test
// ends. The options may adjust the defaults.
func (s *Server) Client(t testing.TB, opt ...func(*redis.Options)) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: s.Addr, Password: s.Password(), TLSConfig: s.TLSConfig(), DialTimeout: time.Second}
	for _, f := range opt {
		f(o)
	}
	rdb := redis.NewClient(o)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// Restart starts the server again on the same port with the same arguments,
// after Kill or Stop. It fails the test when the server does not come up.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.Server.Restart(); err != nil {
		t.Fatalf("redistest: %v", err)
	}
}
