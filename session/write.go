package session

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/retry"
)

// A write is sent in one of two ways, so that no retry of any client
// applies it twice (see "Writes and lost replies" in the package
// documentation):
//   - once: Create and Update, whose second run would do something the
//     first did not (bring back a session deleted in between, bump the
//     version again), go out with retry.Once: no go-redis loop re-sends
//     them, and a lost reply comes back as retry.ErrAmbiguous;
//   - repeatable: every other script checks the session's existence and
//     leaves the same state when run twice, so it is sent with
//     retry.Repeatable and a client's retries may re-send it to a definite
//     answer.
type sendMode bool

const (
	repeatable sendMode = false
	once       sendMode = true
)

func (m sendMode) mark(cmd redis.Cmder) redis.Cmder {
	if m == once {
		return retry.Once(cmd)
	}
	return retry.Repeatable(cmd)
}

// write runs a script that writes, sent as mode says. With
// Options.DurableReplicas it sends a WAIT right after the script in one
// pipeline (one round trip; a first EVALSHA that meets NOSCRIPT is sent
// again as EVAL) and fails the script's command with ErrNotDurable when
// fewer replicas confirmed the write in time.
func (s *Store) write(ctx context.Context, sc retry.Script, mode sendMode, keys []string, args ...any) *redis.Cmd {
	n := s.opts.DurableReplicas
	if n <= 0 {
		if mode == once {
			return sc.RunOnce(ctx, s.exec, keys, args...)
		}
		return sc.RunRepeatable(ctx, s.exec, keys, args...)
	}
	cmd, wait := s.durable(ctx, sc, mode, true, keys, args)
	if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmd, wait = s.durable(ctx, sc, mode, false, keys, args)
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

// durable sends the script (by EVALSHA when sha, else EVAL) and a WAIT in one
// pipeline to the node that owns the keys: the client itself, or on Cluster
// the master of the keys' slot (the cluster pipeline routes a keyless WAIT
// to some node of its choice). Never the auto-pipeliner: it could put other
// callers' commands between the two, and WAIT must follow this write.
func (s *Store) durable(ctx context.Context, sc retry.Script, mode sendMode, sha bool,
	keys []string, args []any) (script, wait *redis.Cmd) {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return s.durableOn(ctx, s.rdb, sc, mode, sha, keys, args)
	}
	// A MOVED reply means the script did not run: the slot has a new master
	// (failover, resharding) that the client's slot map does not know yet.
	// Wait for the map to learn it, and send again.
	for attempt := 1; ; attempt++ {
		node, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			script = redis.NewCmd(ctx)
			script.SetErr(fmt.Errorf("session: master of the session's slot: %w", err))
			return script, script
		}
		script, wait = s.durableOn(ctx, node, sc, mode, sha, keys, args)
		addr, moved := redis.IsMovedError(script.Err())
		if !moved || attempt == 3 {
			return script, wait
		}
		awaitMaster(ctx, cc, keys[0], addr)
	}
}

// awaitMaster reloads the slot map of cc until addr is the master of key,
// for at most a second or until ctx ends.
func awaitMaster(ctx context.Context, cc *redis.ClusterClient, key, addr string) {
	for range 100 {
		cc.ReloadState(ctx) // asynchronous, and at most one reload at a time
		if node, err := cc.MasterForKey(ctx, key); err == nil && node.Options().Addr == addr {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *Store) durableOn(ctx context.Context, c redis.UniversalClient, sc retry.Script, mode sendMode, sha bool,
	keys []string, args []any) (script, wait *redis.Cmd) {
	pipe := c.Pipeline()
	script = sc.Cmd(ctx, sha, keys, args)
	_ = pipe.Process(ctx, mode.mark(script)) // with once, the pipeline is never re-sent
	wait = pipe.Do(ctx, "WAIT", s.opts.DurableReplicas, s.opts.DurableTimeout.Milliseconds())
	_, _ = pipe.Exec(ctx) // each command carries its own error
	return script, wait
}
