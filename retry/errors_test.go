package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
)

func TestUnavailable(t *testing.T) {
	t.Parallel()
	cause := fmt.Errorf("dial: %w", io.EOF)
	err := Unavailable(cause)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, io.EOF) {
		t.Fatalf("Unavailable(%v) = %v: want both ErrUnavailable and the cause", cause, err)
	}
	// A breaker refusal already says it: no second "unavailable".
	open := fmt.Errorf("circuit breaker open: %w", ErrUnavailable)
	if got := Unavailable(open); got != open {
		t.Fatalf("Unavailable(%v) = %v, want it unchanged", open, got)
	}
	if n := strings.Count(fmt.Sprint(Unavailable(cause)), "unavailable"); n != 1 {
		t.Fatalf("%q says unavailable %d times", Unavailable(cause), n)
	}
}

// TestContextErrors: the caller's context ending is never an
// infrastructure failure, not even as the cause of an ambiguous write (a
// write whose deadline passed after it was sent), and Ambiguous leaves such
// errors as they are: a context error alone (the write never left) and an
// AmbiguousError caused by one (it may have run) keep their meaning.
func TestContextErrors(t *testing.T) {
	t.Parallel()
	deadline := fmt.Errorf("rediskit: incr: %w", context.DeadlineExceeded)
	amb := &AmbiguousError{Cmd: "incr", Cause: deadline}
	ioTimeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	dialTimeout := &net.OpError{Op: "dial", Net: "tcp", Err: context.DeadlineExceeded}
	tests := []struct {
		name           string
		err            error
		ctx, infra     bool
		ambiguousAfter bool // errors.Is(Ambiguous("incr", err), ErrAmbiguous)
	}{
		{"deadline", deadline, true, false, false},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), true, false, false},
		{"ambiguous by deadline", amb, true, false, true},
		{"ambiguous by timeout", &AmbiguousError{Cmd: "incr", Cause: ioTimeout}, false, true, true},
		{"i/o timeout", ioTimeout, false, true, true},
		{"dial timeout", dialTimeout, false, true, false},
		{"eof", io.EOF, false, true, true},
		{"nil", nil, false, false, false},
	}
	for _, tt := range tests {
		if got := IsContext(tt.err); got != tt.ctx {
			t.Errorf("%s: IsContext = %v, want %v", tt.name, got, tt.ctx)
		}
		if got := IsInfrastructure(tt.err); got != tt.infra {
			t.Errorf("%s: IsInfrastructure = %v, want %v", tt.name, got, tt.infra)
		}
		got := Ambiguous("incr", tt.err)
		if errors.Is(got, ErrAmbiguous) != tt.ambiguousAfter {
			t.Errorf("%s: Ambiguous = %v, ambiguous %v; want %v", tt.name, got, !tt.ambiguousAfter, tt.ambiguousAfter)
		}
		if tt.err != nil && !errors.Is(got, tt.err) {
			t.Errorf("%s: Ambiguous = %v, lost the cause", tt.name, got)
		}
	}
	if !errors.Is(amb, context.DeadlineExceeded) || !errors.Is(amb, ErrAmbiguous) {
		t.Errorf("%v matches DeadlineExceeded %v, ErrAmbiguous %v; want both", amb, errors.Is(amb, context.DeadlineExceeded), errors.Is(amb, ErrAmbiguous))
	}
}
