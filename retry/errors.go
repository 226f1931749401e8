package retry

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// ErrAmbiguous reports that a non-idempotent write may or may not have been
// applied: the request left this process but no reply came back (a timeout, a
// connection reset). rediskit never re-sends such a write. The returned error
// wraps both ErrAmbiguous and the cause, so errors.Is works for either.
var ErrAmbiguous = errors.New("rediskit: write outcome unknown")

// ErrUnavailable reports that Redis cannot be reached right now: the circuit
// breaker is open, or the server failed in a way that says it is down. Callers
// can fall back (serve without a cache, answer 503) instead of waiting.
var ErrUnavailable = errors.New("rediskit: redis unavailable")

// Class is the kind of failure an error stands for.
type Class int

const (
	// ClassNone is no error, or redis.Nil: not a failure at all.
	ClassNone Class = iota
	// ClassCaller is a failure the caller caused or asked for: a cancelled or
	// expired context, a Redis error reply such as WRONGTYPE or NOSCRIPT.
	// Repeating the call gives the same answer, and the server is healthy.
	ClassCaller
	// ClassTransient is a failure of the server or the network that a later
	// attempt may not meet: connection refused or reset, a timeout, LOADING,
	// READONLY, MASTERDOWN, CLUSTERDOWN, TRYAGAIN, a pool timeout.
	ClassTransient
	// ClassUnavailable is the circuit breaker refusing the call.
	ClassUnavailable
	// ClassAmbiguous is a non-idempotent write whose outcome is unknown.
	ClassAmbiguous
)

// String returns the class name as used in statistics and metrics labels.
func (c Class) String() string {
	switch c {
	case ClassNone:
		return "none"
	case ClassCaller:
		return "caller"
	case ClassTransient:
		return "transient"
	case ClassUnavailable:
		return "unavailable"
	case ClassAmbiguous:
		return "ambiguous"
	}
	return "unknown"
}

// Classify tells what kind of failure err is. It sees through wrapping.
func Classify(err error) Class {
	switch {
	case err == nil || errors.Is(err, redis.Nil):
		return ClassNone
	case isLostReply(err):
		// The cluster node hook hides the cause from go-redis; the hook
		// that owns it turns it into an AmbiguousError or a retry.
		return ClassAmbiguous
	case errors.Is(err, ErrAmbiguous):
		return ClassAmbiguous
	case errors.Is(err, ErrUnavailable):
		return ClassUnavailable
	case isDialError(err):
		// A dial that timed out on go-redis's DialTimeout context also matches
		// context.DeadlineExceeded: it is the server, not the caller.
		return ClassTransient
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ClassCaller
	case isTransient(err):
		return ClassTransient
	}
	return ClassCaller
}

// IsUnavailable reports whether err means Redis could not serve the call,
// so that a fail-open caller may fall back: err matches ErrUnavailable (the
// breaker refused it, a client or store was closed; session and cache wrap
// their transient failures so), or err is a transient failure as go-redis
// returns it (a reset, a timeout, LOADING) from a client without rediskit's
// hooks. It is errors.Is(err, ErrUnavailable) extended to those raw errors;
// redis.Nil, error replies, context errors and ambiguous writes are not it.
// A MOVED or ASK redirect that reaches the caller (it outlived go-redis's
// redirects while the cluster moved the slot: a failover, a reshard) is
// unavailable too; it is not transient for the breaker, which sees every
// redirect on its way (TestRedirectIsTransient).
func IsUnavailable(err error) bool {
	c := Classify(err)
	return c == ClassUnavailable || c == ClassTransient || isRedirect(err)
}

func isRedirect(err error) bool {
	if _, moved := redis.IsMovedError(err); moved {
		return true
	}
	_, ask := redis.IsAskError(err)
	return ask
}

// IsInfrastructure reports whether err counts against the circuit breaker: a
// transient failure or an ambiguous write, but never redis.Nil, an error reply
// or the caller's own context — not even a write left ambiguous because the
// caller's deadline passed after it was sent (IsContext).
func IsInfrastructure(err error) bool {
	switch Classify(err) {
	case ClassTransient:
		return true
	case ClassAmbiguous:
		return !IsContext(err)
	}
	return false
}

