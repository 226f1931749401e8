package retry

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Hook is a go-redis hook that retries commands that are safe to repeat and
// reports the others as ambiguous. Install it with Install on a client whose
// own retries are off (Options.MaxRetries = -1): go-redis then sends each
// command once per call of the hook's next, and Hook decides about repeats.
//
// A command that failed transiently (Classify == ClassTransient) is sent
// again, after full-jitter backoff and within ctx's deadline, when
//   - the error proves it was not executed (NotApplied: a failed dial, a pool
//     timeout, LOADING, TRYAGAIN, …), or
//   - it is idempotent (IsIdempotent), or
//   - ctx is marked with WithIdempotent.
//
// Otherwise the call fails with an *AmbiguousError that wraps ErrAmbiguous
// and the cause, and the command is not sent again. A write that was
// re-sent because it is safe to repeat, but whose re-sends all failed
// after an attempt that may have run, fails with an *AmbiguousError too
// (wrapping the last cause, a breaker refusal say): its outcome is as
// unknown as a write never re-sent (TestHookGivesUpAmbiguously).
//
// A pipeline is retried by re-sending the commands that failed, in their
// order, when every one of them may be re-sent; a transaction (MULTI/EXEC)
// only as a whole. When any failed command may not be re-sent, none is, and
// the failed writes whose reply was lost carry an *AmbiguousError (the
// idempotent ones too: they were not re-sent either).
//
// The zero Hook is not usable; call NewHook.
type Hook struct {
	policy    Policy
	log       *slog.Logger // nil: retries are not logged
	cluster   bool
	retries   atomic.Uint64
	ambiguous atomic.Uint64
}

// NewHook returns a hook that retries under p (zero fields mean defaults).
func NewHook(p Policy) *Hook {
	return &Hook{policy: p.WithDefaults()}
}

// SetLogger makes the hook log each retry at slog.LevelDebug (a retried
// command is routine, not an error: its final failure, if any, reaches the
// caller). Records name the command, the attempt and the error, never
// arguments. Call it before Install; nil (the default) logs nothing.
func (h *Hook) SetLogger(l *slog.Logger) { h.log = l }

func (h *Hook) logRetry(ctx context.Context, cmd string, attempt int, err error) {
	if h.log == nil || !h.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	h.log.LogAttrs(ctx, slog.LevelDebug, "rediskit: retrying a command",
		slog.String("component", "rediskit"), slog.String("cmd", cmd),
		slog.Int("attempt", attempt+1), slog.String("error", err.Error()))
}

// Policy returns the policy the hook retries under, defaults applied.
func (h *Hook) Policy() Policy { return h.policy }

// Retries returns how many times the hook re-sent a command or pipeline.
func (h *Hook) Retries() uint64 { return h.retries.Load() }

// Ambiguous returns how many commands failed with an *AmbiguousError.
func (h *Hook) Ambiguous() uint64 { return h.ambiguous.Load() }

// Install adds h to rdb. On a *redis.ClusterClient it also installs, on
// every node client, the node hook that stops go-redis's cluster code from
// re-sending a command whose reply was lost (ClusterClient retries network
// errors inside its redirect loop whatever MaxRetries says). Install must run
// before the first command, because node clients that already exist do not
// get the node hook. A hook must be installed on one client only.
func (h *Hook) Install(rdb redis.UniversalClient) {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		h.cluster = true
		cc.OnNewNode(func(node *redis.Client) { node.AddHook(nodeHook{}) })
		hooked.add(cc)
	}
	rdb.AddHook(h)
}

// DialHook implements redis.Hook; dials pass through.
func (h *Hook) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (h *Hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err == nil {
			return nil
		}
		return h.retryCmd(ctx, cmd, next, err)
	}
}

func (h *Hook) retryCmd(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook, err error) error {
	// mayHaveRun: an earlier attempt's reply was lost, so a later failure
	// that proves only its own attempt did not run leaves the outcome
	// unknown.
	mayHaveRun := false
	for attempt := 1; ; attempt++ {
		cause, lost := unmark(err)
		if !lost && Classify(cause) != ClassTransient {
			return h.giveUp(ctx, cmd, cause, mayHaveRun)
		}
		if lost || !NotApplied(cause) {
			if !IsIdempotent(cmd) && !MarkedIdempotent(ctx) {
				h.ambiguous.Add(1)
				return &AmbiguousError{Cmd: cmd.Name(), Cause: cause}
			}
			mayHaveRun = true
		}
		if isClosed(cause) || attempt >= h.policy.MaxAttempts || noRetry(ctx) || !h.policy.wait(ctx, attempt) {
			return h.giveUp(ctx, cmd, cause, mayHaveRun)
		}
		h.retries.Add(1)
		h.logRetry(ctx, cmd.Name(), attempt, cause)
		cmd.SetErr(nil)
		if err = next(ctx, cmd); err == nil {
			return nil
		}
	}
}

// giveUp returns the error of a command the hook stops retrying. A write
// (idempotent, or marked as safe to repeat) whose earlier attempt may have
// run did not fail for sure when a later attempt was refused (the breaker,
// a failed dial) or lost too: it is reported as ambiguous, as a write that
// was never retried would be. A read's failure is just a failure.
func (h *Hook) giveUp(ctx context.Context, cmd redis.Cmder, cause error, mayHaveRun bool) error {
	if !mayHaveRun || !writes(ctx, cmd) {
		return cause
	}
	switch Classify(cause) {
	case ClassTransient, ClassUnavailable:
	default:
		if !IsContext(cause) {
			return cause
		}
	}
	h.ambiguous.Add(1)
	return &AmbiguousError{Cmd: cmd.Name(), Cause: cause}
}

