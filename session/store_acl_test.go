package session_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/internal/security"
	"github.com/rediskit/rediskit/session"
)

// aclTopology runs fn with a client logged in as a user that holds only the
// least-privilege rule of docs/ACL.md for scope: on a fresh standalone
// server, and on the shared cluster (the user is created on every node,
// under a name of its own, and dropped at the end).
func aclTopology(t *testing.T, scope func(prefix string) security.Scope, fn func(t *testing.T, rdb redis.UniversalClient, prefix string)) {
	const password = "acl-test-password"
	t.Run("standalone", func(t *testing.T) {
		srv := redistest.Start(t)
		prefix := redistest.Prefix(t)
		if err := security.Apply(context.Background(), srv.Do, "app", password, scope(prefix)); err != nil {
			t.Fatal(err)
		}
		rdb := srv.Client(t, func(o *redis.Options) { o.Username, o.Password = "app", password })
		fn(t, rdb, prefix)
	})
	t.Run("cluster", func(t *testing.T) {
		cl := redistest.SharedCluster(t)
		prefix := redistest.Prefix(t)
		user := "app-" + strings.Trim(prefix, ":")
		for _, n := range cl.Masters {
			if err := security.Apply(context.Background(), n.Do, user, password, scope(prefix)); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = security.Drop(context.Background(), n.Do, user) })
		}
		rdb := cl.Client(t, func(o *redis.ClusterOptions) { o.Username, o.Password = user, password })
		fn(t, rdb, prefix)
	})
}

// TestStoreAsLeastPrivilegeUser runs every store operation as the ACL user
// of docs/ACL.md: they all pass, and what the rule leaves out is refused.
func TestStoreAsLeastPrivilegeUser(t *testing.T) {
	scope := func(prefix string) security.Scope { return security.Scope{SessionPrefix: prefix} }
	aclTopology(t, scope, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		ctx := context.Background()
		st, err := session.New(rdb, session.Options{Prefix: prefix, MaxPerUser: 3, TouchInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if err := st.Preload(ctx); err != nil {
			t.Fatalf("Preload: %v", err)
		}
		var ids []string
		for i := range 4 { // the 4th revokes the oldest: the cap's script path
			s, err := st.Create(ctx, "alice", map[string]any{"n": i}, session.CreateOptions{IP: "10.0.0.1", UserAgent: "acl"})
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			ids = append(ids, s.ID())
		}
		anon, err := st.Create(ctx, "", map[string]any{"a": 1}, session.CreateOptions{})
		if err != nil {
			t.Fatalf("Create anonymous: %v", err)
		}
		s, err := st.Get(ctx, ids[3])
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if v, err := st.Update(ctx, s.ID(), session.Changes{Set: map[string]any{"n": 9}, Delete: []string{"x"}, IfVersion: s.Version()}); err != nil || v != 2 {
			t.Fatalf("Update = %d, %v", v, err)
		}
		if _, _, err := st.Extend(ctx, s.ID(), 48*time.Hour); err != nil {
			t.Fatalf("Extend: %v", err)
		}
		rotated, err := st.Rotate(ctx, s.ID())
		if err != nil {
			t.Fatalf("Rotate: %v", err)
		}
		list, err := st.ListByUser(ctx, "alice")
		if err != nil || len(list) != 3 {
			t.Fatalf("ListByUser = %d sessions, %v; want 3", len(list), err)
		}
		// Revoke a session other than the rotated one (the list is ordered
		// by creation time, and sessions made in one millisecond tie).
		cur, err := st.Get(ctx, rotated)
		if err != nil {
			t.Fatalf("Get rotated: %v", err)
		}
		victim := list[0].Handle
		if victim == cur.Info().Handle {
			victim = list[1].Handle
		}
		if ok, err := st.RevokeHandle(ctx, "alice", victim); err != nil || !ok {
			t.Fatalf("RevokeHandle = %v, %v", ok, err)
		}
		if ok, err := st.Delete(ctx, rotated); err != nil || !ok {
			t.Fatalf("Delete = %v, %v", ok, err)
		}
		stats, err := st.Stats(ctx)
		if err != nil || stats.Sessions != 2 || stats.Users != 1 {
			t.Fatalf("Stats = %+v, %v; want 2 sessions of 1 user", stats, err)
		}
		if _, err := st.Cleanup(ctx); err != nil {
			t.Fatalf("Cleanup: %v", err)
		}
		if n, err := st.DeleteByUser(ctx, "alice"); err != nil || n != 1 {
			t.Fatalf("DeleteByUser = %d, %v; want 1", n, err)
		}
		if ok, err := st.Delete(ctx, anon.ID()); err != nil || !ok {
			t.Fatalf("Delete anonymous = %v, %v", ok, err)
		}
		if _, err := st.Get(ctx, ids[0]); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("Get of a revoked session = %v", err)
		}

		// What the rule does not grant is refused by Redis, and reaches the
		// caller as an error, not a panic or a silent success.
		denied := func(what string, err error) {
			t.Helper()
			if err == nil || !strings.Contains(err.Error(), "NOPERM") {
				t.Errorf("%s as the ACL user: %v, want NOPERM", what, err)
			}
		}
		denied("FLUSHALL", rdb.Do(ctx, "FLUSHALL").Err())
		denied("KEYS", rdb.Do(ctx, "KEYS", "*").Err())
		denied("CONFIG GET", rdb.Do(ctx, "CONFIG", "GET", "requirepass").Err())
		denied("SET outside the prefix", rdb.Set(ctx, "other:"+prefix, "x", 0).Err())
		denied("GET outside the prefix", rdb.Get(ctx, "other:"+prefix).Err())
		denied("ACL SETUSER", rdb.Do(ctx, "ACL", "SETUSER", "evil", "on", "+@all").Err())
		denied("EVAL touching another key", rdb.Eval(ctx, "return redis.call('GET', KEYS[1])", []string{"other:" + prefix}).Err())
		other, err := session.New(rdb, session.Options{Prefix: "other:" + prefix})
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		_, err = other.Create(ctx, "alice", nil, session.CreateOptions{})
		denied("a store with another prefix", err)
		if err != nil && !strings.HasPrefix(err.Error(), "session: create:") {
			t.Errorf("error does not name the operation: %v", err)
		}
	})
}

