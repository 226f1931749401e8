package cache

import (
	"context"
	"sync"
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

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func (l *lifecycle) init() {
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.settle = context.WithoutCancel(l.ctx)
}

// enter reserves one goroutine, which must call exit when it ends. It
// returns ErrClosed after close. claim, if set, runs first under the same
// lock, so no close slips between it and the reservation; when it returns
// false nothing is reserved (started is false, err nil).
func (l *lifecycle) enter(claim func() bool) (started bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false, ErrClosed
	}
	if claim != nil && !claim() {
		return false, nil
	}
	l.wg.Add(1)
	return true, nil
}

func (l *lifecycle) exit() { l.wg.Done() }

// goOwned runs fn on an owned goroutine. It returns false without running fn
// after close.
func (l *lifecycle) goOwned(fn func()) bool {
	if ok, _ := l.enter(nil); !ok {
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
	l.mu.Lock()
	was := l.closed
	l.closed = true
	l.mu.Unlock()
	if !was {
		l.cancel()
		stopping()
	}
	l.wg.Wait()
}
