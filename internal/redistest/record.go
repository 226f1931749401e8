package redistest

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Recorder is a go-redis hook that shows Keep every command a client
// sends, alone or in a pipeline, and keeps what Keep returns with ok true.
// It is safe for concurrent use.
type Recorder[T any] struct {
	Keep func(cmd redis.Cmder) (v T, ok bool)

	mu   sync.Mutex
	kept []T
}

func (r *Recorder[T]) record(cmds ...redis.Cmder) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, cmd := range cmds {
		if v, ok := r.Keep(cmd); ok {
			r.kept = append(r.kept, v)
		}
	}
}

// Take returns what was kept since the last Take, in order, and forgets it.
func (r *Recorder[T]) Take() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	kept := r.kept
	r.kept = nil
	return kept
}

func (r *Recorder[T]) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *Recorder[T]) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.record(cmd)
		return next(ctx, cmd)
	}
}

func (r *Recorder[T]) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.record(cmds...)
		return next(ctx, cmds)
	}
}
