package cache

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/internal/security"
)

// TestCacheAsLeastPrivilegeUser runs the cache's operations as the ACL user
// of docs/ACL.md, on a fresh standalone server (Redis 7.0, and Valkey 9), on
// the shared cluster and on the shared Sentinel deployment: they all pass,
// and what the rule leaves out is refused.
func TestCacheAsLeastPrivilegeUser(t *testing.T) {
	const password = "acl-test-password"
	run := func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		ctx := ctxT(t)
		c := newCache(t, rdb, Options{Prefix: prefix, Version: 3, LeasePoll: 20 * time.Millisecond})
		if err := c.Set(ctx, "a", []byte("1"), time.Minute); err != nil {
			t.Fatalf("Set: %v", err)
		}
		if v, ok, err := c.Get(ctx, "a"); err != nil || !ok || string(v) != "1" {
			t.Fatalf("Get = %q, %v, %v", v, ok, err)
		}
		items := map[string][]byte{"b": []byte("2"), "{tag}c": []byte("3"), "d": []byte("4")}
		if err := c.MSet(ctx, items, time.Minute); err != nil {
			t.Fatalf("MSet: %v", err)
		}
		got, err := c.MGet(ctx, []string{"a", "b", "{tag}c", "d", "missing"})
		if err != nil || len(got) != 4 {
			t.Fatalf("MGet = %d hits, %v; want 4", len(got), err)
		}
		if n, err := c.Incr(ctx, "n", 5, time.Minute); err != nil || n != 5 {
			t.Fatalf("Incr = %d, %v", n, err)
		}
		if n, err := c.Decr(ctx, "n", 2, time.Minute); err != nil || n != 3 {
			t.Fatalf("Decr = %d, %v", n, err)
		}
		if n, ok, err := c.Counter(ctx, "n"); err != nil || !ok || n != 3 {
			t.Fatalf("Counter = %d, %v, %v", n, ok, err)
		}
		var loads atomic.Int64
		v, err := c.GetOrSet(ctx, "g", time.Minute, countingLoader(&loads, 0))
		if err != nil || string(v) != "value-1" {
			t.Fatalf("GetOrSet miss = %q, %v", v, err)
		}
		if v, err = c.GetOrSet(ctx, "g", time.Minute, countingLoader(&loads, 0)); err != nil || string(v) != "value-1" {
			t.Fatalf("GetOrSet hit = %q, %v", v, err)
		}
		// A waiter on another process's lease subscribes to the lease
		// events: the channel rule must let it in. The "other process" is a
		// second Cache on the same namespace.
		other := newCache(t, rdb, Options{Prefix: prefix, Version: 3, LeasePoll: 20 * time.Millisecond})
		started, release := make(chan struct{}), make(chan struct{})
		done := make(chan error, 1)
		go func() {
			_, err := c.GetOrSet(context.Background(), "w", time.Minute, func(context.Context) ([]byte, error) {
				close(started)
				<-release
				return []byte("loaded"), nil
			})
			done <- err
		}()
		<-started
		waited := make(chan []byte, 1)
		go func() {
			v, _ := other.GetOrSet(context.Background(), "w", time.Minute, func(context.Context) ([]byte, error) {
				return []byte("second loader"), nil
			})
			waited <- v
		}()
		waitFor(t, "the second cache to wait on the lease", func() bool { return other.LocalStats().LeaseWaits == 1 })
		close(release)
		if err := <-done; err != nil {
			t.Fatalf("GetOrSet owner: %v", err)
		}
		if v := <-waited; string(v) != "loaded" {
			t.Fatalf("waiter got %q, want the owner's value", v)
		}
		if ok, err := c.Exists(ctx, "a"); err != nil || !ok {
			t.Fatalf("Exists = %v, %v", ok, err)
		}
		if err := c.Delete(ctx, "a", "b"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		st, err := c.Stats(ctx)
		if err != nil || st.UsedMemory <= 0 || st.SampledKeys == 0 {
			t.Fatalf("Stats = %+v, %v", st, err)
		}
		n, err := c.Clear(ctx, Prefix(""), ClearOptions{})
		if err != nil || n < 4 {
			t.Fatalf("Clear = %d, %v; want at least 4", n, err)
		}

		// go-redis's cluster client reads the command table (COMMAND) to route
		// commands; without it, it logs a NOPERM on every command.
		if err := rdb.Command(ctx).Err(); err != nil {
			t.Errorf("COMMAND as the ACL user: %v", err)
		}

		denied := func(what string, err error) {
			t.Helper()
			if err == nil || !strings.Contains(err.Error(), "NOPERM") {
				t.Errorf("%s as the ACL user: %v, want NOPERM", what, err)
			}
		}
		denied("FLUSHALL", rdb.Do(ctx, "FLUSHALL").Err())
		denied("KEYS", rdb.Do(ctx, "KEYS", "*").Err())
		denied("SET outside the namespace", rdb.Set(ctx, "other:"+prefix, "x", 0).Err())
		denied("SUBSCRIBE another channel", func() error {
			ps := rdb.Subscribe(ctx, "other-channel")
			defer ps.Close()
			_, err := ps.Receive(ctx)
			return err
		}())
		foreign := newCacheNoPreload(t, rdb, Options{Prefix: "other" + prefix})
		err = foreign.Set(ctx, "k", []byte("v"), 0)
		denied("a cache with another prefix", err)
		if err != nil && !strings.HasPrefix(err.Error(), `cache: set "k":`) {
			t.Errorf("error does not name the operation and key: %v", err)
		}
		if _, err := foreign.GetOrSet(ctx, "k", time.Minute, countingLoader(&loads, 0)); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("GetOrSet in a namespace the user may not touch = %v, want an error", err)
		}
	}
	single := func(name string, start func(testing.TB, ...redistest.Option) *redistest.Server) {
		t.Run(name, func(t *testing.T) {
			srv := start(t)
			prefix := strings.TrimSuffix(redistest.Prefix(t), ":")
			if err := security.Apply(context.Background(), srv.Do, "app", password, security.Scope{CachePrefix: prefix}); err != nil {
				t.Fatal(err)
			}
			run(t, srv.Client(t, func(o *redis.Options) { o.Username, o.Password = "app", password }), prefix)
		})
	}
	single("standalone", redistest.Start)
	single("valkey", redistest.StartValkey) // the IFEQ commit and its probe, under the same rule
	t.Run("cluster", func(t *testing.T) {
		cl := redistest.SharedCluster(t)
		prefix := strings.TrimSuffix(redistest.Prefix(t), ":")
		user := "app-" + prefix
		for _, n := range cl.Masters {
			if err := security.Apply(context.Background(), n.Do, user, password, security.Scope{CachePrefix: prefix}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = security.Drop(context.Background(), n.Do, user) })
		}
		run(t, cl.Client(t, func(o *redis.ClusterOptions) { o.Username, o.Password = user, password }), prefix)
	})
	t.Run("sentinel", func(t *testing.T) {
		// The user lives on the master only: ACLs are not replicated, and
		// the shared deployment never fails over.
		s := redistest.SharedSentinel(t)
		prefix := strings.TrimSuffix(redistest.Prefix(t), ":")
		user := "app-" + prefix
		if err := security.Apply(context.Background(), s.Master.Do, user, password, security.Scope{CachePrefix: prefix}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = security.Drop(context.Background(), s.Master.Do, user) })
		run(t, s.Client(t, func(o *redis.FailoverOptions) { o.Username, o.Password = user, password }), prefix)
	})
}

// newCacheNoPreload is newCache for a namespace whose scripts cannot be
// loaded (the caller expects its commands to be refused).
func newCacheNoPreload(t testing.TB, rdb redis.UniversalClient, opt Options) *Cache {
	t.Helper()
	c, err := New(rdb, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}
