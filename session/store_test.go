package session_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/retry"
	"github.com/rediskit/rediskit/session"
)

func TestRoundTripsPerOperation(t *testing.T) {
	forEachTopology(t, session.Options{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		st := e.store
		check := func(op string, want int, cmd ...string) {
			t.Helper()
			n, cmds := e.count.get()
			if n != want {
				t.Errorf("%s: %d round trips %v, want %d", op, n, cmds, want)
			}
			wantCmd := "evalsha"
			if len(cmd) > 0 {
				wantCmd = cmd[0]
			}
			for _, c := range cmds {
				if c != wantCmd {
					t.Errorf("%s: command %q, want only %s", op, c, wantCmd)
				}
			}
			e.count.reset()
		}
		s, err := st.Create(ctx, "alice", map[string]any{"n": 1}, session.CreateOptions{IP: "10.0.0.1", UserAgent: "test"})
		if err != nil {
			t.Fatal(err)
		}
		check("Create", 1)
		got, err := st.Get(ctx, s.ID())
		if err != nil {
			t.Fatal(err)
		}
		check("Get", 1, "get") // within the touch interval: a plain read
		var n int
		if err := got.Decode("n", &n); err != nil || n != 1 {
			t.Fatalf("Decode n = %d, %v", n, err)
		}
		if _, err := st.Update(ctx, s.ID(), session.Changes{Set: map[string]any{"n": 2}}); err != nil {
			t.Fatal(err)
		}
		check("Update", 1)
		if _, _, err := st.Extend(ctx, s.ID(), time.Hour); err != nil {
			t.Fatal(err)
		}
		check("Extend", 1)
		id2, err := st.Rotate(ctx, s.ID())
		if err != nil {
			t.Fatal(err)
		}
		check("Rotate", 1)
		if _, err := st.ListByUser(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		check("ListByUser", 1)
		if ok, err := st.Delete(ctx, id2); err != nil || !ok {
			t.Fatalf("Delete = %v, %v", ok, err)
		}
		check("Delete", 1)
		if _, err := st.DeleteByUser(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		check("DeleteByUser", 1)
		if _, err := st.Get(ctx, "short"); !errors.Is(err, session.ErrMalformedToken) {
			t.Fatalf("Get(malformed) = %v", err)
		}
		check("Get malformed", 0)
	})
}

func TestLifecycle(t *testing.T) {
	forEachTopology(t, session.Options{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		st := e.store
		s, err := st.Create(ctx, "bob", map[string]any{"cart": []string{"a", "b"}, "n": 7},
			session.CreateOptions{IP: "192.0.2.1", UserAgent: "Firefox", Persist: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(s.ID()) != session.TokenLen || !session.ValidToken(s.ID()) {
			t.Fatalf("bad token shape %d", len(s.ID()))
		}
		if strings.Contains(fmt.Sprintf("%v %+v %#v %s", s, s, s, s), s.ID()) {
			t.Fatal("formatting a Session printed its ID")
		}
		for _, k := range keysWith(t, e.rdb, e.opts.Prefix) {
			if strings.Contains(k, s.ID()) || strings.Contains(k, "bob") {
				t.Fatalf("key %q holds the token or the user ID", k)
			}
		}
		got, err := st.Get(ctx, s.ID())
		if err != nil {
			t.Fatal(err)
		}
		info := got.Info()
		if info.UserID != "bob" || info.IP != "192.0.2.1" || info.UserAgent != "Firefox" || !info.Persist ||
			info.Handle != s.Info().Handle || got.Version() != 1 {
			t.Fatalf("info = %+v version %d", info, got.Version())
		}
		if !info.Deadline.After(info.ExpiresAt) || info.IdleTimeout != 30*time.Minute {
			t.Fatalf("deadline %v expiry %v idle %v", info.Deadline, info.ExpiresAt, info.IdleTimeout)
		}
		var cart []string
		if err := got.Decode("cart", &cart); err != nil || len(cart) != 2 {
			t.Fatalf("cart %v %v", cart, err)
		}
		if err := got.Decode("nope", &cart); !errors.Is(err, session.ErrNoValue) {
			t.Fatalf("Decode missing = %v", err)
		}
		v, err := st.Update(ctx, s.ID(), session.Changes{Set: map[string]any{"x": "y"}, Delete: []string{"cart"}})
		if err != nil || v != 2 {
			t.Fatalf("Update = %d, %v", v, err)
		}
		got, _ = st.Get(ctx, s.ID())
		if got.Has("cart") || !got.Has("x") || !got.Has("n") {
			t.Fatalf("keys after update: %v", got.Keys())
		}
		if _, err := st.Update(ctx, s.ID(), session.Changes{Set: map[string]any{"x": 1}, IfVersion: 1}); !errors.Is(err, session.ErrConflict) {
			t.Fatalf("stale IfVersion: %v", err)
		}
		if _, err := st.Update(ctx, s.ID(), session.Changes{Set: map[string]any{"x": 1}, IfVersion: 2}); err != nil {
			t.Fatalf("current IfVersion: %v", err)
		}

		// Rotate: same data, new ID, old ID dead.
		id2, err := st.Rotate(ctx, s.ID())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Get(ctx, s.ID()); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("old ID after Rotate: %v", err)
		}
		got, err = st.Get(ctx, id2)
		if err != nil || !got.Has("x") || got.Info().UserID != "bob" {
			t.Fatalf("new ID after Rotate: %v %v", got, err)
		}
		if _, err := st.Update(ctx, s.ID(), session.Changes{Set: map[string]any{"x": 1}}); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("Update of rotated ID: %v", err)
		}
		list, err := st.ListByUser(ctx, "bob")
		if err != nil || len(list) != 1 || list[0].Handle != got.Info().Handle || list[0].UserAgent != "Firefox" {
			t.Fatalf("ListByUser = %+v, %v", list, err)
		}

		// A second device, then revoke it by handle.
		s2, err := st.Create(ctx, "bob", nil, session.CreateOptions{UserAgent: "Phone"})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := st.RevokeHandle(ctx, "mallory", s2.Info().Handle); err != nil || ok {
			t.Fatalf("RevokeHandle by another user = %v, %v", ok, err)
		}
		if ok, err := st.RevokeHandle(ctx, "bob", s2.Info().Handle); err != nil || !ok {
			t.Fatalf("RevokeHandle = %v, %v", ok, err)
		}
		if _, err := st.Get(ctx, s2.ID()); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("revoked session: %v", err)
		}

		// Anonymous sessions work and are not indexed.
		anon, err := st.Create(ctx, "", map[string]any{"theme": "dark"}, session.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if g, err := st.Get(ctx, anon.ID()); err != nil || g.Info().UserID != "" {
			t.Fatalf("anonymous Get: %v", err)
		}
		anon2, err := st.Rotate(ctx, anon.ID())
		if err != nil {
			t.Fatal(err)
		}

		st2, err := st.Stats(ctx)
		if err != nil || st2.Sessions != 2 || st2.Users != 1 || st2.Indexed != 1 {
			t.Fatalf("Stats = %+v, %v", st2, err)
		}

		if n, err := st.DeleteByUser(ctx, "bob"); err != nil || n != 1 {
			t.Fatalf("DeleteByUser = %d, %v", n, err)
		}
		if ok, err := st.Delete(ctx, anon2); err != nil || !ok {
			t.Fatalf("Delete anon = %v %v", ok, err)
		}
		if ok, err := st.Delete(ctx, anon2); err != nil || ok {
			t.Fatalf("Delete twice = %v %v", ok, err)
		}
		if keys := keysWith(t, e.rdb, e.opts.Prefix); len(keys) != 0 {
			t.Fatalf("keys left: %v", keys)
		}
	})
}

func TestMalformedTokensNeverReachRedis(t *testing.T) {
	forEachTopology(t, session.Options{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		good, err := e.store.Create(ctx, "u", nil, session.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		e.count.reset()
		bad := []string{"", "x", good.ID()[:63], good.ID() + "A", strings.Repeat("*", 64),
			good.ID()[:60] + "{}:*", strings.Repeat("=", 64), good.ID()[:63] + "+", good.ID()[:63] + "/"}
		for _, tok := range bad {
			if _, err := e.store.Get(ctx, tok); !errors.Is(err, session.ErrMalformedToken) {
				t.Errorf("Get(%q) = %v", tok, err)
			}
			if _, err := e.store.Update(ctx, tok, session.Changes{}); !errors.Is(err, session.ErrMalformedToken) {
				t.Errorf("Update(%q) = %v", tok, err)
			}
			if _, err := e.store.Delete(ctx, tok); !errors.Is(err, session.ErrMalformedToken) {
				t.Errorf("Delete(%q) = %v", tok, err)
			}
			if _, err := e.store.Rotate(ctx, tok); !errors.Is(err, session.ErrMalformedToken) {
				t.Errorf("Rotate(%q) = %v", tok, err)
			}
			if _, _, err := e.store.Extend(ctx, tok, time.Hour); !errors.Is(err, session.ErrMalformedToken) {
				t.Errorf("Extend(%q) = %v", tok, err)
			}
		}
		if n, cmds := e.count.get(); n != 0 {
			t.Fatalf("malformed tokens caused %d Redis calls: %v", n, cmds)
		}
		// A well-formed but unknown token is a miss, not an error of shape.
		other := []byte(good.ID())
		other[63] ^= 1
		if other[63] == '-' || other[63] == '_' || (other[63] >= 'A' && other[63] <= 'Z') || (other[63] >= 'a' && other[63] <= 'z') || (other[63] >= '0' && other[63] <= '9') {
			if _, err := e.store.Get(ctx, string(other)); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("Get(unknown) = %v", err)
			}
		}
	})
}

func TestTimeouts(t *testing.T) {
	// TouchInterval -1: every Get runs the script. 20 minutes: most Gets
	// are plain reads, and the fake clock runs ahead of Redis, so the
	// keys' TTLs have not ended them: the store's own check (and the
	// script it then runs) must.
	for _, touch := range []time.Duration{-1, 20 * time.Minute} {
		t.Run(fmt.Sprintf("touch=%v", touch), func(t *testing.T) { testTimeouts(t, touch) })
	}
}

func testTimeouts(t *testing.T, touch time.Duration) {
	clock := newFakeClock()
	opts := session.Options{IdleTimeout: time.Hour, AbsoluteTimeout: 3 * time.Hour, Clock: clock.Now, TouchInterval: touch}
	forEachTopology(t, opts, func(t *testing.T, e *env) {
		ctx := context.Background()
		st := e.store

		// Idle: used within the idle window it lives on; left alone, it dies.
		s, err := st.Create(ctx, "idle", nil, session.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			clock.Add(50 * time.Minute)
			if _, err := st.Get(ctx, s.ID()); err != nil {
				t.Fatalf("Get within idle window: %v", err)
			}
		}
		clock.Add(61 * time.Minute)
		if _, err := st.Get(ctx, s.ID()); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("Get after idle timeout: %v", err)
		}
		// Gone for every caller: the key and its index entry were removed.
		if keys := keysWith(t, e.rdb, e.opts.Prefix); len(keys) != 0 {
			t.Fatalf("keys left after idle timeout: %v", keys)
		}

		// Absolute: activity cannot keep it past its deadline.
		s, err = st.Create(ctx, "abs", nil, session.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			clock.Add(35 * time.Minute)
			if _, err := st.Get(ctx, s.ID()); err != nil {
				t.Fatalf("Get before deadline: %v", err)
			}
		}
		clock.Add(10 * time.Minute) // 185 minutes since creation
		for _, op := range []func() error{
			func() error { _, err := st.Get(ctx, s.ID()); return err },
			func() error {
				_, err := st.Update(ctx, s.ID(), session.Changes{Set: map[string]any{"a": 1}})
				return err
			},
			func() error { _, err := st.Rotate(ctx, s.ID()); return err },
		} {
			if err := op(); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("after absolute timeout: %v", err)
			}
		}
		if keys := keysWith(t, e.rdb, e.opts.Prefix); len(keys) != 0 {
			t.Fatalf("keys left after absolute timeout: %v", keys)
		}

		// Extend pushes the deadline.
		s, err = st.Create(ctx, "ext", nil, session.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, dl, err := st.Extend(ctx, s.ID(), 5*time.Hour); err != nil || !dl.Equal(clock.Now().Add(5*time.Hour).Truncate(time.Millisecond)) {
			t.Fatalf("Extend deadline %v, %v", dl, err)
		}
		for range 4 {
			clock.Add(55 * time.Minute)
			if _, err := st.Get(ctx, s.ID()); err != nil {
				t.Fatalf("Get of extended session: %v", err)
			}
		}
	})
}

func TestTouchIntervalLimitsWrites(t *testing.T) {
	clock := newFakeClock()
	opts := session.Options{IdleTimeout: time.Hour, TouchInterval: time.Minute, Clock: clock.Now}
	forEachTopology(t, opts, func(t *testing.T, e *env) {
		ctx := context.Background()
		s, err := e.store.Create(ctx, "t", nil, session.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		created := s.Info().LastSeen
		clock.Add(30 * time.Second)
		e.count.reset()
		g, _ := e.store.Get(ctx, s.ID())
		if !g.Info().LastSeen.Equal(created) {
			t.Fatalf("last-seen moved within the touch interval: %v -> %v", created, g.Info().LastSeen)
		}
		if n, cmds := e.count.get(); n != 1 || cmds[0] != "get" {
			t.Fatalf("Get within the touch interval: %d round trips %v, want one get", n, cmds)
		}
		clock.Add(31 * time.Second)
		e.count.reset()
		g, _ = e.store.Get(ctx, s.ID())
		// The documented cost of a touching Get: the read, then the script.
		if n, cmds := e.count.get(); n != 2 || cmds[0] != "get" || cmds[1] != "evalsha" {
			t.Fatalf("touching Get: %d round trips %v, want get then evalsha", n, cmds)
		}
		if want := clock.Now().Truncate(time.Millisecond); !g.Info().LastSeen.Equal(want) {
			t.Fatalf("last-seen = %v, want %v", g.Info().LastSeen, want)
		}
		if want := clock.Now().Add(time.Hour).Truncate(time.Millisecond); !g.Info().ExpiresAt.Equal(want) {
			t.Fatalf("expiry = %v, want %v", g.Info().ExpiresAt, want)
		}
	})
}

func TestNoLostUpdates(t *testing.T) {
	forEachTopology(t, session.Options{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		s, err := e.store.Create(ctx, "u", nil, session.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		const n = 50
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				_, err := e.store.Update(ctx, s.ID(), session.Changes{Set: map[string]any{fmt.Sprintf("k%d", i): i}})
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		g, err := e.store.Get(ctx, s.ID())
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			var v int
			if err := g.Decode(fmt.Sprintf("k%d", i), &v); err != nil || v != i {
				t.Fatalf("k%d = %d, %v", i, v, err)
			}
		}
		if g.Version() != n+1 {
			t.Fatalf("version %d, want %d", g.Version(), n+1)
		}

		// Same key: Redis orders the writers; with IfVersion exactly one of
		// the writers that read the same version wins.
		var wins, conflicts int
		var mu sync.Mutex
		for i := range n {
			wg.Go(func() {
				_, err := e.store.Update(ctx, s.ID(), session.Changes{Set: map[string]any{"same": i}, IfVersion: g.Version()})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, session.ErrConflict):
					conflicts++
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if wins != 1 || conflicts != n-1 {
			t.Fatalf("IfVersion: %d wins, %d conflicts", wins, conflicts)
		}
	})
}

func TestNoResurrection(t *testing.T) {
	// TouchInterval -1: every Get runs the touch script. 1ms: Gets mix plain
	// reads and touches that race the deletes.
	for _, touch := range []time.Duration{-1, time.Millisecond} {
		t.Run(fmt.Sprintf("touch=%v", touch), func(t *testing.T) { testNoResurrection(t, touch) })
	}
}

func testNoResurrection(t *testing.T, touch time.Duration) {
	forEachTopology(t, session.Options{TouchInterval: touch}, func(t *testing.T, e *env) {
		ctx := context.Background()
		st := e.store
		const rounds = 30
		var dead []string
		var deadMu sync.Mutex
		for r := range rounds {
			user := fmt.Sprintf("user%d", r%3)
			s, err := st.Create(ctx, user, map[string]any{"a": 1}, session.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			start := make(chan struct{})
			for w := range 8 {
				wg.Go(func() {
					<-start
					for i := range 10 {
						_, err := st.Update(ctx, s.ID(), session.Changes{Set: map[string]any{fmt.Sprintf("w%d", w): i}})
						if err != nil && !errors.Is(err, session.ErrNotFound) {
							t.Error(err)
						}
						if _, err := st.Get(ctx, s.ID()); err != nil && !errors.Is(err, session.ErrNotFound) {
							t.Error(err)
						}
						_, _, _ = st.Extend(ctx, s.ID(), time.Hour)
					}
				})
			}
			wg.Go(func() {
				<-start
				switch r % 3 {
				case 0:
					if _, err := st.Delete(ctx, s.ID()); err != nil {
						t.Error(err)
					}
					deadMu.Lock()
					dead = append(dead, s.ID())
					deadMu.Unlock()
				case 1:
					if _, err := st.DeleteByUser(ctx, user); err != nil {
						t.Error(err)
					}
					deadMu.Lock()
					dead = append(dead, s.ID())
					deadMu.Unlock()
				case 2:
					id2, err := st.Rotate(ctx, s.ID())
					if err != nil {
						t.Error(err)
					}
					deadMu.Lock()
					dead = append(dead, s.ID())
					deadMu.Unlock()
					if _, err := st.Delete(ctx, id2); err != nil {
						t.Error(err)
					}
				}
			})
			close(start)
			wg.Wait()
		}
		for _, id := range dead {
			if _, err := st.Get(ctx, id); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("dead session came back: %v", err)
			}
		}
		if keys := keysWith(t, e.rdb, e.opts.Prefix); len(keys) != 0 {
			t.Fatalf("keys left (partial records or index entries): %v", keys)
		}
	})
}

func TestCapPerUser(t *testing.T) {
	t.Run("revoke oldest", func(t *testing.T) {
		forEachTopology(t, session.Options{MaxPerUser: 3}, func(t *testing.T, e *env) {
			ctx := context.Background()
			var ids []string
			for i := range 5 {
				s, err := e.store.Create(ctx, "capped", map[string]any{"i": i}, session.CreateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, s.ID())
				time.Sleep(2 * time.Millisecond) // distinct creation times
			}
			for i, id := range ids {
				_, err := e.store.Get(ctx, id)
				if i < 2 && !errors.Is(err, session.ErrNotFound) {
					t.Errorf("session %d should be revoked: %v", i, err)
				}
				if i >= 2 && err != nil {
					t.Errorf("session %d should live: %v", i, err)
				}
			}
			if l, _ := e.store.ListByUser(ctx, "capped"); len(l) != 3 {
				t.Fatalf("ListByUser = %d sessions", len(l))
			}
			// Another user is not affected.
			if _, err := e.store.Create(ctx, "other", nil, session.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("refuse new", func(t *testing.T) {
		forEachTopology(t, session.Options{MaxPerUser: 2, OnLimit: session.RefuseNew}, func(t *testing.T, e *env) {
			ctx := context.Background()
			var ids []string
			for range 2 {
				s, err := e.store.Create(ctx, "capped", nil, session.CreateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, s.ID())
			}
			if _, err := e.store.Create(ctx, "capped", nil, session.CreateOptions{}); !errors.Is(err, session.ErrLimit) {
				t.Fatalf("third Create = %v", err)
			}
			for _, id := range ids {
				if _, err := e.store.Get(ctx, id); err != nil {
					t.Fatalf("existing session after refusal: %v", err)
				}
			}
			if _, err := e.store.Delete(ctx, ids[0]); err != nil {
				t.Fatal(err)
			}
			if _, err := e.store.Create(ctx, "capped", nil, session.CreateOptions{}); err != nil {
				t.Fatalf("Create after a logout: %v", err)
			}
		})
	})
}

func TestCorruptData(t *testing.T) {
	forEachTopology(t, session.Options{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		s, err := e.store.Create(ctx, "c", map[string]any{"good": 1}, session.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		keys := keysWith(t, e.rdb, e.opts.Prefix+"{")
		var skey string
		for _, k := range keys {
			if strings.Contains(k, ":s:") {
				skey = k
			}
		}
		if skey == "" {
			t.Fatalf("no session key in %v", keys)
		}
		orig, err := e.rdb.Get(ctx, skey).Result()
		if err != nil {
			t.Fatal(err)
		}
		meta, user, device, kv, ok := session.SplitStored(orig)
		if !ok {
			t.Fatalf("stored form not understood: %q", orig)
		}
		plant := func(raw string) {
			t.Helper()
			if err := e.rdb.Set(ctx, skey, raw, redis.KeepTTL).Err(); err != nil {
				t.Fatal(err)
			}
		}
		unchanged := func(raw string) {
			t.Helper()
			if v, _ := e.rdb.Get(ctx, skey).Result(); v != raw {
				t.Fatalf("planted data overwritten: %q", v)
			}
		}
		// Another client plants a value without envelope.
		planted := session.JoinStored(meta, user, device, append(kv, "bad", "not an envelope")...)
		plant(planted)
		if _, err := e.store.Get(ctx, s.ID()); !errors.Is(err, session.ErrCorrupt) {
			t.Fatalf("Get with planted value = %v", err)
		}
		unchanged(planted)
		// A valid envelope around bytes the codec cannot read: Get works,
		// decoding that value is ErrCorrupt.
		plant(session.JoinStored(meta, user, device, append(kv, "bad", "\x01{not json")...))
		g, err := e.store.Get(ctx, s.ID())
		if err != nil {
			t.Fatal(err)
		}
		var x any
		if err := g.Decode("bad", &x); !errors.Is(err, session.ErrCorrupt) {
			t.Fatalf("Decode = %v", err)
		}
		// Corrupt metadata.
		planted = session.JoinStored("soon", user, device, kv...)
		plant(planted)
		for _, op := range []func() error{
			func() error { _, err := e.store.Get(ctx, s.ID()); return err },
			func() error {
				_, err := e.store.Update(ctx, s.ID(), session.Changes{Set: map[string]any{"x": 1}})
				return err
			},
			func() error { _, err := e.store.Rotate(ctx, s.ID()); return err },
		} {
			if err := op(); !errors.Is(err, session.ErrCorrupt) {
				t.Fatalf("op on corrupt metadata = %v", err)
			}
		}
		unchanged(planted)
		// Wrong Redis type at the key.
		e.rdb.Del(ctx, skey)
		e.rdb.RPush(ctx, skey, "a list")
		if _, err := e.store.Get(ctx, s.ID()); !errors.Is(err, session.ErrCorrupt) {
			t.Fatalf("Get of wrong type = %v", err)
		}
		if v, _ := e.rdb.LRange(ctx, skey, 0, -1).Result(); len(v) != 1 || v[0] != "a list" {
			t.Fatalf("wrong-type key overwritten: %q", v)
		}
		e.rdb.Del(ctx, skey)
	})
}

func TestIndexNeverLeaks(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 10,000 sessions")
	}
	forEachTopology(t, session.Options{IdleTimeout: 1500 * time.Millisecond}, func(t *testing.T, e *env) {
		ctx := context.Background()
		const total, users = 10000, 50
		// One long-lived session per user keeps each index alive, so only
		// trimming (not the index TTL) can empty it of the dead entries.
		var keep []string
		for u := range users {
			s, err := e.store.Create(ctx, fmt.Sprintf("user%d", u), nil, session.CreateOptions{IdleTimeout: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			keep = append(keep, s.ID())
		}
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Go(func() {
				for i := w; i < total; i += 16 {
					if _, err := e.store.Create(ctx, fmt.Sprintf("user%d", i%users), nil, session.CreateOptions{}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		// Wait out the idle timeout of the last one created (the index is
		// kept alive by the long-lived sessions), then prune.
		time.Sleep(1800 * time.Millisecond)
		n, err := e.store.Cleanup(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st, err := e.store.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Indexed != users || st.Sessions != users || st.Users != users {
			t.Fatalf("after expiry and Cleanup (pruned %d): %+v, want %d of each", n, st, users)
		}
		if n == 0 {
			t.Fatal("Cleanup pruned nothing: the writes alone cannot have trimmed every entry")
		}
		for _, id := range keep {
			if _, err := e.store.Get(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestIndexTrimmedByWritesAndExpiresWithLastSession(t *testing.T) {
	clock := newFakeClock()
	forEachTopology(t, session.Options{IdleTimeout: time.Second, Clock: clock.Now}, func(t *testing.T, e *env) {
		ctx := context.Background()
		for range 20 {
			if _, err := e.store.Create(ctx, "w", nil, session.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		// Writes trim: once they are past expiry (by the store's clock), the
		// next Create leaves only itself in the index.
		clock.Add(2 * time.Second)
		s, err := e.store.Create(ctx, "w", nil, session.CreateOptions{IdleTimeout: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		st, _ := e.store.Stats(ctx)
		if st.Indexed != 1 {
			t.Fatalf("indexed %d after a trimming write, want 1", st.Indexed)
		}
		// The index's own TTL follows its latest session.
		idx := ""
		for _, k := range keysWith(t, e.rdb, e.opts.Prefix) {
			if strings.HasSuffix(k, ":u") {
				idx = k
			}
		}
		ttl, _ := e.rdb.PExpireTime(ctx, idx).Result()
		if want := s.Info().ExpiresAt.UnixMilli(); ttl.Milliseconds() != want {
			t.Fatalf("index expires at %d, want %d", ttl.Milliseconds(), want)
		}
	})
}

func TestRedisDown(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: deadAddr(t), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	st, err := session.New(rdb, session.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = st.Create(ctx, "u", nil, session.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("Create on dead server = %v", err)
	}
	tok := strings.Repeat("A", session.TokenLen)
	if _, err := st.Get(ctx, tok); err == nil || errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get on dead server = %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: deadAddr(t)})
	defer rdb.Close()
	for _, tc := range []struct {
		o            session.Options
		field, value string
	}{
		{session.Options{Prefix: "a{b"}, "Prefix", `"a{b"`},
		{session.Options{IdleTimeout: -1}, "IdleTimeout", "-1ns"},
		{session.Options{AbsoluteTimeout: -time.Second}, "AbsoluteTimeout", "-1s"},
		{session.Options{MaxPerUser: -1}, "MaxPerUser", "-1"},
		{session.Options{OnLimit: 7}, "OnLimit", "7"},
		{session.Options{MaxValueBytes: -2}, "MaxValueBytes", "-2"},
		{session.Options{DurableReplicas: -1}, "DurableReplicas", "-1"},
		{session.Options{DurableTimeout: -time.Second}, "DurableTimeout", "-1s"},
	} {
		_, err := session.New(rdb, tc.o)
		var oe *session.OptionError
		if !errors.As(err, &oe) || oe.Field != tc.field || oe.Value != tc.value {
			t.Errorf("New(%+v) = %v, want an *OptionError naming %s = %s", tc.o, err, tc.field, tc.value)
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("New(nil) did not panic")
			}
		}()
		_, _ = session.New(nil, session.Options{})
	}()
	st, _ := session.New(rdb, session.Options{MaxValueBytes: 10})
	if _, err := st.Create(context.Background(), "u", map[string]any{"big": strings.Repeat("x", 20)}, session.CreateOptions{}); !errors.Is(err, session.ErrTooLarge) {
		t.Fatalf("oversized value: %v", err)
	}
	_ = st.Close()
	_ = st.Close()
	if _, err := st.Create(context.Background(), "u", nil, session.CreateOptions{}); !errors.Is(err, session.ErrClosed) || !errors.Is(err, retry.ErrUnavailable) {
		t.Fatalf("Create after Close = %v, want ErrClosed matching retry.ErrUnavailable", err)
	}
}

func TestAutoPipeline(t *testing.T) {
	forEachTopology(t, session.Options{Pipelining: session.PipelineAlways}, func(t *testing.T, e *env) {
		ctx := context.Background()
		s, err := e.store.Create(ctx, "ap", map[string]any{"a": 1}, session.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		e.count.reset()
		g, err := e.store.Get(ctx, s.ID())
		if err != nil || !g.Has("a") {
			t.Fatalf("Get = %v, %v", g, err)
		}
		if n, cmds := e.count.get(); n != 1 || len(cmds) != 1 || cmds[0] != "get" {
			t.Fatalf("Get through the auto-pipeliner: %d round trips %v", n, cmds)
		}
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				if _, err := e.store.Update(ctx, s.ID(), session.Changes{Set: map[string]any{fmt.Sprintf("k%d", i): i}}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		g, err = e.store.Get(ctx, s.ID())
		if err != nil || len(g.Keys()) != 51 {
			t.Fatalf("after concurrent updates: %v %v", g.Keys(), err)
		}
		if _, err := e.store.Get(ctx, strings.Repeat("A", session.TokenLen)); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("miss through the auto-pipeliner: %v", err)
		}
		if err := e.store.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.Get(ctx, s.ID()); !errors.Is(err, session.ErrClosed) {
			t.Fatalf("Get after Close: %v", err)
		}

		// The auto-pipeliner's goroutines belong to the store: Close stops them.
		before := goleak.IgnoreCurrent()
		st, err := session.New(e.rdb, session.Options{Pipelining: session.PipelineAlways, Prefix: e.opts.Prefix})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Get(ctx, s.ID()); err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		goleak.VerifyNone(t, before)
	})
}

// TestTTLMatchesTimeouts checks the invariant plain-read Gets rely on: after
// every write, each session key's expiry is exactly min(last-seen + idle,
// absolute deadline), as stored in its metadata, so it never outlives its
// absolute deadline and Redis alone ends a session at either timeout.
func TestTTLMatchesTimeouts(t *testing.T) {
	clock := newFakeClock()
	// The deadline (90 minutes) cuts the second idle window (50+60).
	opts := session.Options{IdleTimeout: time.Hour, AbsoluteTimeout: 90 * time.Minute, TouchInterval: time.Minute, Clock: clock.Now}
	forEachTopology(t, opts, func(t *testing.T, e *env) {
		ctx := context.Background()
		checkTTL := func(op string, want int) {
			t.Helper()
			n := 0
			for _, k := range keysWith(t, e.rdb, e.opts.Prefix) {
				if !strings.Contains(k, "}:s:") {
					continue
				}
				n++
				raw, err := e.rdb.Get(ctx, k).Result()
				if err != nil {
					t.Fatalf("%s: %v", op, err)
				}
				m, _, _, _, _ := session.SplitStored(raw)
				var c, seen, idle, deadline, v, p int64
				if _, err := fmt.Sscanf(m, "%d,%d,%d,%d,%d,%d", &c, &seen, &idle, &deadline, &v, &p); err != nil {
					t.Fatalf("%s: metadata %q: %v", op, m, err)
				}
				at, err := e.rdb.PExpireTime(ctx, k).Result()
				if err != nil {
					t.Fatalf("%s: %v", op, err)
				}
				if want := min(seen+idle, deadline); at.Milliseconds() != want {
					t.Errorf("%s: key expires at %d, want min(last-seen+idle, deadline) = %d (deadline %d)",
						op, at.Milliseconds(), want, deadline)
				}
				if at.Milliseconds() > deadline {
					t.Errorf("%s: key outlives its absolute deadline by %dms", op, at.Milliseconds()-deadline)
				}
			}
			if n != want {
				t.Fatalf("%s: %d session keys, want %d", op, n, want)
			}
		}
		for _, user := range []string{"ttl-user", ""} {
			s, err := e.store.Create(ctx, user, map[string]any{"a": 1}, session.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			checkTTL("Create", 1)
			clock.Add(50 * time.Minute)
			g, err := e.store.Get(ctx, s.ID())
			if err != nil {
				t.Fatal(err)
			}
			if !g.Info().ExpiresAt.Equal(g.Info().Deadline) {
				t.Fatalf("touch at 50min: expiry %v, want the deadline %v", g.Info().ExpiresAt, g.Info().Deadline)
			}
			checkTTL("Get with touch", 1)
			if _, err := e.store.Update(ctx, s.ID(), session.Changes{Set: map[string]any{"b": 2}}); err != nil {
				t.Fatal(err)
			}
			checkTTL("Update", 1)
			if _, _, err := e.store.Extend(ctx, s.ID(), time.Minute); err != nil { // never shortens
				t.Fatal(err)
			}
			checkTTL("Extend (no change)", 1)
			if _, _, err := e.store.Extend(ctx, s.ID(), 2*time.Hour); err != nil {
				t.Fatal(err)
			}
			checkTTL("Extend", 1)
			clock.Add(30 * time.Minute)
			id, err := e.store.Rotate(ctx, s.ID())
			if err != nil {
				t.Fatal(err)
			}
			checkTTL("Rotate", 1)
			if _, err := e.store.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestRedisEndsIdleSessions: with the real clock, an idle session's key
// expires in Redis, so the plain read of Get finds nothing: no script is
// needed to end it.
func TestRedisEndsIdleSessions(t *testing.T) {
	forEachTopology(t, session.Options{IdleTimeout: 100 * time.Millisecond, TouchInterval: time.Minute}, func(t *testing.T, e *env) {
		ctx := context.Background()
		s, err := e.store.Create(ctx, "idle", nil, session.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(250 * time.Millisecond)
		e.count.reset()
		if _, err := e.store.Get(ctx, s.ID()); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("Get after the idle timeout = %v", err)
		}
		if n, cmds := e.count.get(); n != 1 || cmds[0] != "get" {
			t.Fatalf("Get of an expired session: %d round trips %v, want one get", n, cmds)
		}
	})
}

// TestReplicaReadsUseTheScript: a cluster client that may read from
// replicas (ReadOnly) never gets the plain-read Get: a replica could still
// hold a session its master has deleted.
func TestReplicaReadsUseTheScript(t *testing.T) {
	rdb := redistest.SharedCluster(t).Client(t, func(o *redis.ClusterOptions) { o.ReadOnly = true })
	e := newEnv(t, rdb, session.Options{})
	ctx := context.Background()
	s, err := e.store.Create(ctx, "ro", map[string]any{"a": 1}, session.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.count.reset()
	if g, err := e.store.Get(ctx, s.ID()); err != nil || !g.Has("a") {
		t.Fatalf("Get = %v, %v", g, err)
	}
	if n, cmds := e.count.get(); n != 1 || cmds[0] != "evalsha" {
		t.Fatalf("Get on a ReadOnly cluster client: %d round trips %v, want one evalsha", n, cmds)
	}
}

// TestZeroInfo: a Session that holds nothing (the zero value, or a request
// before its session is stored) has the zero Info, with zero times.
func TestZeroInfo(t *testing.T) {
	var s session.Session
	if info := s.Info(); info != (session.Info{}) || !info.CreatedAt.IsZero() {
		t.Fatalf("zero Session: Info() = %+v", info)
	}
}
