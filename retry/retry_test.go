package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestPolicyDefaults(t *testing.T) {
	t.Parallel()
	p := Policy{}.WithDefaults()
	if p.MaxAttempts != DefaultMaxAttempts || p.BaseBackoff != DefaultBaseBackoff || p.MaxBackoff != DefaultMaxBackoff {
		t.Fatalf("defaults = %+v", p)
	}
	if p := (Policy{MaxAttempts: -5, BaseBackoff: time.Second, MaxBackoff: time.Millisecond}).WithDefaults(); p.MaxAttempts != 1 || p.MaxBackoff != time.Second {
		t.Fatalf("normalized = %+v", p)
	}
}

func TestBackoffFullJitter(t *testing.T) {
	t.Parallel()
	p := Policy{BaseBackoff: 10 * time.Millisecond, MaxBackoff: 80 * time.Millisecond}
	for n, ceiling := range map[int]time.Duration{1: 10, 2: 20, 3: 40, 4: 80, 5: 80, 40: 80, 1000: 80} {
		ceiling *= time.Millisecond
		var top time.Duration
		for range 2000 {
			d := p.Backoff(n)
			if d < 0 || d >= ceiling {
				t.Fatalf("Backoff(%d) = %v, want in [0, %v)", n, d, ceiling)
			}
			top = max(top, d)
		}
		if top < ceiling/2 {
			t.Fatalf("Backoff(%d) never above %v in 2000 draws: not jittered over [0, %v)", n, top, ceiling)
		}
	}
}

