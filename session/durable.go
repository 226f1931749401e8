package session

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// write runs a script that writes. With Options.DurableReplicas it sends a
// WAIT right after the script in one pipeline (one round trip; a first
// EVALSHA that meets NOSCRIPT is sent again as EVAL) and fails the script's
// command with ErrNotDurable when fewer replicas confirmed the write in
// time. Without it, it is the script's Run on the store's executor.
func (s *Store) write(ctx context.Context, sc *redis.Script, keys []string, args ...any) *redis.Cmd {
	n := s.opts.DurableReplicas
	if n <= 0 {
		return sc.Run(ctx, s.exec, keys, args...)
	}
	cmd, wait := s.durable(ctx, sc.EvalSha, keys, args)
	if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmd, wait = s.durable(ctx, sc.Eval, keys, args)
	}
	if cmd.Err() != nil {
		return cmd
	}
	acked, err := wait.Int64()
	switch {
	case err != nil:
		cmd.SetErr(err)
	case acked < int64(n):
		cmd.SetErr(fmt.Errorf("%w: %d of %d within %v", ErrNotDurable, acked, n, s.opts.DurableTimeout))
	}
	return cmd
}

// durable sends the script (by eval: EvalSha or Eval) and a WAIT in one
// pipeline on the client itself: the auto-pipeliner could put other
// callers' commands between the two, and WAIT must follow this write.
func (s *Store) durable(ctx context.Context, eval func(context.Context, redis.Scripter, []string, ...any) *redis.Cmd,
	keys []string, args []any) (script, wait *redis.Cmd) {
	pipe := s.rdb.Pipeline()
	script = eval(ctx, pipe, keys, args...)
	wait = pipe.Do(ctx, "WAIT", s.opts.DurableReplicas, s.opts.DurableTimeout.Milliseconds())
	_, _ = pipe.Exec(ctx) // each command carries its own error
	return script, wait
}
