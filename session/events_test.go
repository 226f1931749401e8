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

	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/session"
)

// collector records the events a subscriber delivers.
type collector struct {
	mu     sync.Mutex
	events []session.Event
}

func (c *collector) add(_ context.Context, ev session.Event) error {
	c.mu.Lock()
	c.events = append(c.events, ev)
	c.mu.Unlock()
	return nil
}

func (c *collector) all() []session.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]session.Event(nil), c.events...)
}

// distinct counts distinct handles per "kind/cause" (delivery is at least
// once: a copy has the same handle).
func (c *collector) distinct() map[string]int {
	seen := map[string]bool{}
	out := map[string]int{}
	for _, ev := range c.all() {
		k := string(ev.Kind) + "/" + ev.Cause
		if !seen[k+" "+ev.Handle] {
			seen[k+" "+ev.Handle] = true
			out[k]++
		}
	}
	return out
}

// subscribe runs st.Subscribe in the background until the test ends.
func subscribe(t *testing.T, st *session.Store, opts session.EventOptions) *collector {
	t.Helper()
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		// As an application would: subscribe again after a Redis error
		// (a failover, a restart), with the same group and consumer.
		for {
			err := st.Subscribe(ctx, opts, c.add)
			if ctx.Err() != nil {
				done <- err
				return
			}
			t.Logf("Subscribe: %v; again", err)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		cancel()
		// Subscribe leaves within the client's read timeout of ctx's end:
		// a Subscribe still running a minute later is a hang, reported
		// rather than waited for.
		select {
		case err := <-done:
			if err != context.Canceled {
				t.Errorf("Subscribe returned %v", err)
			}
		case <-time.After(time.Minute):
			t.Errorf("Subscribe still running a minute after its context ended")
		}
	})
	return c
}

