package session_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

// TestUpgradeFromHash: a session stored by the first version (a hash with
// fields m, u, x and d:<key>) is read by Get, which converts it in place
// keeping its TTL, values and index entry; every later call sees the
// current form.
func TestUpgradeFromHash(t *testing.T) {
	forEachTopology(t, session.Options{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		s, err := e.store.Create(ctx, "dana", map[string]any{"cart": []int{1, 2}, "n": 7}, session.CreateOptions{IP: "10.1.2.3", UserAgent: "ua/1"})
		if err != nil {
			t.Fatal(err)
		}
		var skey string
		for _, k := range keysWith(t, e.rdb, e.opts.Prefix) {
			if strings.HasSuffix(k, s.Info().Handle) {
				skey = k
			}
		}
		raw, err := e.rdb.Get(ctx, skey).Result()
		if err != nil {
			t.Fatal(err)
		}
		meta, user, device, kv, ok := session.SplitStored(raw)
		if !ok {
			t.Fatalf("stored form not understood: %q", raw)
		}
		// Write it back as the first version did.
		fields := []any{"m", meta, "u", user, "x", device}
		for i := 0; i < len(kv); i += 2 {
			fields = append(fields, "d:"+kv[i], kv[i+1])
		}
		ttl := e.rdb.PTTL(ctx, skey).Val()
		e.rdb.Del(ctx, skey)
		if err := e.rdb.HSet(ctx, skey, fields...).Err(); err != nil {
			t.Fatal(err)
		}
		e.rdb.PExpire(ctx, skey, ttl)

		got, err := e.store.Get(ctx, s.ID())
		if err != nil {
			t.Fatalf("Get of a first-version session: %v", err)
		}
		var cart []int
		var n int
		if err := got.Decode("cart", &cart); err != nil || len(cart) != 2 || got.Decode("n", &n) != nil || n != 7 {
			t.Fatalf("values after upgrade: %v %v %v", cart, n, err)
		}
		if info := got.Info(); info.UserID != "dana" || info.IP != "10.1.2.3" || info.UserAgent != "ua/1" {
			t.Fatalf("info after upgrade: %+v", info)
		}
		if typ := e.rdb.Type(ctx, skey).Val(); typ != "string" {
			t.Fatalf("stored as %s after Get, want string", typ)
		}
		if left := e.rdb.PTTL(ctx, skey).Val(); left <= 0 || left > ttl {
			t.Fatalf("TTL after upgrade %v, was %v", left, ttl)
		}
		if _, err := e.store.Update(ctx, s.ID(), session.Changes{Set: map[string]any{"n": 8}}); err != nil {
			t.Fatal(err)
		}
		if list, err := e.store.ListByUser(ctx, "dana"); err != nil || len(list) != 1 {
			t.Fatalf("ListByUser after upgrade = %v, %v", list, err)
		}
	})
}
