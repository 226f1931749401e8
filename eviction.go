package rediskit

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// ErrOutOfMemory matches, with errors.Is, the error of a command Redis
// refused because maxmemory is reached and nothing can be evicted: with
// maxmemory-policy noeviction every write fails so, and with a volatile-*
// policy once no key with a TTL is left. The command was not applied (an
// error reply, not a failure of Redis: it never counts against the
// breaker and is never retried). Errors of session and cache calls made
// through a Client match it too, as they wrap the command's error;
// redis.IsOOMError also still matches (TestEvictionPolicies/noeviction in
// internal/eviction).
var ErrOutOfMemory = errors.New("rediskit: redis out of memory (maxmemory reached, nothing evictable): write refused")

// oomError is an OOM error reply that matches ErrOutOfMemory and still
// unwraps to go-redis's error.
type oomError struct{ cause error }

func (e *oomError) Error() string        { return ErrOutOfMemory.Error() + ": " + e.cause.Error() }
func (e *oomError) Unwrap() error        { return e.cause }
func (e *oomError) Is(target error) bool { return target == ErrOutOfMemory }

func unwrappedOOM(err error) bool {
	return err != nil && redis.IsOOMError(err) && !errors.Is(err, ErrOutOfMemory)
}

func wrapOOM(err error) error {
	if unwrappedOOM(err) {
		return &oomError{err}
	}
	return err
}

func wrapCmdOOM(cmd redis.Cmder) {
	if err := cmd.Err(); unwrappedOOM(err) {
		cmd.SetErr(&oomError{err})
	}
}

// oomHook gives OOM error replies the ErrOutOfMemory type, on the command
// itself (what cmd.Err() returns) and on the call's result.
type oomHook struct{}

func (oomHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (oomHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		wrapCmdOOM(cmd)
		return wrapOOM(err)
	}
}

func (oomHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			wrapCmdOOM(cmd)
		}
		return wrapOOM(err)
	}
}

// policyUnknown is NodeHealth.MaxmemoryPolicy when INFO memory did not say.
const policyUnknown = "unknown"

// EvictionWarning returns the warning the health report gives for a node
// that answered the check, or "" when there is none:
//
//   - a maxmemory-policy other than noeviction with a maxmemory limit set:
//     under memory pressure Redis evicts keys, and session keys are
//     candidates under every such policy — allkeys-* evict any key, and
//     volatile-* evict keys with a TTL, which every session has. An
//     evicted session logs its user out with no error anywhere;
//   - a policy that cannot be read (INFO refused by an ACL, renamed, or
//     hidden by a proxy): whether sessions can be evicted is unknown.
//
// With maxmemory 0 (no limit) nothing is evicted whatever the policy.
// Cache entries may be evicted: the warning concerns instances that hold
// sessions. Separate logical databases share one instance's memory and
// policy, so they do not protect sessions; a separate instance with
// noeviction does (docs/EVICTION.md; TestEvictionPolicies,
// TestEvictionSeparateInstances, TestEvictionSeparateDatabasesShareMemory
// in internal/eviction; TestHealthEvictionWarning).
func EvictionWarning(n NodeHealth) string {
	if !n.Up {
		return ""
	}
	switch {
	case n.MaxmemoryPolicy == policyUnknown || n.MaxmemoryPolicy == "":
		return fmt.Sprintf("%s: maxmemory-policy unknown (INFO memory refused or incomplete): cannot tell whether Redis may evict session keys", n.Addr)
	case n.MaxmemoryPolicy != "noeviction" && n.Maxmemory != 0:
		limit := "unknown"
		if n.Maxmemory > 0 {
			limit = strconv.FormatInt(n.Maxmemory, 10) + " bytes"
		}
		return fmt.Sprintf("%s: maxmemory-policy %s with maxmemory %s: under memory pressure Redis may evict session keys (they have a TTL) and log users out; keep sessions on an instance with maxmemory-policy noeviction",
			n.Addr, n.MaxmemoryPolicy, limit)
	}
	return ""
}
