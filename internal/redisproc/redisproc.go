// Package redisproc runs redis-server as a child process on a free loopback
// port: the tests' servers (through internal/redistest) and the rediskit
// command's embedded server are the same code.
//
// Every process gets a parent-death signal, so a parent that is killed takes
// its servers with it, and KillAll reaps whatever is still running.
package redisproc

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// startTimeout bounds how long a server may take to answer PING after exec.
const startTimeout = 10 * time.Second

// Binary returns the path of the named program (redis-server, redis-cli), or
// an error that says how to install it.
func Binary(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		how := "apt-get install -y redis-server"
		if name == "valkey-server" {
			how = ".ci/install-valkey"
		}
		return "", fmt.Errorf("%s not found on PATH (install it: %s)", name, how)
	}
	return path, nil
}

// Config describes one server.
type Config struct {
	// Bin is the redis-server path; empty means look it up on PATH.
	Bin string
	// Dir is the working directory for logs and any files the server
	// writes. It must exist.
	Dir string
	// Conf is a config file passed first on the command line (a sentinel
	// needs one); empty means none.
	Conf string
	// Args are more arguments, as on redis-server's command line.
	Args []string
	// Password, when set, is required of clients (requirepass) and used
	// towards a master (masterauth).
	Password string
	// TLS, when set, makes the server listen on TLS only (--port 0
	// --tls-port); Args must then name the certificate files. The config is
	// what the readiness check dials with.
	TLS *tls.Config
}

// Server is one redis-server process on a loopback port.
type Server struct {
	// Addr is host:port, always on 127.0.0.1.
	Addr string
	// Port is the TCP port; it is kept across Restart.
	Port int

	bin      string
	dir      string
	args     []string
	password string
	logPath  string
	tls      *tls.Config

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// Start starts a server with no persistence (unless Args turn it on) on a
// free loopback port and waits until it answers PING. Without persistence a
// restarted server comes back empty: the RDB files of replication are
// deleted once loaded (rdb-del-sync-files).
func Start(cfg Config) (*Server, error) {
	bin := cfg.Bin
	if bin == "" {
		var err error
		if bin, err = Binary("redis-server"); err != nil {
			return nil, err
		}
	}
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
			bin:      bin,
			dir:      cfg.Dir,
			password: cfg.Password,
			logPath:  filepath.Join(cfg.Dir, fmt.Sprintf("redis-%d.log", port)),
			tls:      cfg.TLS,
		}
		if cfg.Conf != "" {
			s.args = append(s.args, cfg.Conf)
		}
		listen := []string{"--port", strconv.Itoa(port)}
		if cfg.TLS != nil {
			listen = []string{"--port", "0", "--tls-port", strconv.Itoa(port)}
		}
		s.args = append(s.args, listen...)
		s.args = append(s.args,
			"--bind", "127.0.0.1",
			"--dir", cfg.Dir,
			"--save", "",
			"--appendonly", "no",
			// A replica writes the RDB of each full sync into its dir
			// even without persistence, and a restart would load it:
			// the node would come back stale, not empty. (The nodes of a
			// deployment share one Dir: it would even load another
			// node's file.)
			"--rdb-del-sync-files", "yes",
			"--logfile", s.logPath,
			"--daemonize", "no",
		)
		s.args = append(s.args, cfg.Args...)
		if cfg.Password != "" {
			s.args = append(s.args, "--requirepass", cfg.Password, "--masterauth", cfg.Password)
		}
		if lastErr = s.launch(); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// launch execs the server with s.args and waits until it answers PING.
func (s *Server) launch() error {
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group keeps a terminal's Ctrl-C away from it: the
	// parent decides when it stops.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
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
		return fmt.Errorf("redis-server on %s did not start: %w\n%s%s", s.Addr, err, out.String(), s.logTail())
	}
	return nil
}

func (s *Server) waitReady(done <-chan struct{}) error {
	rdb := redis.NewClient(&redis.Options{
		Addr: s.Addr, Password: s.password, TLSConfig: s.tls, MaxRetries: -1,
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

// TLSConfig returns the client TLS configuration of a TLS-only server, or
// nil.
func (s *Server) TLSConfig() *tls.Config { return s.tls }

// LogPath returns the path of the server's log file.
func (s *Server) LogPath() string { return s.logPath }

// Password returns the password clients must give; empty when none.
func (s *Server) Password() string { return s.password }

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

// Stop ends the server: SIGTERM, then SIGKILL after 5 seconds. With
// persistence on, SIGTERM lets it write its files first. It is idempotent.
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
// after Kill or Stop.
func (s *Server) Restart() error {
	if s.Running() {
		return fmt.Errorf("restart %s: still running", s.Addr)
	}
	var err error
	// The port was ours a moment ago; give the kernel a few tries to free it.
	for range 20 {
		if err = s.launch(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
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
// returns its reply; it is meant for setup (CONFIG SET, CLUSTER INFO).
func (s *Server) Do(ctx context.Context, args ...any) (any, error) {
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.password, TLSConfig: s.tls, MaxRetries: -1, PoolSize: 1})
	defer rdb.Close()
	return rdb.Do(ctx, args...).Result()
}

// Every process this package started and has not yet seen exit, so that
// KillAll can stop what was left behind.
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

// KillAll kills every server this process started that is still running,
// and reaps them, so no zombie is left behind.
func KillAll() {
	procsMu.Lock()
	defer procsMu.Unlock()
	for cmd, done := range procs {
		_ = cmd.Process.Kill()
		<-done
		delete(procs, cmd)
	}
}
