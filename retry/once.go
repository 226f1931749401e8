package retry

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Once returns cmd marked so that no retry layer of go-redis sends it a
// second time once it may have reached the server. go-redis consults
// Cmder.NoRetry in every loop that re-sends: Options.MaxRetries on a
// Client, Ring shard or failover client, the ClusterClient's redirect loop,
// pipelines and the AutoPipeliner's batches. A MOVED or ASK redirect is
// still followed (it proves the command did not run), and the Hook still
// re-sends a command whose error proves it never ran (NotApplied).
//
// Once is how session and cache keep "a write is never applied twice" on any
// client they are given, whatever its MaxRetries: the guarantee costs no
// round trip and no server state, only the loss of go-redis's blind re-send
// for the few writes that are not safe to repeat. Pass the error of such a
// write through Ambiguous. The returned Cmder carries cmd's reply: read it
// from cmd.
func Once(cmd redis.Cmder) redis.Cmder {
	// The command kinds rediskit marks get a wrapper of one pointer, which
	// an interface holds without an allocation (TestMarksDoNotAllocate);
	// any other kind is wrapped as an interface, one allocation.
	switch c := cmd.(type) {
	case *redis.Cmd: // the scripts
		return onceScript{c}
	case *redis.StringCmd:
		return onceString{c}
	case *redis.StatusCmd:
		return onceStatus{c}
	case *redis.IntCmd:
		return onceInt{c}
	}
	return onceCmd{cmd}
}

// The wrappers embed the command, so each is a redis.Cmder whose replies
// land in it; only NoRetry differs.
type (
	onceCmd    struct{ redis.Cmder }
	onceScript struct{ *redis.Cmd }
	onceString struct{ *redis.StringCmd }
	onceStatus struct{ *redis.StatusCmd }
	onceInt    struct{ *redis.IntCmd }
)

func (onceCmd) NoRetry() bool    { return true }
func (onceScript) NoRetry() bool { return true }
func (onceString) NoRetry() bool { return true }
func (onceStatus) NoRetry() bool { return true }
func (onceInt) NoRetry() bool    { return true }

// Repeatable returns cmd marked as safe to send twice, for a command that
// the command table cannot know is (a script written to be replayable, a
// SET NX whose value is a unique token). The Hook then re-sends it like a
// read. Unlike WithIdempotent, the mark travels with the command, so it
// also holds on an AutoPipeliner, whose batches reach the Hook with the
// flusher's context, not the caller's.
func Repeatable(cmd redis.Cmder) redis.Cmder {
	switch c := cmd.(type) { // as in Once: no allocation for these kinds
	case *redis.Cmd:
		return repeatableScript{c}
	case *redis.StringCmd:
		return repeatableString{c}
	case *redis.StatusCmd:
		return repeatableStatus{c}
	case *redis.IntCmd:
		return repeatableInt{c}
	}
	return repeatableCmd{cmd}
}

type (
	repeatableCmd    struct{ redis.Cmder }
	repeatableScript struct{ *redis.Cmd }
	repeatableString struct{ *redis.StringCmd }
	repeatableStatus struct{ *redis.StatusCmd }
	repeatableInt    struct{ *redis.IntCmd }
)

// repeatable is the mark IsIdempotent looks for.
func (repeatableCmd) repeatable()    {}
func (repeatableScript) repeatable() {}
func (repeatableString) repeatable() {}
func (repeatableStatus) repeatable() {}
func (repeatableInt) repeatable()    {}

// Ambiguous returns err as the caller of a write sent once must see it: an
// *AmbiguousError (matching ErrAmbiguous and the cause) when err is a
// transient failure that does not prove the write was not applied (a
// timeout or a reset after the request left), err itself otherwise. On a
// rediskit.Client the Hook has already done this; Ambiguous leaves its
// errors as they are.
func Ambiguous(name string, err error) error {
	if err == nil || Classify(err) != ClassTransient || NotApplied(err) {
		return err
	}
	return &AmbiguousError{Cmd: name, Cause: err}
}

// Processor is what Script.RunOnce sends through: a go-redis client of any
// kind, an AutoPipeliner, or a Pipeliner.
type Processor interface {
	Process(ctx context.Context, cmd redis.Cmder) error
}

// Script is a Lua script that can be run as go-redis runs it (Run:
// EVALSHA, then EVAL on NOSCRIPT), once (RunOnce), for a script whose second
// run would apply a write twice, or as a repeatable command
// (RunRepeatable), for a script written to leave the same state when run
// twice.
type Script struct {
	*redis.Script
	// sha and src are the hash and the source as command arguments, boxed
	// once: every run would otherwise allocate one.
	sha, src any
}

// NewScript returns the script with source src.
func NewScript(src string) Script {
	rs := redis.NewScript(src)
	return Script{Script: rs, sha: rs.Hash(), src: src}
}

// RunOnce runs the script by EVALSHA, and by EVAL when the server does not
// have it cached (NOSCRIPT proves the first attempt did not run), each sent
// with Once. The returned command's error is not yet passed through
// Ambiguous: a caller that names its operation does that.
func (s Script) RunOnce(ctx context.Context, c Processor, keys []string, args ...any) *redis.Cmd {
	return s.run(ctx, c, Once, keys, args)
}

// RunRepeatable runs the script like RunOnce, each command sent with
// Repeatable: every retry layer may re-send it.
func (s Script) RunRepeatable(ctx context.Context, c Processor, keys []string, args ...any) *redis.Cmd {
	return s.run(ctx, c, Repeatable, keys, args)
}

func (s Script) run(ctx context.Context, c Processor, mark func(redis.Cmder) redis.Cmder, keys []string, args []any) *redis.Cmd {
	cmd := s.Cmd(ctx, true, keys, args)
	_ = c.Process(ctx, mark(cmd))
	if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmd = s.Cmd(ctx, false, keys, args)
		_ = c.Process(ctx, mark(cmd))
	}
	return cmd
}

// Cmd builds, without sending, the EVALSHA (sha true) or EVAL command of
// the script, for a caller that queues it in its own pipeline with Once or
// Repeatable.
func (s Script) Cmd(ctx context.Context, sha bool, keys []string, args []any) *redis.Cmd {
	a := make([]any, 0, 3+len(keys)+len(args))
	if sha {
		a = append(a, "evalsha", s.sha)
	} else {
		a = append(a, "eval", s.src)
	}
	a = append(a, len(keys))
	for _, k := range keys {
		a = append(a, k)
	}
	a = append(a, args...)
	return redis.NewCmd(ctx, a...)
}
