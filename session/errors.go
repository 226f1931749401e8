package session

import (
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/retry"
)

var (
	// ErrNotFound reports that no live session has the given ID: it never
	// existed, was deleted, rotated away, or passed its idle or absolute
	// timeout.
	ErrNotFound = errors.New("session: not found")

	// ErrMalformedToken reports a session ID of the wrong shape. It is
	// returned before any Redis call is made.
	ErrMalformedToken = errors.New("session: malformed token")

	// ErrConflict reports that Update was given Changes.IfVersion and the
	// stored session had moved on to another version.
	ErrConflict = errors.New("session: version conflict")

	// ErrCorrupt reports stored data that cannot be decoded: a value with an
	// unknown envelope, a metadata field that is not a number, or a key of the
	// wrong Redis type. The stored data is left as it is.
	ErrCorrupt = errors.New("session: corrupt stored data")

	// ErrLimit reports that Create was refused because the user already has
	// Options.MaxPerUser sessions and Options.OnLimit is RefuseNew.
	ErrLimit = errors.New("session: too many sessions for user")

	// ErrTooLarge reports a value, key name or metadata field over its limit.
	ErrTooLarge = errors.New("session: value too large")

	// ErrNoValue reports that the session holds no value under the key.
	ErrNoValue = errors.New("session: no such value")

	// ErrClosed reports a call on a closed Store. Like every ErrClosed of
	// rediskit it matches retry.ErrUnavailable: a caller that falls back
	// when Redis cannot serve (the Manager answers 503) does so during a
	// shutdown too.
	ErrClosed = fmt.Errorf("session: store closed: %w", retry.ErrUnavailable)

	// ErrCommitted reports a Manager call that must change the response
	// (RenewToken, Login, Destroy, LogoutEverywhere) after the response was
	// committed.
	ErrCommitted = errors.New("session: the response is already committed")

	// ErrNotDurable reports a write that the master applied but fewer than
	// Options.DurableReplicas replicas confirmed within
	// Options.DurableTimeout: a failover now may lose it. It matches
	// retry.ErrAmbiguous.
	ErrNotDurable = fmt.Errorf("session: write not confirmed by enough replicas: %w", retry.ErrAmbiguous)
)

// wrapRedis turns an error from go-redis into one of the package's errors:
// redis.Nil never leaks, the script's typed error replies become sentinels,
// and infrastructure failures keep their cause (so retry.IsUnavailable and
// errors.Is on net errors keep working).
func wrapRedis(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, redis.Nil):
		return fmt.Errorf("session: %s: %w", op, ErrNotFound)
	}
	if re, ok := err.(redis.Error); ok {
		msg := re.Error()
		switch {
		case hasPrefix(msg, "SESSNOTFOUND"):
			return fmt.Errorf("session: %s: %w", op, ErrNotFound)
		case hasPrefix(msg, "SESSCONFLICT"):
			return fmt.Errorf("session: %s: %w", op, ErrConflict)
		case hasPrefix(msg, "SESSLIMIT"):
			return fmt.Errorf("session: %s: %w", op, ErrLimit)
		case hasPrefix(msg, "SESSCORRUPT"), hasPrefix(msg, "WRONGTYPE"):
			return fmt.Errorf("session: %s: %w", op, ErrCorrupt)
		}
	}
	if retry.IsUnavailable(err) {
		return fmt.Errorf("session: %s: %w", op, retry.Unavailable(err))
	}
	return fmt.Errorf("session: %s: %w", op, err)
}

// wrapWrite is wrapRedis for a write sent once: a failure that leaves its
// outcome unknown (a reply lost after the request left) matches
// retry.ErrAmbiguous whatever client sent it.
func wrapWrite(op string, err error) error { return wrapRedis(op, retry.Ambiguous(op, err)) }

// wrapRepeated is wrapWrite for a write sent repeatable: when the store's
// client may have re-sent it after a lost reply, a last error that proves
// only that the last attempt did not run (a refused dial) matches
// retry.ErrAmbiguous too (retry.AmbiguousVia).
func (s *Store) wrapRepeated(op string, err error) error {
	return wrapRedis(op, retry.AmbiguousVia(s.rdb, op, err))
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }
