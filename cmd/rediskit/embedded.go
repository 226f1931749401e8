package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/alicebob/miniredis/v2"

	"github.com/rediskit/rediskit/internal/redisproc"
)

// embedded is the Redis the command runs on when none is configured.
type embedded struct {
	// URL is where clients connect.
	URL string
	// Desc says in one line what was started, for the startup banner.
	Desc string
	// InProcess is true for the in-process server, which lacks commands a
	// real server has (CLIENT TRACKING, MEMORY USAGE).
	InProcess bool
	stop      func()
}

// startEmbedded starts a real redis-server child process on a free loopback
// port when the binary is on PATH, with no persistence, or else an in-process
// Redis-compatible server (miniredis). Stop ends either.
func startEmbedded() (*embedded, error) {
	var procErr error
	if bin, err := redisproc.Binary("redis-server"); err == nil {
		dir, err := os.MkdirTemp("", "rediskit-embedded-")
		if err != nil {
			return nil, fmt.Errorf("embedded redis: %w", err)
		}
		s, err := redisproc.Start(redisproc.Config{Bin: bin, Dir: dir})
		if err == nil {
			return &embedded{
				URL:  s.URL(),
				Desc: fmt.Sprintf("embedded redis-server (%s) on %s: no persistence, stopped on exit", bin, s.Addr),
				stop: func() { s.Stop(); _ = os.RemoveAll(dir) },
			}, nil
		}
		_ = os.RemoveAll(dir)
		procErr = err
	}
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("embedded redis: %w", err)
	}
	desc := "embedded in-process Redis-compatible server (miniredis) on " + m.Addr() + ": redis-server is not on PATH"
	if procErr != nil {
		desc = "embedded in-process Redis-compatible server (miniredis) on " + m.Addr() +
			": redis-server failed to start: " + strings.SplitN(procErr.Error(), "\n", 2)[0]
	}
	return &embedded{URL: "redis://" + m.Addr() + "/0", Desc: desc, InProcess: true, stop: m.Close}, nil
}

// Stop ends the embedded server; it is idempotent.
func (e *embedded) Stop() {
	if e.stop != nil {
		e.stop()
		e.stop = nil
	}
}
