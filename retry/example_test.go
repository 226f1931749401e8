package retry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rediskit/rediskit/retry"
)

// Do repeats a caller's operation while it fails transiently, with
// full-jitter backoff, and stops on any other error.
func ExampleDo() {
	attempts := 0
	err := retry.Do(context.Background(), retry.Policy{BaseBackoff: time.Millisecond}, func(ctx context.Context) error {
		attempts++
		if attempts == 1 {
			return io.EOF // a dropped connection: worth another try
		}
		return nil
	})
	fmt.Println(err, attempts)
	// Output: <nil> 2
}

// An ambiguous write matches ErrAmbiguous and still exposes its cause.
func ExampleAmbiguousError() {
	var err error = &retry.AmbiguousError{Cmd: "incr", Cause: io.ErrUnexpectedEOF}
	fmt.Println(errors.Is(err, retry.ErrAmbiguous), errors.Is(err, io.ErrUnexpectedEOF), retry.Classify(err))
	// Output: true true ambiguous
}
