package cache

import (
	"context"
	"sync"
	"sync/atomic"
)

// lifecycle owns every goroutine a Cache starts: loads, refreshes, the
// lease-event listener, the near tier's manager and the near tier's
// maintenance tasks. Each is started through it, none starts after close,
// and close waits for all of them (goleak checks it in every test).
type lifecycle struct {
	ctx    context.Context // cancelled by close; parent of loads and refreshes
	cancel context.CancelFunc
	// settle is ctx without its cancellation, for the scripts that end a
	// lease (sent retry.Repeatable: they are, by their token; see "Writes
	// and lost replies" in doc.go).
	settle context.Context

	// owned counts the goroutines entered and not yet exited, plus
	// closedBit once close began; idle is closed when close began and the
	// count is zero. Atomic, not a mutex: every GetOrSet miss enters.
	owned    atomic.Int64
	idle     chan struct{}
	idleOnce sync.Once
}

const closedBit = 1 << 62

func (l *lifecycle) init() {
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.settle = context.WithoutCancel(l.ctx)
	l.idle = make(chan struct{})
}

// enter reserves one goroutine, which must call exit when it ends (or when
// the caller decides not to start it). It returns ErrClosed after close:
// a reservation made before close began is waited for by close.
func (l *lifecycle) enter() error {
	if l.owned.Add(1)&closedBit != 0 {
		l.exit()
		return ErrClosed
	}
	return nil
}

func (l *lifecycle) exit() {
	if l.owned.Add(-1) == closedBit {
		l.idleOnce.Do(func() { close(l.idle) })
	}
}

// goOwned runs fn on an owned goroutine. It returns false without running fn
// after close.
func (l *lifecycle) goOwned(fn func()) bool {
	if l.enter() != nil {
		return false
	}
	go func() {
		defer l.exit()
		fn()
	}()
	return true
}

// close refuses new goroutines, cancels ctx, runs stopping (once: it ends
// what does not watch ctx) and waits for every owned goroutine. It is
// idempotent; a second call only waits.
func (l *lifecycle) close(stopping func()) {
	if prev := l.owned.Or(closedBit); prev&closedBit == 0 {
		l.cancel()
		stopping()
		if prev == 0 {
			l.idleOnce.Do(func() { close(l.idle) })
		}
	}
	<-l.idle
}
