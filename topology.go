package rediskit

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/retry"
)

// topologyHook makes a cluster client re-read the slot map as soon as a
// node fails. go-redis reloads it only on MOVED/ASK/READONLY or every
// ClusterStateReloadInterval (60 s): after a master dies and its replica
// takes over, nobody answers MOVED, and every command for the dead master's
// slots would keep dialling it for up to a minute. ReloadState is
// asynchronous and coalesced (one reload at a time, 200 ms apart), so
// calling it on every failed attempt costs nothing while it is running; the
// retry hook's next attempt then goes to the new master.
type topologyHook struct{ cc *redis.ClusterClient }

func (h topologyHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h topologyHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.check(err)
		return err
	}
}

func (h topologyHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.check(pipelineFailure(cmds, err))
		return err
	}
}

// check asks for a reload on a failed node, and on a refusal by that node's
// open breaker too: once the breaker has opened, refusals are all the
// client sees of the dead node, and the reload is what moves its slots to
// the promoted replica.
func (h topologyHook) check(err error) {
	if retry.IsContext(err) {
		return // the caller's deadline, not a failed node
	}
	switch retry.Classify(err) {
	case retry.ClassTransient, retry.ClassAmbiguous, retry.ClassUnavailable:
		h.cc.ReloadState(context.Background())
	}
}
