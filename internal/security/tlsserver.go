package security

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
)

// TLSServer is a redis-server that listens only on a TLS port (--port 0),
// with a certificate for 127.0.0.1 and localhost signed by CA.
type TLSServer struct {
	// Addr is "127.0.0.1:port" of the TLS listener.
	Addr string
	// CA signed the server's certificate; trust it to connect.
	CA *CA
}

// StartTLS starts a TLS-only redis-server on a free loopback port and stops
// it when the test ends. Clients need not present a certificate
// (--tls-auth-clients no). It skips like redistest when redis-server is
// missing.
func StartTLS(t testing.TB) *TLSServer {
	t.Helper()
	bin := redistest.Binary(t)
	ca, err := NewCA("rediskit test CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := ca.WriteServerFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range 5 { // a free port can be taken between probing and binding
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		logPath := filepath.Join(dir, "redis-"+strconv.Itoa(port)+".log")
		cmd := exec.Command(bin,
			"--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--tls-cert-file", files.Cert, "--tls-key-file", files.Key, "--tls-ca-cert-file", files.CA,
			"--tls-auth-clients", "no",
			"--dir", dir, "--save", "", "--appendonly", "no", "--logfile", logPath, "--daemonize", "no")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-done
		}
		if lastErr = waitTLS(addr, ClientConfig(ca), done); lastErr == nil {
			t.Cleanup(stop)
			return &TLSServer{Addr: addr, CA: ca}
		}
		stop()
		if b, err := os.ReadFile(logPath); err == nil {
			lastErr = &startError{lastErr, string(b)}
		}
	}
	t.Fatalf("security: TLS redis-server did not start: %v", lastErr)
	return nil
}

type startError struct {
	err error
	log string
}

func (e *startError) Error() string { return e.err.Error() + "\nlog: " + e.log }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitTLS(addr string, conf *tls.Config, done <-chan struct{}) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr, TLSConfig: conf, MaxRetries: -1,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: time.Second, PoolSize: 1})
	defer rdb.Close()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-done:
			return errExited
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
	}
	return err
}

type constErr string

func (e constErr) Error() string { return string(e) }

const errExited = constErr("process exited")