// ProcessPipelineHook implements redis.Hook, for pipelines and transactions.
func (h *Hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.cluster && !MarkedIdempotent(ctx) && !AllIdempotent(cmds) {
			ctx = context.WithValue(ctx, trackerKey{}, &tracker{seen: make(map[redis.Cmder]struct{}, len(cmds))})
		}
		if err := next(ctx, cmds); err == nil {
			return nil
		}
		return h.retryPipeline(ctx, cmds, next)
	}
}

func (h *Hook) retryPipeline(ctx context.Context, cmds []redis.Cmder, next redis.ProcessPipelineHook) error {
	tx := len(cmds) > 0 && cmds[0].Name() == "multi"
	marked := MarkedIdempotent(ctx)
	// ran holds the commands an earlier attempt may have run (see
	// retryCmd); done settles them when the hook stops.
	var ran map[redis.Cmder]bool
	done := func() error {
		for c := range ran {
			if err := c.Err(); err != nil && !isAmbiguous(err) {
				if amb := h.giveUp(ctx, c, err, true); amb != err {
					c.SetErr(amb)
				}
			}
		}
		return firstErr(cmds)
	}
	for attempt := 1; ; attempt++ {
		// Collect the commands that failed transiently and decide whether
		// each may be sent again.
		var failed []redis.Cmder
		resendable, closed := true, false
		for _, c := range cmds {
			cause, lost := unmark(c.Err())
			if lost {
				c.SetErr(cause)
			} else if Classify(cause) != ClassTransient {
				continue
			}
			failed = append(failed, c)
			closed = closed || isClosed(cause)
			if lost || !NotApplied(cause) {
				if !marked && !IsIdempotent(c) {
					resendable = false
				} else {
					if ran == nil {
						ran = make(map[redis.Cmder]bool)
					}
					ran[c] = true
				}
			}
		}
		if len(failed) == 0 {
			return done()
		}
		if !resendable {
			if tx {
				// The transaction as a whole may or may not have run.
				h.ambiguous.Add(1)
				name := firstWrite(cmds)
				for _, c := range failed {
					c.SetErr(&AmbiguousError{Cmd: name, Cause: c.Err()})
				}
				return firstErr(cmds)
			}
			for _, c := range failed {
				if !IsIdempotent(c) && !NotApplied(c.Err()) {
					h.ambiguous.Add(1)
					c.SetErr(&AmbiguousError{Cmd: c.Name(), Cause: c.Err()})
				}
			}
			return done()
		}
		if closed || attempt >= h.policy.MaxAttempts || noRetry(ctx) || !h.policy.wait(ctx, attempt) {
			return done()
		}
		if tx {
			failed = cmds
		}
		h.retries.Add(1)
		h.logRetry(ctx, "pipeline:"+failed[0].Name(), attempt, failed[0].Err())
		for _, c := range failed {
			c.SetErr(nil)
		}
		if err := next(ctx, failed); err == nil {
			return done()
		}
	}
}

func isAmbiguous(err error) bool { return errors.Is(err, ErrAmbiguous) }

// firstWrite names the first non-idempotent command of cmds.
func firstWrite(cmds []redis.Cmder) string {
	for _, c := range cmds {
		if !IsIdempotent(c) {
			return c.Name()
		}
	}
	return cmds[0].Name()
}

func firstErr(cmds []redis.Cmder) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return err
		}
	}
	return nil
}

func isClosed(err error) bool {
	return err == redis.ErrClosed || err == net.ErrClosed
}

// trackerKey carries a *tracker from the cluster-level pipeline hook to the
// node hooks of a pipeline that holds a non-idempotent command.
type trackerKey struct{}

// tracker remembers which commands of one pipeline call were already handed
// to a node. go-redis's ClusterClient re-sends the failed part of a pipeline
// from inside its own code (processPipelineNode → mapCmdsByNode), before any
// hook sees the error; the second pass through the node hook is the only
// place where that re-send can be stopped.
type tracker struct {
	mu   sync.Mutex
	seen map[redis.Cmder]struct{}
}

// refuse reports whether sending cmds again could execute a non-idempotent
// command twice: one was sent before and its error does not prove it was not
// executed.
func (t *tracker) refuse(cmds []redis.Cmder) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range cmds {
		if _, ok := t.seen[c]; ok && !IsIdempotent(c) && !NotApplied(c.Err()) {
			return true
		}
	}
	return false
}

func (t *tracker) record(cmds []redis.Cmder) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range cmds {
		t.seen[c] = struct{}{}
	}
}

// nodeHook runs on every node client of a ClusterClient (see Hook.Install).
type nodeHook struct{}

func (nodeHook) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook hides a network error or timeout that struck after the command
// was sent behind a lostReply, which go-redis's cluster redirect loop does
// not retry. The cluster-level Hook then retries an idempotent command under
// its policy, or reports a non-idempotent one as ambiguous.
func (nodeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err != nil && Classify(err) == ClassTransient && !NotApplied(err) {
			return &lostReply{cause: err}
		}
		return err
	}
}

// ProcessPipelineHook refuses go-redis's re-send of a pipeline part that
// holds a non-idempotent command already sent once. Commands left without an
// error by the refusal get errNotResent (go-redis sets the returned error on
// them), hidden in a lostReply so the cluster-level Hook reports them as
// ambiguous. Transactions are left to go-redis, which never re-sends one
// after its replies were lost.
func (nodeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		t, _ := ctx.Value(trackerKey{}).(*tracker)
		if t == nil || isTx(cmds) {
			return next(ctx, cmds)
		}
		if t.refuse(cmds) {
			return &lostReply{cause: errNotResent}
		}
		err := next(ctx, cmds)
		t.record(cmds)
		return err
	}
}

func isTx(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		if c.Name() == "multi" {
			return true
		}
	}
	return false
}