// await waits until the collector's distinct counts reach want (at most
// 20 s; there is no timing assertion: the counts decide).
func await(t *testing.T, c *collector, want map[string]int) {
	t.Helper()
	var got map[string]int
	for range 400 {
		got = c.distinct()
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("events: got %v, want %v", got, want)
}

// checkOrder checks that each session's events come in order: created
// (or rotated in), then at most one end.
func checkOrder(t *testing.T, events []session.Event) {
	t.Helper()
	state := map[string]int{} // 0 unseen, 1 live, 2 ended
	seen := map[string]bool{} // Event.ID per handle: a copy is skipped
	for _, ev := range events {
		if seen[ev.ID+" "+ev.Handle] {
			continue
		}
		seen[ev.ID+" "+ev.Handle] = true
		switch ev.Kind {
		case session.EventCreated:
			if state[ev.Handle] != 0 {
				t.Errorf("created after another event of %s", ev.Handle)
			}
			state[ev.Handle] = 1
		case session.EventRotated:
			if state[ev.OldHandle] != 1 || state[ev.Handle] != 0 {
				t.Errorf("rotated out of order: %s -> %s", ev.OldHandle, ev.Handle)
			}
			state[ev.OldHandle], state[ev.Handle] = 2, 1
		default:
			if state[ev.Handle] != 1 {
				t.Errorf("%s/%s of %s that is not live", ev.Kind, ev.Cause, ev.Handle)
			}
			state[ev.Handle] = 2
		}
		if ev.At.IsZero() {
			t.Errorf("event without time: %+v", ev)
		}
	}
}

// streamEntries reads every entry of every event stream under prefix.
func streamEntries(t *testing.T, rdb redis.UniversalClient, prefix string) []redis.XMessage {
	t.Helper()
	ctx := context.Background()
	var out []redis.XMessage
	for _, k := range keysWith(t, rdb, prefix) {
		if typ, _ := rdb.Type(ctx, k).Result(); typ != "stream" {
			continue
		}
		msgs, err := rdb.XRange(ctx, k, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, msgs...)
	}
	return out
}

// TestEventsEveryCause ends N sessions by each cause and expects exactly N
// events of that cause (distinct handles), in order per session, with no
// session ID anywhere in the streams. Anonymous sessions have their events
// too, with an empty user.
func TestEventsEveryCause(t *testing.T) {
	const n = 4
	clock := newFakeClock()
	opts := session.Options{Events: true, MaxPerUser: n, Clock: clock.Now}
	forEachTopology(t, opts, func(t *testing.T, e *env) {
		ctx := context.Background()
		st := e.store
		c := subscribe(t, st, session.EventOptions{Group: "app-1", From: session.FromOldest, Poll: 50 * time.Millisecond, Sweep: -1})
		var ids []string
		create := func(user string, o session.CreateOptions) *session.Session {
			t.Helper()
			s, err := st.Create(ctx, user, nil, o)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, s.ID())
			return s
		}
		// rotated, then deleted: n created, n rotated, n revoked/delete;
		// the same for n anonymous sessions.
		for _, user := range []string{"rot", ""} {
			for range n {
				s := create(user, session.CreateOptions{})
				id, err := st.Rotate(ctx, s.ID())
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
				if ok, err := st.Delete(ctx, id); err != nil || !ok {
					t.Fatalf("Delete = %v, %v", ok, err)
				}
				// Repeated: no second event.
				if ok, err := st.Delete(ctx, id); err != nil || ok {
					t.Fatalf("second Delete = %v, %v", ok, err)
				}
			}
		}
		// log out everywhere: n revoked/user.
		for range n {
			create("everywhere", session.CreateOptions{})
		}
		if k, err := st.DeleteByUser(ctx, "everywhere"); err != nil || k != n {
			t.Fatalf("DeleteByUser = %d, %v", k, err)
		}
		// the cap: 2n sessions, the first n revoked/limit.
		for range 2 * n {
			create("capped", session.CreateOptions{})
			clock.Add(time.Millisecond) // distinct creation times: the oldest go
		}
		// timeouts, found by the sweep (Cleanup): n idle, n absolute, and
		// n idle after a Rotate (the new handle's timeout is reported);
		// the same for anonymous sessions.
		for _, users := range [][3]string{{"idle", "abs", "renewed"}, {"", "", ""}} {
			for range n {
				create(users[0], session.CreateOptions{IdleTimeout: time.Minute})
				create(users[1], session.CreateOptions{AbsoluteTimeout: time.Minute})
				s := create(users[2], session.CreateOptions{IdleTimeout: time.Minute})
				id, err := st.Rotate(ctx, s.ID())
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
		}
		clock.Add(2 * time.Minute)
		if _, err := st.Cleanup(ctx); err != nil {
			t.Fatal(err)
		}
		await(t, c, map[string]int{
			"created/":         2*n + n + 2*n + 6*n,
			"rotated/":         2*n + 2*n,
			"revoked/delete":   2 * n,
			"revoked/user":     n,
			"revoked/limit":    n,
			"expired/idle":     4 * n,
			"expired/absolute": 2 * n,
		})
		// Anonymous sessions: 4n created, 2n rotated, n deleted, 2n idle,
		// n absolute, each with an empty user; every other event names one.
		anon := 0
		for _, ev := range c.all() {
			if ev.UserID == "" {
				anon++
			}
		}
		if anon != 10*n {
			t.Errorf("%d events of anonymous sessions, want %d", anon, 10*n)
		}
		checkOrder(t, c.all())
		// No token anywhere in the streams, and their length is bounded.
		entries := streamEntries(t, e.rdb, e.opts.Prefix)
		if len(entries) == 0 {
			t.Fatal("no stream entries found")
		}
		for _, m := range entries {
			for k, v := range m.Values {
				for _, id := range ids {
					if strings.Contains(fmt.Sprint(v), id) || strings.Contains(k, id) {
						t.Fatalf("stream entry %s holds a session ID", m.ID)
					}
				}
			}
		}
	})
}

// TestEventsOptIn: without Options.Events the write scripts add nothing
// (no stream, no extra command); with it, still one round trip per
// operation.
func TestEventsOptIn(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprint("events=", on), func(t *testing.T) {
			e := newEnv(t, redistest.Shared(t).Client(t), session.Options{Events: on})
			ctx := context.Background()
			s, err := e.store.Create(ctx, "alice", nil, session.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			id, err := e.store.Rotate(ctx, s.ID())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.store.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
			n, cmds := e.count.get()
			if n != 3 {
				t.Errorf("%d round trips %v, want 3", n, cmds)
			}
			got := len(streamEntries(t, e.rdb, e.opts.Prefix))
			want := 0
			if on {
				want = 3
			}
			if got != want {
				t.Errorf("%d stream entries, want %d", got, want)
			}
			if !on {
				if err := e.store.Subscribe(ctx, session.EventOptions{Group: "g"}, func(context.Context, session.Event) error { return nil }); err == nil {
					t.Error("Subscribe without Options.Events: no error")
				}
			}
		})
	}
}

// createN creates n sessions of user and returns their handles.
func createN(t *testing.T, st *session.Store, user string, n int) []string {
	t.Helper()
	var hs []string
	for range n {
		s, err := st.Create(context.Background(), user, nil, session.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, s.Info().Handle)
	}
	return hs
}

