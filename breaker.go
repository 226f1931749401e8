package rediskit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/retry"
)

// BreakerState is the state of the circuit breaker.
type BreakerState int32

const (
	// BreakerClosed lets every call through (the normal state).
	BreakerClosed BreakerState = iota
	// BreakerOpen refuses every call with ErrCircuitOpen until the cool-down
	// has passed.
	BreakerOpen
	// BreakerHalfOpen lets one probe call through; its outcome closes or
	// re-opens the breaker. Other calls are refused meanwhile.
	BreakerHalfOpen
)

// String returns "closed", "open" or "half-open".
func (s BreakerState) String() string {
	switch s {
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return "closed"
}

// breaker counts consecutive infrastructure failures (retry.IsInfrastructure)
// and opens after threshold of them. The closed-state hot path is one atomic
// load before the call and one after.
type breaker struct {
	threshold int32 // <= 0: disabled
	cooldown  time.Duration
	onChange  func(from, to BreakerState)

	state    atomic.Int32
	failures atomic.Int32
	openedAt atomic.Int64 // UnixNano of the last transition to open
	probing  atomic.Bool  // a half-open probe is in flight

	opens    atomic.Uint64
	rejected atomic.Uint64

	mu sync.Mutex // serializes transitions, so each is reported once
}

func newBreaker(threshold int, cooldown time.Duration, onChange func(from, to BreakerState)) *breaker {
	return &breaker{threshold: int32(threshold), cooldown: cooldown, onChange: onChange}
}

func (b *breaker) State() BreakerState { return BreakerState(b.state.Load()) }

// allow decides whether a call may proceed; probe is true for the one call
// that tests a half-open breaker and must be reported with probe set.
func (b *breaker) allow() (probe bool, err error) {
	if b.threshold <= 0 {
		return false, nil
	}
	switch BreakerState(b.state.Load()) {
	case BreakerClosed:
		return false, nil
	case BreakerOpen:
		if b.cooling() {
			b.rejected.Add(1)
			return false, ErrCircuitOpen
		}
		b.transition(BreakerOpen, BreakerHalfOpen)
	}
	// Half-open: exactly one caller wins the probe.
	if b.probing.CompareAndSwap(false, true) {
		if b.State() == BreakerHalfOpen {
			return true, nil
		}
		// Closed or re-opened between the load and the swap.
		b.probing.Store(false)
		if b.State() == BreakerClosed {
			return false, nil
		}
	}
	b.rejected.Add(1)
	return false, ErrCircuitOpen
}

// refuse is the gate of the client's auto-pipelined commands
// (pipeline.SetGate): ErrCircuitOpen while allow would refuse every call,
// counted as a rejection, without allow's move to half-open. A command it
// lets through is admitted by the hooks when its batch leaves.
func (b *breaker) refuse() error {
	if b.threshold <= 0 || BreakerState(b.state.Load()) != BreakerOpen || !b.cooling() {
		return nil
	}
	b.rejected.Add(1)
	return ErrCircuitOpen
}

// cooling reports whether an open breaker's cool-down still runs.
func (b *breaker) cooling() bool {
	return time.Since(time.Unix(0, b.openedAt.Load())) < b.cooldown
}

// report records the outcome of an allowed call.
func (b *breaker) report(probe bool, err error) {
	if b.threshold <= 0 {
		return
	}
	failed := err != nil && retry.IsInfrastructure(err)
	if probe {
		// A probe refused on the way (ErrUnavailable: it never reached a
		// server that answered) proves nothing about Redis: not a success.
		failed = failed || errors.Is(err, retry.ErrUnavailable)
		if failed {
			b.transition(BreakerHalfOpen, BreakerOpen)
		} else {
			b.failures.Store(0)
			b.transition(BreakerHalfOpen, BreakerClosed)
		}
		b.probing.Store(false)
		return
	}
	if !failed {
		if b.failures.Load() != 0 {
			b.failures.Store(0)
		}
		return
	}
	if b.failures.Add(1) >= b.threshold {
		b.transition(BreakerClosed, BreakerOpen)
	}
}

func (b *breaker) transition(from, to BreakerState) {
	b.mu.Lock()
	if BreakerState(b.state.Load()) != from {
		b.mu.Unlock()
		return
	}
	if to == BreakerOpen {
		b.openedAt.Store(time.Now().UnixNano())
		b.opens.Add(1)
	}
	if to == BreakerClosed {
		b.failures.Store(0)
	}
	b.state.Store(int32(to))
	b.mu.Unlock()
	if b.onChange != nil {
		b.onChange(from, to)
	}
}

// breakerHook applies the breaker to every command and pipeline. It sits
// inside the retry hook, so every attempt is admitted and counted.
//
// A call that needs a new connection runs the connection handshake (HELLO,
// AUTH, CLIENT SETINFO) through the same hooks, with the call's context.
// The half-open probe marks its context so that its own handshake passes:
// otherwise the breaker, with the probe in flight, would refuse it, and the
// probe would fail without ever reaching Redis.
//
// A pipeline never carries the probe. An auto-pipelined batch carries
// several callers, go-redis answers all of them only when the whole batch
// is done, and the batches behind it wait for it. So a half-open pipeline
// is refused at once, every command failing fast as while open, and the
// probe is a PING of the hook's own (ping, on the node's client), sent in
// the background: no caller waits on a server that may still be down
// (TestPausedServerBreaker, TestHalfOpenBatchFailsFast). A single command
// outside a pipeline is its own probe.
type breakerHook struct {
	b    *breaker
	ping func(context.Context) error
}

// probeAsync runs the half-open probe as a PING on its own goroutine and
// reports its outcome.
func (h breakerHook) probeAsync() {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		ctx = context.WithValue(retry.WithNoRetry(ctx), probeKey{}, true)
		h.b.report(true, h.ping(ctx))
	}()
}

// probeTimeout bounds a background probe that the client's own read
// timeout does not end first.
const probeTimeout = 10 * time.Second

// probeKey marks the context of the half-open probe.
type probeKey struct{}

func isProbe(ctx context.Context) bool { return ctx.Value(probeKey{}) != nil }

func (h breakerHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h breakerHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if isProbe(ctx) {
			return next(ctx, cmd) // the probe's own handshake
		}
		probe, err := h.b.allow()
		if err != nil {
			return err
		}
		if probe {
			ctx = context.WithValue(ctx, probeKey{}, true)
		}
		err = next(ctx, cmd)
		h.b.report(probe, err)
		return err
	}
}

func (h breakerHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if isProbe(ctx) {
			return next(ctx, cmds) // the probe's own handshake
		}
		probe, err := h.b.allow()
		if err != nil {
			for _, c := range cmds {
				c.SetErr(err)
			}
			return err
		}
		if probe {
			if h.ping != nil {
				for _, c := range cmds {
					c.SetErr(ErrCircuitOpen)
				}
				h.probeAsync()
				return ErrCircuitOpen
			}
			ctx = context.WithValue(ctx, probeKey{}, true)
		}
		err = next(ctx, cmds)
		h.b.report(probe, pipelineFailure(cmds, err))
		return err
	}
}

// pipelineFailure returns the first infrastructure failure among the
// pipeline's commands, or err: a WRONGTYPE reply on one command is not a
// sign that Redis is down, an EOF on any command is.
func pipelineFailure(cmds []redis.Cmder, err error) error {
	if err == nil {
		return nil
	}
	for _, c := range cmds {
		if e := c.Err(); e != nil && retry.IsInfrastructure(e) {
			return e
		}
	}
	return err
}
