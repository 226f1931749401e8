package session_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/session"
)

// TestEventsSurviveClusterFailover: a subscriber keeps running while a
// master of a Cluster (a replica each) is killed and its replica takes
// over. With DurableReplicas every event is on the replica before its
// write is acknowledged, so the same group gets every event written
// before the failover (read or not yet read when the master died) and
// after it: N sessions ended by each cause, before and after, give 2N
// events of that cause, in order per session.
func TestEventsSurviveClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own Cluster with replicas")
	}
	const n = 6
	c := redistest.StartCluster(t, redistest.WithReplicas(1))
	rdb := c.Client(t, func(o *redis.ClusterOptions) {
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = 300*time.Millisecond, time.Second, time.Second
	})
	clock := newFakeClock()
	st, err := session.New(rdb, session.Options{Events: true, MaxPerUser: 1, Clock: clock.Now,
		DurableReplicas: 1, DurableTimeout: 5 * time.Second, Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	sub := subscribe(t, st, session.EventOptions{Group: "app", From: session.FromOldest, Poll: 100 * time.Millisecond, Sweep: -1})
	want := map[string]int{}
	endAll := func(phase string) {
		t.Helper()
		got := endEveryWay(t, st, clock, phase, n)
		for k, v := range got {
			want[k] += v
		}
	}
	endAll("before")
	// Kill a master without waiting for the subscriber: some of the
	// events above are still unread. Users spread over the slots (30 of
	// them), so every master holds some.
	victim := c.Masters[0]
	c.KillMaster(t, 0)
	// The dead master comes back as a replica of the promoted one, so
	// that durable writes to those slots can be confirmed again.
	victim.Restart(t)
	c.WaitOK(t)
	endAll("after")
	await(t, sub, want)
	checkOrder(t, sub.all())
}

// endEveryWay ends n sessions by each cause, each of its own user (users
// spread over the slots), with n anonymous ones rotated and deleted and n
// that time out; users are named after phase. Any error fails the test:
// it runs while the Cluster is healthy. It returns the events it caused,
// by "kind/cause".
func endEveryWay(t *testing.T, st *session.Store, clock *fakeClock, phase string, n int) map[string]int {
	t.Helper()
	ctx := context.Background()
	user := func(kind string, i int) string { return fmt.Sprintf("%s-%s-%d", kind, phase, i) }
	create := func(u string, o session.CreateOptions) *session.Session {
		t.Helper()
		s, err := st.Create(ctx, u, nil, o)
		if err != nil {
			t.Fatalf("Create(%q): %v", u, err)
		}
		return s
	}
	for i := range n {
		s := create(user("rot", i), session.CreateOptions{})
		id, err := st.Rotate(ctx, s.ID())
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := st.Delete(ctx, id); err != nil || !ok {
			t.Fatalf("Delete = %v, %v", ok, err)
		}
		create(user("all", i), session.CreateOptions{})
		if k, err := st.DeleteByUser(ctx, user("all", i)); err != nil || k != 1 {
			t.Fatalf("DeleteByUser = %d, %v", k, err)
		}
		create(user("cap", i), session.CreateOptions{})
		clock.Add(time.Millisecond)
		create(user("cap", i), session.CreateOptions{}) // MaxPerUser 1: the first goes
		create(user("idle", i), session.CreateOptions{IdleTimeout: time.Minute})
		create(user("abs", i), session.CreateOptions{AbsoluteTimeout: time.Minute})
		// Anonymous: one rotated and deleted, one that times out.
		s = create("", session.CreateOptions{})
		if id, err = st.Rotate(ctx, s.ID()); err != nil {
			t.Fatal(err)
		}
		if ok, err := st.Delete(ctx, id); err != nil || !ok {
			t.Fatalf("Delete = %v, %v", ok, err)
		}
		create("", session.CreateOptions{IdleTimeout: time.Minute})
	}
	clock.Add(2 * time.Minute)
	if _, err := st.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	return map[string]int{
		"created/":         8 * n,
		"rotated/":         2 * n,
		"revoked/delete":   2 * n,
		"revoked/user":     n,
		"revoked/limit":    n,
		"expired/idle":     2 * n,
		"expired/absolute": n,
	}
}