// TestEventsSurviveRestart: events delivered but not acknowledged when
// the subscriber died, and events written just before the server was
// killed (SIGKILL, AOF with appendfsync always), all reach the same group
// after the restart.
func TestEventsSurviveRestart(t *testing.T) {
	const n = 10
	srv := redistest.Start(t, redistest.WithArgs("--appendonly", "yes", "--appendfsync", "always"))
	rdb := srv.Client(t)
	st, err := session.New(rdb, session.Options{Events: true, Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	createN(t, st, "alice", n)
	// A subscriber that fails every event: delivered, never acknowledged.
	sub, cancel := context.WithCancel(ctx)
	seen := make(chan struct{}, n)
	done := make(chan error, 1)
	go func() {
		done <- st.Subscribe(sub, session.EventOptions{Group: "app", From: session.FromOldest, Sweep: -1},
			func(context.Context, session.Event) error {
				select {
				case seen <- struct{}{}:
				default:
				}
				return fmt.Errorf("handler down")
			})
	}()
	<-seen
	cancel()
	<-done
	createN(t, st, "bob", n)
	srv.Kill()
	srv.Restart(t)
	c := subscribe(t, st, session.EventOptions{Group: "app", Poll: 20 * time.Millisecond, Sweep: -1})
	await(t, c, map[string]int{"created/": 2 * n})
}

// TestEventsSurviveFailover: with DurableReplicas every write (and so its
// event) is on the replica before it is acknowledged; after a Sentinel
// failover the same group gets every event, old and new.
func TestEventsSurviveFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own Sentinel deployment")
	}
	const n = 10
	sen := redistest.StartSentinel(t)
	rdb := sen.Client(t)
	st, err := session.New(rdb, session.Options{Events: true, DurableReplicas: 1, DurableTimeout: 5 * time.Second, Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	c := subscribe(t, st, session.EventOptions{Group: "app", From: session.FromOldest, Poll: 20 * time.Millisecond, Sweep: -1})
	hs := createN(t, st, "alice", n)
	await(t, c, map[string]int{"created/": n})
	sen.Failover(t)
	// The client reconnects to the new master; a write racing the switch
	// may fail, and is retried here as a caller would. A failed Create
	// whose outcome is unknown may still have stored its session (and its
	// event): only the acknowledged ones are required.
	for len(hs) < 2*n {
		s, err := st.Create(context.Background(), "bob", nil, session.CreateOptions{})
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		hs = append(hs, s.Info().Handle)
	}
	awaitHandles(t, c, hs)
}

// awaitHandles waits until a created event of every handle has arrived.
func awaitHandles(t *testing.T, c *collector, hs []string) {
	t.Helper()
	var missing []string
	for range 400 {
		got := map[string]bool{}
		for _, ev := range c.all() {
			if ev.Kind == session.EventCreated {
				got[ev.Handle] = true
			}
		}
		missing = missing[:0]
		for _, h := range hs {
			if !got[h] {
				missing = append(missing, h)
			}
		}
		if len(missing) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%d of %d created events never arrived", len(missing), len(hs))
}

// TestEventsTrimmedAndNamesChecked: a stream stays near EventsMaxLen
// however many events are written, and a group or consumer name that is
// not a plain name is refused before any Redis call.
func TestEventsTrimmedAndNamesChecked(t *testing.T) {
	e := newEnv(t, redistest.Shared(t).Client(t), session.Options{Events: true, EventsMaxLen: 50})
	ctx := context.Background()
	createN(t, e.store, "alice", 600) // 600 created events
	entries := len(streamEntries(t, e.rdb, e.opts.Prefix))
	// MAXLEN ~ trims whole macro nodes (stream-node-max-entries, 100 by
	// default): the length stays below MaxLen plus one node.
	if entries < 50 || entries > 50+100 {
		t.Fatalf("stream holds %d entries, want 50..150", entries)
	}
	e.count.reset()
	for _, bad := range []session.EventOptions{{}, {Group: "a b"}, {Group: "*"[:0]}, {Group: "g\n"},
		{Group: string(make([]byte, 65))}, {Group: "g", Consumer: "c\x00"}} {
		err := e.store.Subscribe(ctx, bad, func(context.Context, session.Event) error { return nil })
		if !errors.Is(err, session.ErrBadGroup) {
			t.Errorf("Subscribe(%q, %q) = %v, want ErrBadGroup", bad.Group, bad.Consumer, err)
		}
	}
	if n, cmds := e.count.get(); n != 0 {
		t.Errorf("bad names cost %d round trips %v", n, cmds)
	}
}

// TestEventsIndexFollowsSlides: a touch that slides a session's expiry
// moves its index and side record too, each to the new expiry plus
// EventsGrace, so a sweep after the session's timeout still finds the
// record that names its user and cause; for a user's session and an
// anonymous one.
func TestEventsIndexFollowsSlides(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, redistest.Shared(t).Client(t), session.Options{Events: true, Clock: clock.Now, EventsGrace: time.Second})
	ctx := context.Background()
	for _, user := range []string{"slider", ""} {
		s, err := e.store.Create(ctx, user, nil, session.CreateOptions{IdleTimeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		clock.Add(50 * time.Second)
		if _, err := e.store.Get(ctx, s.ID()); err != nil { // the touch is due: it slides
			t.Fatal(err)
		}
		expireTime := func(k string) int64 {
			t.Helper()
			v, err := e.rdb.Do(ctx, "PEXPIRETIME", k).Int64()
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		var sess int64
		idx := map[string]int64{}
		for _, k := range keysWith(t, e.rdb, e.opts.Prefix) {
			switch {
			case strings.Contains(k, ":s:"+s.Info().Handle):
				sess = expireTime(k)
			case strings.HasSuffix(k, ":u"), strings.HasSuffix(k, ":ue"), strings.HasSuffix(k, ":a"), strings.HasSuffix(k, ":ae"):
				if strings.Contains(k, "{"+s.ID()[:21]) { // the tag: the token's first 16 bytes
					idx[k[strings.LastIndexByte(k, ':'):]] = expireTime(k)
				}
			}
		}
		kinds := []string{":u", ":ue"}
		if user == "" {
			kinds = []string{":a", ":ae"}
		}
		if sess <= 0 || len(idx) != 2 {
			t.Fatalf("user %q: session expires at %d, index keys %v", user, sess, idx)
		}
		for _, kind := range kinds {
			if idx[kind] < sess+1000 {
				t.Errorf("user %q: %s expires at %d, before the session's expiry %d plus the grace", user, kind, idx[kind], sess)
			}
		}
	}
}

// TestEventsDeleteAll: DeleteAll and DeleteMany report each session they
// delete as revoked/delete, a user's and an anonymous one alike, and
// leave no index or side record behind: only the event stream remains.
// Stats counts no anonymous session's index as a user.
func TestEventsDeleteAll(t *testing.T) {
	const n = 5
	e := newEnv(t, redistest.Shared(t).Client(t), session.Options{Events: true})
	ctx := context.Background()
	c := subscribe(t, e.store, session.EventOptions{Group: "ops", From: session.FromOldest, Poll: 20 * time.Millisecond, Sweep: -1})
	var many []string
	for i := range n {
		for _, user := range []string{fmt.Sprint("u", i), ""} {
			s, err := e.store.Create(ctx, user, nil, session.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				many = append(many, s.ID())
			}
		}
	}
	// Anonymous sessions' indexes are no users.
	if stats, err := e.store.Stats(ctx); err != nil || stats.Users != n || stats.Sessions != 2*n {
		t.Fatalf("Stats = %+v, %v; want %d users, %d sessions", stats, err, n, 2*n)
	}
	if k, err := e.store.DeleteMany(ctx, many); err != nil || k != 2 {
		t.Fatalf("DeleteMany = %d, %v", k, err)
	}
	if k, err := e.store.DeleteAll(ctx); err != nil || k != 2*n-2 {
		t.Fatalf("DeleteAll = %d, %v", k, err)
	}
	await(t, c, map[string]int{"created/": 2 * n, "revoked/delete": 2 * n})
	if keys := keysWith(t, e.rdb, e.opts.Prefix); len(keys) != 1 || keys[0] != e.opts.Prefix+"events" {
		t.Errorf("keys left: %v, want only the stream", keys)
	}
}

// TestEventsGroupLost: a group that disappears from under its subscriber
// (as on a new master that never got the XGROUP CREATE: a failover rolled
// it back) is created again from the stream's oldest entry: every event
// comes again, and none is lost.
func TestEventsGroupLost(t *testing.T) {
	const n = 5
	e := newEnv(t, redistest.Shared(t).Client(t), session.Options{Events: true})
	ctx := context.Background()
	c := subscribe(t, e.store, session.EventOptions{Group: "app", Poll: 20 * time.Millisecond, Sweep: -1})
	createN(t, e.store, "alice", 1) // the stream exists: the group is made at its end
	waitFor(t, "the group", func() bool {
		groups, _ := e.rdb.XInfoGroups(ctx, e.opts.Prefix+"events").Result()
		return len(groups) == 1
	})
	hs := createN(t, e.store, "alice", n)
	awaitHandles(t, c, hs)
	if err := e.rdb.XGroupDestroy(ctx, e.opts.Prefix+"events", "app").Err(); err != nil {
		t.Fatal(err)
	}
	hs = append(hs, createN(t, e.store, "bob", n)...)
	awaitHandles(t, c, hs)
	// The first n+1 events came again: copies, with the same ID and handle.
	ids := map[string]int{}
	for _, ev := range c.all() {
		ids[ev.ID+" "+ev.Handle]++
	}
	twice := 0
	for _, k := range ids {
		if k == 2 {
			twice++
		}
	}
	if twice < n {
		t.Errorf("%d events delivered twice, want at least %d (the group began again at the oldest)", twice, n)
	}
	checkOrder(t, c.all())
}