func TestDo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fast := Policy{MaxAttempts: 4, BaseBackoff: time.Microsecond, MaxBackoff: time.Microsecond}
	transient := fmt.Errorf("op: %w", io.EOF)

	calls := 0
	err := Do(ctx, fast, func(context.Context) error {
		calls++
		if calls < 3 {
			return transient
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("Do = %v after %d calls, want success after 3", err, calls)
	}

	calls = 0
	err = Do(ctx, fast, func(context.Context) error { calls++; return transient })
	if !errors.Is(err, io.EOF) || calls != 4 {
		t.Fatalf("Do = %v after %d calls, want EOF after 4", err, calls)
	}

	for _, e := range []error{redis.Nil, errors.New("WRONGTYPE x"), context.Canceled, ErrUnavailable, &AmbiguousError{Cmd: "incr", Cause: io.EOF}} {
		calls = 0
		err = Do(ctx, fast, func(context.Context) error { calls++; return e })
		if !errors.Is(err, e) || calls != 1 {
			t.Fatalf("Do(%v) called %d times, want 1 (not retryable)", e, calls)
		}
	}

	// The next backoff would end after the deadline: Do returns at once.
	slow := Policy{MaxAttempts: 10, BaseBackoff: time.Hour, MaxBackoff: time.Hour}
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	for {
		// Backoff is random in [0, 1h): rerun the unlucky draw below 1 s.
		calls = 0
		_ = Do(dctx, slow, func(context.Context) error { calls++; return transient })
		if calls == 1 || dctx.Err() != nil {
			break
		}
	}
	if calls != 1 || dctx.Err() != nil {
		t.Fatalf("Do with a short deadline: %d calls, ctx %v; want 1 call and no sleep past the deadline", calls, dctx.Err())
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	read := &net.OpError{Op: "read", Net: "tcp", Err: timeoutErr{}}
	tests := []struct {
		err        error
		class      Class
		notApplied bool
	}{
		{nil, ClassNone, false},
		{redis.Nil, ClassNone, false},
		{fmt.Errorf("get: %w", redis.Nil), ClassNone, false},
		{context.Canceled, ClassCaller, false},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), ClassCaller, false},
		{fmt.Errorf("x: %w: %w", dial, context.DeadlineExceeded), ClassTransient, true},
		{dial, ClassTransient, true},
		{read, ClassTransient, false},
		{io.EOF, ClassTransient, false},
		{redis.ErrPoolTimeout, ClassTransient, true},
		{ErrUnavailable, ClassUnavailable, true},
		{fmt.Errorf("breaker: %w", ErrUnavailable), ClassUnavailable, true},
		{&AmbiguousError{Cmd: "incr", Cause: read}, ClassAmbiguous, false},
		{&lostReply{cause: read}, ClassAmbiguous, false},
		{fmt.Errorf("wrapped: %w", &lostReply{cause: io.EOF}), ClassAmbiguous, false},
	}
	for _, tt := range tests {
		if got := Classify(tt.err); got != tt.class {
			t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.class)
		}
		if got := NotApplied(tt.err); got != tt.notApplied {
			t.Errorf("NotApplied(%v) = %v, want %v", tt.err, got, tt.notApplied)
		}
	}
	amb := &AmbiguousError{Cmd: "incr", Cause: read}
	var ne net.Error
	if !errors.Is(amb, ErrAmbiguous) || !errors.As(amb, &ne) || !ne.Timeout() {
		t.Fatal("AmbiguousError must match ErrAmbiguous and unwrap to its cause")
	}
	// go-redis must not see the cause of a lostReply (or it would re-send).
	lost := error(&lostReply{cause: read})
	if errors.As(lost, &ne) || errors.Is(lost, io.EOF) {
		t.Fatal("lostReply exposes its cause")
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	yes := []redis.Cmder{
		redis.NewStringCmd(ctx, "get", "k"),
		redis.NewStringCmd(ctx, "GET", "k"),
		redis.NewStatusCmd(ctx, "set", "k", "v"),
		redis.NewStatusCmd(ctx, "set", "k", "nx", "ex", 10), // "nx" is the value here
		redis.NewStatusCmd(ctx, "set", "k", "v", "keepttl"),
		redis.NewIntCmd(ctx, "del", "k"),
		redis.NewIntCmd(ctx, "unlink", "k"),
		redis.NewBoolCmd(ctx, "expire", "k", 10),
		redis.NewBoolCmd(ctx, "pexpireat", "k", 10),
		redis.NewIntCmd(ctx, "hset", "h", "f", "v"),
		redis.NewIntCmd(ctx, "sadd", "s", "m"),
		redis.NewIntCmd(ctx, "zadd", "z", 1, "m"),
		redis.NewStatusCmd(ctx, "mset", "a", 1),
		redis.NewStatusCmd(ctx, "ping"),
		redis.NewStringCmd(ctx, "script", "load", "return 1"),
		redis.NewStringCmd(ctx, "SCRIPT", "LOAD", "return 1"),
		redis.NewStringCmd(ctx, "config", "get", "maxmemory"),
		redis.NewStatusCmd(ctx, "multi"),
	}
	no := []redis.Cmder{
		redis.NewIntCmd(ctx, "incr", "k"),
		redis.NewIntCmd(ctx, "incrby", "k", 2),
		redis.NewIntCmd(ctx, "hincrby", "h", "f", 1),
		redis.NewIntCmd(ctx, "lpush", "l", 1),
		redis.NewIntCmd(ctx, "append", "k", "x"),
		redis.NewCmd(ctx, "eval", "return 1", 0),
		redis.NewCmd(ctx, "evalsha", "abc", 0),
		redis.NewStringCmd(ctx, "xadd", "s", "*", "f", "v"),
		redis.NewStringCmd(ctx, "getdel", "k"),
		redis.NewStringCmd(ctx, "getset", "k", "v"),
		redis.NewStatusCmd(ctx, "set", "k", "v", "nx"),
		redis.NewStatusCmd(ctx, "set", "k", "v", "EX", 10, "NX"),
		redis.NewStringCmd(ctx, "set", "k", "v", "get"),
		redis.NewBoolCmd(ctx, "setnx", "k", "v"),
		redis.NewBoolCmd(ctx, "expire", "k", 10, "nx"),
		redis.NewFloatCmd(ctx, "zadd", "z", "incr", 1, "m"),
		redis.NewIntCmd(ctx, "publish", "c", "m"),
		redis.NewStringCmd(ctx, "script", "kill"),
		redis.NewStringCmd(ctx, "client", "kill", "id", 1),
		redis.NewCmd(ctx, "nosuchcommand"),
		redis.NewCmd(ctx),
	}
	for _, c := range yes {
		if !IsIdempotent(c) {
			t.Errorf("IsIdempotent(%v) = false, want true", c.Args())
		}
	}
	for _, c := range no {
		if IsIdempotent(c) {
			t.Errorf("IsIdempotent(%v) = true, want false", c.Args())
		}
	}
	if !AllIdempotent(yes) || AllIdempotent(append(yes, no[0])) {
		t.Fatal("AllIdempotent")
	}
	if MarkedIdempotent(ctx) || !MarkedIdempotent(WithIdempotent(ctx)) {
		t.Fatal("WithIdempotent")
	}
	type k struct{}
	if !MarkedIdempotent(context.WithValue(WithIdempotent(ctx), k{}, 1)) {
		t.Fatal("WithIdempotent lost in a derived context")
	}
}
