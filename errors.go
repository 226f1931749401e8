package rediskit

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/rediskit/rediskit/retry"
)

// The errors of package rediskit. Every error that says Redis cannot serve
// a call matches retry.ErrUnavailable, as session's and cache's ErrClosed
// do; an outcome rediskit cannot know matches retry.ErrAmbiguous (package
// retry).

// ErrCircuitOpen is returned, without contacting Redis, while the circuit
// breaker is open. It matches retry.ErrUnavailable with errors.Is.
var ErrCircuitOpen = fmt.Errorf("rediskit: circuit breaker open: %w", retry.ErrUnavailable)

// ErrClosed is returned for commands issued through a Client after Close
// began. It matches retry.ErrUnavailable.
var ErrClosed = fmt.Errorf("rediskit: client closed: %w", retry.ErrUnavailable)

// ErrNotMaster is the cause of a failed connection in Sentinel mode when the
// node reached is not the master the sentinels name now: a restarted old
// master that answers as master before the sentinels demote it, a node the
// sentinels are failing over, a replica. The connection is closed before
// any command is sent on it, and the error is a dial error (*net.OpError,
// Op "dial"): package retry classes it as transient and not applied, and
// the breaker counts it. Match it with errors.Is.
var ErrNotMaster = errors.New("rediskit: not the master the sentinels name")

// ConfigError reports an invalid Config field. Value never holds a secret.
type ConfigError struct {
	Field  string // the Config field (or URL parameter / variable) at fault
	Value  string // the offending value, quoted
	Reason string
}

func (e *ConfigError) Error() string {
	return "rediskit: config: " + e.Field + " = " + e.Value + ": " + e.Reason
}

func badField(field string, value any, reason string) error {
	var v string
	switch x := value.(type) {
	case string:
		v = strconv.Quote(x)
	case []string:
		v = fmt.Sprintf("%q", x)
	default:
		v = fmt.Sprint(x)
	}
	return &ConfigError{Field: field, Value: v, Reason: reason}
}
