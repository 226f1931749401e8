package rediskit

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/retry"
)

// A half-open probe that needs a new connection runs the connection
// handshake (HELLO) through the client's hooks. Against a paused server
// (SIGSTOP: the dial succeeds, nothing answers) the breaker must neither
// refuse its own probe's handshake nor take that refusal for a success: the
// probe times out and the breaker re-opens; it closes only once the server
// answers again.
func TestBreakerProbeAgainstPausedServer(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t)
	var tr transitions
	history := tr.String
	c := open(t, Config{
		Addr:                s.Addr,
		ReadTimeout:         200 * time.Millisecond,
		BreakerThreshold:    2,
		BreakerCooldown:     200 * time.Millisecond,
		HealthCheckInterval: -1,
		Retry:               retry.Policy{MaxAttempts: 1},
		OnBreakerChange:     tr.record,
	})
	rdb := c.Redis()
	key := redistest.Prefix(t) + "k"
	if err := rdb.Get(ctx, key).Err(); !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}

	s.Pause()
	t.Cleanup(s.Resume) // runs before the server's own cleanup stops it
	for i := range 2 {
		if err := rdb.Get(ctx, key).Err(); !retry.IsUnavailable(err) || errors.Is(err, ErrCircuitOpen) {
			t.Fatalf("call %d with the server paused: %v, want a timeout", i, err)
		}
	}
	if c.BreakerState() != BreakerOpen {
		t.Fatalf("state %v history %q after 2 timeouts, want open", c.BreakerState(), history())
	}
	for i := range 3 {
		var err error
		eventually(t, 5*time.Second, "a probe after the cool-down", func() bool {
			err = rdb.Get(ctx, key).Err()
			return !errors.Is(err, ErrCircuitOpen)
		})
		if !retry.IsInfrastructure(err) {
			t.Fatalf("probe %d against the paused server: %v, want a timeout", i, err)
		}
		if c.BreakerState() != BreakerOpen || strings.Contains(history(), ">closed") {
			t.Fatalf("probe %d against the paused server: state %v, history %q; want open, never closed",
				i, c.BreakerState(), history())
		}
	}

	s.Resume()
	eventually(t, 5*time.Second, "the breaker closing after SIGCONT", func() bool {
		return errors.Is(rdb.Get(ctx, key).Err(), redis.Nil)
	})
	if c.BreakerState() != BreakerClosed || !strings.HasSuffix(history(), "open>half-open half-open>closed") {
		t.Fatalf("state %v history %q after SIGCONT", c.BreakerState(), history())
	}
}
