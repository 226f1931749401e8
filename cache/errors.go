package cache

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/rediskit/rediskit/internal/cachefmt"
	"github.com/rediskit/rediskit/retry"
)

// ErrNotFound is returned by GetOrSet when the loader reported that the value
// does not exist (a loader signals that by returning ErrNotFound, wrapped or
// not). With Options.NegativeTTL set, that answer is itself cached.
var ErrNotFound = errors.New("cache: not found")

// ErrCorrupt reports a stored value whose header or payload cannot be decoded:
// another format version, another codec, a truncated or foreign value. Reads
// never return it: such a value is counted, deleted and treated as a miss. It
// is wrapped by the codec errors of Typed.
var ErrCorrupt = cachefmt.ErrCorrupt

// ErrTooLarge is returned when a value exceeds Options.MaxValueSize.
var ErrTooLarge = errors.New("cache: value too large")

// ErrClosed is returned by calls that would start background work after Close.
// Like every ErrClosed of rediskit it matches retry.ErrUnavailable: a caller
// that falls back when Redis cannot serve does so during a shutdown too
// (TestCloseWaitsForBackgroundWork).
var ErrClosed = fmt.Errorf("cache: closed: %w", retry.ErrUnavailable)

// ErrRemoteLoad is returned to waiters of a load that another process ran and
// that failed there; the local loader is not run in its place.
var ErrRemoteLoad = errors.New("cache: loader failed in another process")

// ErrUnsupportedClient is returned by calls that must reach every master
// (Clear, Stats) when the client is not a *redis.Client,
// *redis.ClusterClient or *redis.Ring.
var ErrUnsupportedClient = errors.New("cache: unsupported client type")

// PanicError is the error every waiter receives when a loader panicked. The
// panic is recovered in the goroutine that ran the loader; the lease is
// released.
type PanicError struct {
	// Value is the value passed to panic.
	Value any
	// Stack is the stack of the panicking goroutine.
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("cache: loader panicked: %v", e.Value) }

// BatchError reports the keys of an MGet or MSet that failed, each with its
// own error; the other keys succeeded. errors.Is and errors.As see every
// per-key error, so errors.Is(err, retry.ErrUnavailable)-style checks work.
type BatchError struct {
	// Op is the operation: "mget" or "mset".
	Op string
	// Errs maps each failed key (as passed by the caller) to its error.
	Errs map[string]error
}

func (e *BatchError) Error() string {
	keys := make([]string, 0, len(e.Errs))
	for k := range e.Errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "cache: %s: %d keys failed", e.Op, len(keys))
	if len(keys) > 0 {
		fmt.Fprintf(&b, " (first %q: %v)", keys[0], e.Errs[keys[0]])
	}
	return b.String()
}

// Unwrap returns the per-key errors.
func (e *BatchError) Unwrap() []error {
	out := make([]error, 0, len(e.Errs))
	for _, err := range e.Errs {
		out = append(out, err)
	}
	return out
}
