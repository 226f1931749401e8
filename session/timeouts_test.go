package session_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rediskit/rediskit/session"
)

// TestPerSessionTimeouts: a session's own idle and absolute timeouts
// (CreateOptions), from 1/1000 to 100 times the store's, behave exactly as
// the store's do. A session used every idle/4 lives until its absolute
// deadline and ends there; an unused one ends at its idle timeout, not a
// millisecond before; an Update is not use (it keeps the expiry).
func TestPerSessionTimeouts(t *testing.T) {
	const storeIdle = time.Hour
	clock := newFakeClock()
	opts := session.Options{IdleTimeout: storeIdle, AbsoluteTimeout: 3 * storeIdle, Clock: clock.Now}
	factors := []float64{0.001, 0.1, 0.5, 1, 2, 10, 100}
	forEachTopology(t, opts, func(t *testing.T, e *env) {
		ctx := context.Background()
		st := e.store
		for _, f := range factors {
			idle := time.Duration(f * float64(storeIdle)).Truncate(time.Millisecond)
			co := session.CreateOptions{IdleTimeout: idle, AbsoluteTimeout: 3 * idle}
			t.Run(fmt.Sprintf("idle=%v", idle), func(t *testing.T) {
				create := func() *session.Session {
					t.Helper()
					s, err := st.Create(ctx, "u", nil, co)
					if err != nil {
						t.Fatal(err)
					}
					if got := s.Info().IdleTimeout; got != idle {
						t.Fatalf("Info().IdleTimeout = %v, want %v", got, idle)
					}
					return s
				}

				// Used every idle/4: alive until the deadline, dead at it.
				used := create()
				lived := 0
				for range 12 {
					clock.Add(idle / 4)
					if _, err := st.Get(ctx, used.ID()); err != nil {
						if !errors.Is(err, session.ErrNotFound) {
							t.Fatal(err)
						}
						break
					}
					lived++
				}
				if lived != 11 {
					t.Fatalf("a session used every idle/4 answered %d Gets, want 11 (alive until its deadline at 3×idle, dead at it)", lived)
				}

				// Unused: alive at idle-1ms, dead at idle.
				a, b := create(), create()
				clock.Add(idle - time.Millisecond)
				if _, err := st.Get(ctx, a.ID()); err != nil {
					t.Fatalf("Get 1ms before the idle timeout: %v", err)
				}
				clock.Add(time.Millisecond)
				if _, err := st.Get(ctx, b.ID()); !errors.Is(err, session.ErrNotFound) {
					t.Fatalf("Get at the idle timeout: %v, want ErrNotFound", err)
				}

				// Update is not use: it keeps the idle expiry.
				u := create()
				clock.Add(idle / 2)
				if _, err := st.Update(ctx, u.ID(), session.Changes{Set: map[string]any{"k": 1}}); err != nil {
					t.Fatal(err)
				}
				clock.Add(idle - idle/2)
				if _, err := st.Get(ctx, u.ID()); !errors.Is(err, session.ErrNotFound) {
					t.Fatalf("Get an idle timeout after Create, with an Update between: %v, want ErrNotFound", err)
				}
			})
		}
	})
}
