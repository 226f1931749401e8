package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// loadCtx is a loader's context: the Cache's base context with a deadline,
// answering Value from the caller's context as well (context.WithoutCancel
// semantics: the caller's values, not its cancellation or deadline).
//
// context.WithDeadline arms a timer and registers with its parent on every
// load, taking the parent's lock, which every concurrent miss shares.
// loadCtx does that only when someone asks for Done, so a loader that never
// waits on its context (a computation, a map lookup, a driver that ignores
// ctx) pays for neither. Deadline, Err and Value answer without arming.
type loadCtx struct {
	base     context.Context // cancellation: the Cache's, without values
	vals     context.Context // values: the caller's; nil for none
	deadline time.Time

	once   sync.Once
	state  atomic.Uint32 // loadIdle, then loadArmed or loadReleased
	armed  context.Context
	cancel context.CancelFunc
}

const (
	loadIdle uint32 = iota
	loadArmed
	loadReleased
)

// closedDone is the Done channel of a loadCtx released before anyone asked.
var closedDone = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

func newLoadCtx(base, vals context.Context, deadline time.Time) *loadCtx {
	return &loadCtx{base: base, vals: vals, deadline: deadline}
}

func (l *loadCtx) Deadline() (time.Time, bool) { return l.deadline, true }

func (l *loadCtx) Done() <-chan struct{} {
	l.once.Do(func() {
		l.armed, l.cancel = context.WithDeadline(l.base, l.deadline)
		l.state.Store(loadArmed)
	})
	if l.armed == nil {
		return closedDone
	}
	return l.armed.Done()
}

func (l *loadCtx) Err() error {
	switch l.state.Load() {
	case loadArmed:
		return l.armed.Err()
	case loadReleased:
		return context.Canceled
	}
	if err := l.base.Err(); err != nil {
		return err
	}
	if !time.Now().Before(l.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// Value answers from the base chain first, then from the caller's context.
// The base chain (the Cache's base context and the armed deadline) holds no
// values of its own, only the context package's private cancelCtx key:
// asked after Done, it answers with the armed context, so a context derived
// from l by the loader links to it directly, without a goroutine, and never
// to the caller's cancellation. Every other key reaches the caller's values.
func (l *loadCtx) Value(key any) any {
	var v any
	if l.state.Load() == loadArmed {
		v = l.armed.Value(key)
	} else {
		v = l.base.Value(key)
	}
	if v == nil && l.vals != nil {
		v = l.vals.Value(key)
	}
	return v
}

// release ends l when the loader returns, like the cancel of WithDeadline:
// from then on Done is closed and Err is context.Canceled.
func (l *loadCtx) release() {
	l.once.Do(func() { l.state.Store(loadReleased) })
	if l.cancel != nil {
		l.cancel()
	}
}
