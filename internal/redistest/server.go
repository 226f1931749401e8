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
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startTimeout bounds how long a server may take to answer PING after exec.
const startTimeout = 10 * time.Second

// Binary returns the path of redis-server. When it is missing the test is
// skipped with a loud message, or fails when the CI environment variable is
// "true": CI must never pass by skipping every test.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := binary("redis-server")
	if err != nil {
		missing(t, err)
	}
	return path
}

func binary(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("redistest: %s not found on PATH (install it: apt-get install -y redis-server)", name)
	}
	return path, nil
}

func missing(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%v; under CI=true this is a failure, not a skip", err)
	}
	t.Skipf("!!! SKIPPING: %v", err)
}

// Option configures a server started by Start.
type Option func(*serverConfig)

type serverConfig struct {
	conf     string // a config file, which must come first on the command line
	args     []string
	password string
}

// WithArgs adds redis-server arguments, as on its command line:
// WithArgs("--maxmemory", "10mb").
func WithArgs(args ...string) Option {
	return func(c *serverConfig) { c.args = append(c.args, args...) }
}

// WithPassword makes the server require a password (requirepass).
func WithPassword(pw string) Option {
	return func(c *serverConfig) { c.password = pw }
}

// Server is one redis-server process on a loopback port.
type Server struct {
	// Addr is host:port, always 127.0.0.1.
	Addr string
	// Port is the TCP port the server listens on; it is kept across Restart.
	Port int

	dir      string
	args     []string
	password string
	logPath  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// Start starts a standalone redis-server on a free loopback port, with no
// persistence, and stops it when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	bin := Binary(t)
	var cfg serverConfig
	for _, o := range opts {
		o(&cfg)
	}
	s, err := startServer(bin, t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func startServer(bin, dir string, cfg serverConfig) (*Server, error) {
	var lastErr error
	// A free port can be taken between probing and binding: try a few.
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s := &Server{
			Addr:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			Port:     port,
			dir:      dir,
			password: cfg.password,
			logPath:  filepath.Join(dir, fmt.Sprintf("redis-%d.log", port)),
		}
		s.args = append([]string{
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--dir", dir,
			"--save", "",
			"--appendonly", "no",
			"--logfile", s.logPath,
			"--daemonize", "no",
		}, cfg.args...)
		if cfg.conf != "" {
			s.args = append([]string{cfg.conf}, s.args...)
		}
		if cfg.password != "" {
			s.args = append(s.args, "--requirepass", cfg.password, "--masterauth", cfg.password)
		}
		if lastErr = s.launch(bin); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("redistest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// launch execs the server with s.args and waits until it answers PING.
func (s *Server) launch(bin string) error {
	cmd := exec.Command(bin, s.args...)
	cmd.Dir = s.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redistest: start %s: %w", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	register(cmd, done)

	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	if err := s.waitReady(done); err != nil {
		_ = cmd.Process.Kill()
		<-done
		unregister(cmd)
		return fmt.Errorf("redistest: redis-server on %s did not start: %w\n%s%s", s.Addr, err, out.String(), s.logTail())
	}
	return nil
}

func (s *Server) waitReady(done <-chan struct{}) error {
	rdb := redis.NewClient(&redis.Options{
		Addr: s.Addr, Password: s.password, MaxRetries: -1,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: time.Second, PoolSize: 1,
	})
	defer rdb.Close()
	deadline := time.Now().Add(startTimeout)
	var err error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return errors.New("process exited")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no PONG within %v: %v", startTimeout, err)
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "log: " + string(b)
}

// URL returns redis://127.0.0.1:port/0, with the password when there is one.
func (s *Server) URL() string {
	if s.password != "" {
		return fmt.Sprintf("redis://:%s@%s/0", s.password, s.Addr)
	}
	return fmt.Sprintf("redis://%s/0", s.Addr)
}

// Client returns a go-redis client for the server, closed when the test
// ends. The options may adjust the defaults (no retries, short timeouts).
func (s *Server) Client(t testing.TB, opt ...func(*redis.Options)) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: s.Addr, Password: s.password, DialTimeout: time.Second}
	for _, f := range opt {
		f(o)
	}
	rdb := redis.NewClient(o)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// Running reports whether the process is alive (it may be paused).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL and waits for the process to exit. It is a no-op when
// the server is not running.
func (s *Server) Kill() { s.signalAndWait(syscall.SIGKILL, 0) }

// Stop ends the server: SIGTERM (no persistence is configured, so it exits at
// once), then SIGKILL after 5 seconds. It is idempotent.
func (s *Server) Stop() { s.signalAndWait(syscall.SIGTERM, 5*time.Second) }

func (s *Server) signalAndWait(sig syscall.Signal, grace time.Duration) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT) // a paused process cannot handle SIGTERM
	_ = cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-done:
		case <-time.After(grace):
			_ = cmd.Process.Kill()
			<-done
		}
	} else {
		<-done
	}
	unregister(cmd)
}

// Restart starts the server again on the same port with the same arguments,
// after Kill or Stop. It fails the test when the server does not come up.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if s.Running() {
		t.Fatalf("redistest: restart %s: still running", s.Addr)
	}
	bin := Binary(t)
	var err error
	// The port was ours a moment ago; give the kernel a few tries to free it.
	for range 20 {
		if err = s.launch(bin); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal(err)
}

// Pause stops the process with SIGSTOP: connections stay open and nothing
// answers, as with a server stuck in a long fork or a network partition.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused process with SIGCONT.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

// Do runs one command on the server through a short-lived connection and
// returns its reply; it is meant for test setup (CONFIG SET, DEBUG SLEEP).
func (s *Server) Do(ctx context.Context, args ...any) (any, error) {
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.password, MaxRetries: -1, PoolSize: 1})
	defer rdb.Close()
	return rdb.Do(ctx, args...).Result()
}

// Every process this package started and has not yet seen exit, so that Main
// can stop what the shared fixtures left behind.
var (
	procsMu sync.Mutex
	procs   = map[*exec.Cmd]chan struct{}{}
)

func register(cmd *exec.Cmd, done chan struct{}) {
	procsMu.Lock()
	procs[cmd] = done
	procsMu.Unlock()
}

func unregister(cmd *exec.Cmd) {
	procsMu.Lock()
	delete(procs, cmd)
	procsMu.Unlock()
}

func killAll() {
	procsMu.Lock()
	defer procsMu.Unlock()
	for cmd, done := range procs {
		_ = cmd.Process.Kill()
		<-done // reap it: no zombie is left behind
		delete(procs, cmd)
	}
}
