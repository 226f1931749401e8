package session_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/rediskit/rediskit/session"
)

// TestBatchOperations: GetMany and DeleteMany take one pipeline whatever the
// number of sessions (go-redis splits it by node: one round trip per node),
// answer per ID (nil for missing, deleted or malformed), and Iterate visits
// every live session of every master exactly once, anonymous ones included.
func TestBatchOperations(t *testing.T) {
	forEachTopology(t, session.Options{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		var ids, hs []string
		handles := map[string]bool{}
		for i := range 30 {
			user := []string{"ann", "bob", "cy", ""}[i%4]
			s, err := e.store.Create(ctx, user, map[string]any{"i": i}, session.CreateOptions{IP: "10.0.0.1"})
			if err != nil {
				t.Fatal(err)
			}
			ids, hs = append(ids, s.ID()), append(hs, s.Info().Handle)
			handles[s.Info().Handle] = true
		}
		gone := ids[3]
		if _, err := e.store.Delete(ctx, gone); err != nil {
			t.Fatal(err)
		}
		delete(handles, hs[3])

		ask := append(slices.Clone(ids), "not-a-token")
		// go-redis keeps a pool of its own for pipelines: dial it before
		// counting (its handshake passes through the hook).
		if _, err := e.store.GetMany(ctx, ask); err != nil {
			t.Fatal(err)
		}
		e.count.reset()
		got, err := e.store.GetMany(ctx, ask)
		if err != nil {
			t.Fatal(err)
		}
		if trips, _ := e.count.get(); trips != 1 {
			t.Fatalf("GetMany of %d IDs took %d calls, want 1 pipeline", len(ask), trips)
		}
		for i, s := range got {
			switch {
			case i == 3 || i == len(ids):
				if s != nil {
					t.Fatalf("GetMany[%d] = %v, want nil (deleted or malformed)", i, s)
				}
			case s == nil:
				t.Fatalf("GetMany[%d] = nil for a live session", i)
			default:
				var v int
				if err := s.Decode("i", &v); err != nil || v != i {
					t.Fatalf("GetMany[%d] holds i=%d (%v)", i, v, err)
				}
			}
		}

		seen := map[string]int{}
		err = e.store.Iterate(ctx, func(info session.Info) error {
			seen[info.Handle]++
			if info.IP != "10.0.0.1" {
				t.Errorf("Iterate: IP %q", info.IP)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != len(handles) {
			t.Fatalf("Iterate saw %d sessions, want %d", len(seen), len(handles))
		}
		for h, n := range seen {
			if !handles[h] || n != 1 {
				t.Fatalf("Iterate saw %s %d times (known: %v)", h, n, handles[h])
			}
		}
		stop := errors.New("stop")
		calls := 0
		if err := e.store.Iterate(ctx, func(session.Info) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("Iterate returned %v after %d calls, want fn's error after 1", err, calls)
		}

		e.count.reset()
		n, err := e.store.DeleteMany(ctx, ask)
		if err != nil || n != len(ids)-1 {
			t.Fatalf("DeleteMany = %d, %v; want %d", n, err, len(ids)-1)
		}
		if trips, _ := e.count.get(); trips != 1 {
			t.Fatalf("DeleteMany took %d calls, want 1 pipeline", trips)
		}
		if keys := keysWith(t, e.rdb, e.opts.Prefix); len(keys) != 0 {
			t.Fatalf("keys left after DeleteMany: %v", keys)
		}

		// DeleteAll: users' and anonymous sessions, indexes included; a
		// store with another prefix keeps its own.
		other, err := session.New(e.rdb, session.Options{Prefix: e.opts.Prefix + "x:"})
		if err != nil {
			t.Fatal(err)
		}
		kept, err := other.Create(ctx, "ann", nil, session.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, user := range []string{"u1", "u1", "u2", "", ""} {
			if _, err := e.store.Create(ctx, user, map[string]any{"v": 1}, session.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := e.store.DeleteAll(ctx); err != nil || n != 5 {
			t.Fatalf("DeleteAll = %d, %v; want 5", n, err)
		}
		for _, k := range keysWith(t, e.rdb, e.opts.Prefix) {
			if !strings.HasPrefix(k, e.opts.Prefix+"x:") {
				t.Fatalf("key left after DeleteAll: %s", k)
			}
		}
		if _, err := other.Get(ctx, kept.ID()); err != nil {
			t.Fatalf("another store's session after DeleteAll: %v", err)
		}
	})
}
