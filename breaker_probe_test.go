package rediskit

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/pipeline"
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
	s, c, history := breakerOnOwnServer(t, 200*time.Millisecond, 2, 200*time.Millisecond)
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

// A half-open pipeline (an auto-pipelined batch carries several callers,
// and the batches behind it wait for it) fails at once, every command with
// ErrCircuitOpen, and the probe is the hook's own PING in the background:
// against a paused server it times out and the breaker re-opens without a
// caller waiting; once the server answers, a later batch's background PING
// closes the breaker.
func TestHalfOpenBatchFailsFast(t *testing.T) {
	ctx := context.Background()
	const readTimeout = 300 * time.Millisecond
	s, c, history := breakerOnOwnServer(t, readTimeout, 1, 100*time.Millisecond)
	rdb := c.Redis()
	key := redistest.Prefix(t) + "k"
	batch := func() (time.Duration, []error) {
		start := time.Now()
		cmds, _ := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for range 3 {
				p.Get(ctx, key)
			}
			return nil
		})
		errs := make([]error, len(cmds))
		for i, cmd := range cmds {
			errs[i] = cmd.Err()
		}
		return time.Since(start), errs
	}
	if _, errs := batch(); !errors.Is(errs[0], redis.Nil) {
		t.Fatal(errs)
	}

	s.Pause()
	t.Cleanup(s.Resume) // runs before the server's own cleanup stops it
	if _, errs := batch(); !retry.IsUnavailable(errs[0]) || errors.Is(errs[0], ErrCircuitOpen) {
		t.Fatalf("batch with the server paused: %v, want a timeout", errs)
	}
	if c.BreakerState() != BreakerOpen {
		t.Fatalf("state %v history %q, want open", c.BreakerState(), history())
	}
	time.Sleep(150 * time.Millisecond) // past the cool-down: the next batch finds it half-open
	took, errs := batch()
	for i, err := range errs {
		if !errors.Is(err, ErrCircuitOpen) {
			t.Fatalf("half-open batch, command %d: %v, want ErrCircuitOpen", i, err)
		}
	}
	if took >= readTimeout {
		t.Fatalf("half-open batch took %v, want less than the read timeout %v: its callers waited on the probe", took, readTimeout)
	}
	eventually(t, 5*time.Second, "the background probe failing against the paused server", func() bool {
		return strings.HasSuffix(history(), "open>half-open half-open>open")
	})

	s.Resume()
	eventually(t, 5*time.Second, "a background probe closing the breaker after SIGCONT", func() bool {
		_, _ = batch()
		return c.BreakerState() == BreakerClosed
	})
	if _, errs := batch(); !errors.Is(errs[0], redis.Nil) {
		t.Fatalf("batch after the breaker closed: %v", errs)
	}
}

// breakerOnOwnServer returns a server of the test's own (to pause), a client
// of it with the given breaker, one attempt per call and no health checks,
// and the history of the breaker's transitions.
func breakerOnOwnServer(t *testing.T, readTimeout time.Duration, threshold int, cooldown time.Duration) (*redistest.Server, *Client, func() string) {
	s := redistest.Start(t)
	tr := &transitions{}
	c := open(t, Config{
		Addr:                s.Addr,
		ReadTimeout:         readTimeout,
		BreakerThreshold:    threshold,
		BreakerCooldown:     cooldown,
		HealthCheckInterval: -1,
		Retry:               retry.Policy{MaxAttempts: 1},
		OnBreakerChange:     tr.record,
	})
	return s, c, tr.String
}

// TestOpenBreakerRefusesBeforeQueueing: while the breaker is open, a command
// that session or cache hands to the AutoPipeliner is refused at once
// (pipeline.SetGate), not after the batch in flight ahead of it, which a
// paused server holds until its read timeout. The order of the replies
// shows it: the refused command answers while that batch still waits.
func TestOpenBreakerRefusesBeforeQueueing(t *testing.T) {
	ctx := context.Background()
	const readTimeout = 2 * time.Second
	s, c, history := breakerOnOwnServer(t, readTimeout, 1, time.Minute)
	exec, err := pipeline.New(c.Redis(), pipeline.Always)
	if err != nil {
		t.Fatal(err)
	}
	key := redistest.Prefix(t) + "k"
	get := func() error { return exec.Process(ctx, redis.NewStringCmd(ctx, "get", key)) }
	if err := get(); !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}

	s.Pause()
	t.Cleanup(s.Resume)
	tripped := make(chan error, 1)
	go func() { tripped <- c.Redis().Get(ctx, key).Err() }() // pooled: its timeout opens the breaker
	time.Sleep(readTimeout / 2)
	inFlight := make(chan error, 1)
	go func() { inFlight <- get() }() // a batch the paused server holds for another second
	if err := <-tripped; !retry.IsUnavailable(err) || errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("pooled GET on the paused server: %v, want a timeout", err)
	}
	if c.BreakerState() != BreakerOpen {
		t.Fatalf("state %v history %q, want open", c.BreakerState(), history())
	}
	_, rejected := c.breakers.counts()
	if err := get(); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("auto-pipelined GET while open: %v, want ErrCircuitOpen", err)
	}
	select {
	case err := <-inFlight:
		t.Fatalf("the batch in flight ended (%v) before the refused command answered: it waited for it", err)
	default:
	}
	if _, got := c.breakers.counts(); got != rejected+1 {
		t.Errorf("BreakerRejected %d, want %d: the refusal is counted", got, rejected+1)
	}
	if err := <-inFlight; !retry.IsUnavailable(err) {
		t.Fatalf("the batch in flight: %v, want a timeout", err)
	}
}
