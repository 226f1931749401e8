package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Defaults applied by Policy for zero fields.
const (
	// DefaultMaxAttempts is the number of attempts (the first one included)
	// when Policy.MaxAttempts is zero.
	DefaultMaxAttempts = 3
	// DefaultBaseBackoff is Policy.BaseBackoff when zero.
	DefaultBaseBackoff = 8 * time.Millisecond
	// DefaultMaxBackoff is Policy.MaxBackoff when zero.
	DefaultMaxBackoff = 512 * time.Millisecond
)

// Policy says how often and how patiently a failed call is repeated. The zero
// value is usable and means the defaults above.
type Policy struct {
	// MaxAttempts is the total number of attempts, the first one included.
	// Default 3 (DefaultMaxAttempts); 1 means "never retry"; negative values
	// are treated as 1.
	MaxAttempts int
	// BaseBackoff is the cap of the first backoff; the cap doubles with every
	// further attempt. Default 8 ms (DefaultBaseBackoff).
	BaseBackoff time.Duration
	// MaxBackoff bounds the cap of any single backoff. Default 512 ms
	// (DefaultMaxBackoff). It is raised to BaseBackoff when smaller.
	MaxBackoff time.Duration
}

// WithDefaults returns p with its zero fields replaced by the defaults.
func (p Policy) WithDefaults() Policy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.MaxAttempts < 0 {
		p.MaxAttempts = 1
	}
	if p.BaseBackoff <= 0 {
		p.BaseBackoff = DefaultBaseBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = DefaultMaxBackoff
	}
	if p.MaxBackoff < p.BaseBackoff {
		p.MaxBackoff = p.BaseBackoff
	}
	return p
}

// Backoff returns the pause before retry number n (n = 1 before the second
// attempt): "full jitter", a uniformly random duration in [0, cap) where cap
// is min(MaxBackoff, BaseBackoff·2^(n-1)). Full jitter spreads the retries of
// many clients that failed together, so they do not hit a recovering server
// in lockstep.
func (p Policy) Backoff(n int) time.Duration {
	p = p.WithDefaults()
	if n < 1 {
		n = 1
	}
	ceiling := p.MaxBackoff
	if shift := n - 1; shift < 32 {
		if b := p.BaseBackoff << shift; b > 0 && b < ceiling {
			ceiling = b
		}
	}
	return rand.N(ceiling)
}

// wait sleeps for the backoff before retry n, unless that pause would end
// after ctx's deadline or ctx ends first: then it returns false at once,
// without sleeping past the deadline.
func (p Policy) wait(ctx context.Context, n int) bool {
	d := p.Backoff(n)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return false
	}
	if ctx.Err() != nil {
		return false
	}
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Do calls fn until it succeeds, returns an error that is not worth
// repeating, or the policy's attempts are used up; it returns fn's last
// error. Only transient errors (Classify == ClassTransient: network
// failures, timeouts, LOADING, READONLY, TRYAGAIN, …) are retried: redis.Nil,
// error replies, ErrUnavailable, ErrAmbiguous and the context's own errors
// come back at once. Between attempts Do waits with full-jitter exponential
// backoff and never sleeps past ctx's deadline: when the next pause would end
// after it, Do returns the last error instead.
//
// fn must be safe to repeat: Do is for the caller's own multi-step
// operations (read, compute, write-if-unchanged) whose every step is
// idempotent or guarded, like a WATCH transaction.
func Do(ctx context.Context, p Policy, fn func(ctx context.Context) error) error {
	p = p.WithDefaults()
	var err error
	for attempt := 1; ; attempt++ {
		if err = fn(ctx); err == nil || Classify(err) != ClassTransient {
			return err
		}
		if attempt >= p.MaxAttempts || !p.wait(ctx, attempt) {
			return err
		}
	}
}
