package session

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Subscribe delivers the events of the manager's store to fn, as
// Store.Subscribe does (same options, same at-least-once delivery in order
// per session), and keeps doing so through Redis errors: after a failed
// read (a restart, a failover) it logs the error to ManagerOptions.Logger
// and subscribes again with the same Group and Consumer, waiting 100 ms
// after the first failure and up to 5 s after repeated ones. Events that
// were delivered but not acknowledged come again first.
//
// It blocks until ctx ends and then returns ctx's error: the caller owns
// the goroutine that runs it and stops it by ending ctx (it returns within
// the client's read timeout). It returns at once, without retrying, when
// the store has Options.Events off, when opts.Group or opts.Consumer is
// not a plain name (ErrBadGroup), and when the store is closed (ErrClosed).
func (m *Manager) Subscribe(ctx context.Context, opts EventOptions, fn func(context.Context, Event) error) error {
	const first, most = 100 * time.Millisecond, 5 * time.Second
	wait := first
	for {
		began := time.Now()
		err := m.store.Subscribe(ctx, opts, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil || !retryableSubscribe(err) {
			return err
		}
		if time.Since(began) > most {
			wait = first // it ran a while: this is a new failure, not a repeat
		}
		m.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "session: events: subscribe failed; subscribing again",
			slog.String("group", opts.Group), slog.String("error", err.Error()), slog.Duration("in", wait))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, most)
	}
}

// retryableSubscribe says whether a Store.Subscribe error may go away by
// itself: a Redis error may, a misuse never does.
func retryableSubscribe(err error) bool {
	return !errors.Is(err, ErrBadGroup) && !errors.Is(err, ErrClosed) && !errors.Is(err, errEventsOff)
}