// IsContext reports whether err is the caller's context ending: it matches
// context.Canceled or context.DeadlineExceeded, alone or as the cause of an
// *AmbiguousError (a write whose deadline passed after it was sent). A dial
// that timed out is not: it is the server that did not answer. Such an
// error says nothing about the health of Redis.
func IsContext(err error) bool {
	if err == nil || isDialError(err) || isLostReply(err) {
		return false
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func isTransient(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return true
	}
	if redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsMasterDownError(err) ||
		redis.IsClusterDownError(err) || redis.IsTryAgainError(err) || redis.IsMaxClientsError(err) ||
		isRingDown(err) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// NotApplied reports whether err proves that the command was not executed:
// it never left this process (a failed dial, a pool timeout, the breaker
// refusing it, a closed client) or the server refused it before running it
// (LOADING, READONLY, MASTERDOWN, CLUSTERDOWN, TRYAGAIN, NOREPLICAS, a full
// client table, a MOVED or ASK redirect). Such a command is safe to send
// again even when it is not idempotent.
func NotApplied(err error) bool {
	if err == nil || isLostReply(err) {
		return false
	}
	if isDialError(err) || errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, ErrUnavailable) ||
		errors.Is(err, redis.ErrClosed) || isRingDown(err) {
		return true
	}
	if redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsMasterDownError(err) ||
		redis.IsClusterDownError(err) || redis.IsTryAgainError(err) || redis.IsMaxClientsError(err) ||
		redis.IsNoReplicasError(err) {
		return true
	}
	if _, ok := redis.IsMovedError(err); ok {
		return true
	}
	_, ok := redis.IsAskError(err)
	return ok
}

// isRingDown matches go-redis's (unexported) error of a Ring that refused a
// command because it marks every shard down: nothing was sent.
func isRingDown(err error) bool {
	return strings.HasSuffix(err.Error(), "redis: all ring shards are down")
}

func isDialError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// AmbiguousError is returned for a non-idempotent write whose outcome is
// unknown. It matches ErrAmbiguous with errors.Is and unwraps to its cause.
type AmbiguousError struct {
	// Cmd is the name of the command (for a pipeline, its first write).
	Cmd string
	// Cause is the failure that left the outcome unknown.
	Cause error
}

func (e *AmbiguousError) Error() string {
	return "rediskit: " + e.Cmd + ": write outcome unknown, not retried: " + e.Cause.Error()
}

// Unwrap returns ErrAmbiguous and the cause.
func (e *AmbiguousError) Unwrap() []error { return []error{ErrAmbiguous, e.Cause} }

// lostReply is what the cluster node hook returns in place of a network
// error or timeout that struck after the command was written. It has no
// Unwrap method on purpose: go-redis's ClusterClient re-sends a command whose
// error unwraps to a timeout or EOF (its MaxRedirects loop ignores
// MaxRetries), and that must not happen to a write whose outcome is unknown.
// The cluster-level Hook unpacks it again.
type lostReply struct{ cause error }

func (e *lostReply) Error() string { return "rediskit: reply lost: " + e.cause.Error() }

// errNotResent is the cause recorded when the node hook refuses go-redis's
// own re-send of a pipeline that holds a non-idempotent command.
var errNotResent = errors.New("rediskit: pipeline re-send refused after a failure")

func isLostReply(err error) bool {
	var l *lostReply
	return errors.As(err, &l)
}

// unmark returns the cause hidden in a lostReply and true, or err and false.
func unmark(err error) (error, bool) {
	var l *lostReply
	if errors.As(err, &l) {
		return l.cause, true
	}
	return err, false
}

// Unavailable returns err marked as ErrUnavailable for callers that fall back
// on it: err itself when it already matches (a breaker refusal), else an
// error that matches both ErrUnavailable and err. It keeps messages free of
// "unavailable: … unavailable" stutter.
func Unavailable(err error) error {
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	return &unavailableError{err}
}

type unavailableError struct{ cause error }

func (e *unavailableError) Error() string   { return "redis unavailable: " + e.cause.Error() }
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.cause} }
