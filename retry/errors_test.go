package retry

import (
	"errors"
	"fmt"
	"io"
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