// TestTouchWithoutSetrange slides a session on every Get as a user whose
// rule predates SETRANGE in docs/ACL.md: the touch then rewrites the whole
// session instead of moving last-seen in place, and Get still works and
// slides. With SETRANGE granted the touch moves it in place.
func TestTouchWithoutSetrange(t *testing.T) {
	for _, granted := range []bool{true, false} {
		t.Run(map[bool]string{true: "granted", false: "refused"}[granted], func(t *testing.T) {
			ctx := context.Background()
			srv := redistest.Start(t)
			prefix := redistest.Prefix(t)
			if err := security.Apply(ctx, srv.Do, "app", "pw", security.Scope{SessionPrefix: prefix}); err != nil {
				t.Fatal(err)
			}
			if !granted {
				if _, err := srv.Do(ctx, "ACL", "SETUSER", "app", "-setrange"); err != nil {
					t.Fatal(err)
				}
			}
			rdb := srv.Client(t, func(o *redis.Options) { o.Username, o.Password = "app", "pw" })
			clock := time.Now().Truncate(time.Millisecond)
			st, err := session.New(rdb, session.Options{Prefix: prefix, TouchInterval: -1, Clock: func() time.Time { return clock }})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			s, err := st.Create(ctx, "alice", map[string]any{"n": 1}, session.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			clock = clock.Add(10 * time.Minute)
			got, err := st.Get(ctx, s.ID())
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			again, err := st.Get(ctx, s.ID()) // the clock stands still: no touch, a read of what is stored
			if err != nil {
				t.Fatalf("second Get: %v", err)
			}
			for _, info := range []session.Info{got.Info(), again.Info()} {
				if !info.LastSeen.Equal(clock) || !info.ExpiresAt.Equal(clock.Add(info.IdleTimeout)) {
					t.Errorf("LastSeen %v, ExpiresAt %v; want %v and %v later", info.LastSeen, info.ExpiresAt, clock, info.IdleTimeout)
				}
			}
			// The ACL user may run INFO; the touch is the only SETRANGE.
			calls := redistest.CommandStat(t, rdb, "calls")["setrange"]
			if (calls > 0) != granted {
				t.Errorf("SETRANGE ran %d times with it granted: %v", calls, granted)
			}
		})
	}
}
