package session_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/session"
)

// syncBuffer is a bytes.Buffer safe for a logger and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestManagerSubscribe: Manager.Subscribe delivers the events of logins
// and "log out everywhere" made through the middleware, keeps delivering
// through a Redis restart (it logs the failure and subscribes again, where
// Store.Subscribe would have returned), and returns ctx's error once its
// owner ends ctx. A misuse (events off, a bad group name) returns at once.
func TestManagerSubscribe(t *testing.T) {
	srv := redistest.Start(t, redistest.WithArgs("--appendonly", "yes", "--appendfsync", "always"))
	rdb := srv.Client(t, func(o *redis.Options) { o.DialTimeout = 300 * time.Millisecond })
	e := newEnv(t, rdb, session.Options{Events: true})
	var logs syncBuffer
	m := session.NewManager(e.store, session.ManagerOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	web := httptest.NewTLSServer(app(m))
	defer web.Close()

	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- m.Subscribe(ctx, session.EventOptions{Group: "web", From: session.FromOldest, Poll: 20 * time.Millisecond, Sweep: -1}, c.add)
	}()
	phone, laptop := newClient(t, web), newClient(t, web)
	post := func(c *client, path string, form url.Values) {
		t.Helper()
		if res, body := c.do("POST", path, form); res.StatusCode != 200 {
			t.Fatalf("POST %s: %d %s", path, res.StatusCode, body)
		}
	}
	post(phone, "/login", url.Values{"user": {"alice"}})
	post(laptop, "/login", url.Values{"user": {"alice"}})
	post(laptop, "/logout-all", nil)
	await(t, c, map[string]int{"created/": 2, "revoked/user": 2})

	// Redis restarts: Store.Subscribe returns an error; Manager.Subscribe
	// logs it and subscribes again.
	srv.Kill()
	waitFor(t, "a logged subscribe failure", func() bool {
		return strings.Contains(logs.String(), "subscribing again")
	})
	srv.Restart(t)
	post(phone, "/login", url.Values{"user": {"alice"}})
	await(t, c, map[string]int{"created/": 3, "revoked/user": 2})

	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Subscribe returned %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Subscribe still running a minute after its context ended")
	}

	// Misuse returns at once, not after retries (the context never ends).
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	if err := m.Subscribe(ctx2, session.EventOptions{Group: "bad name"}, c.add); !errors.Is(err, session.ErrBadGroup) {
		t.Errorf("bad group: %v, want ErrBadGroup", err)
	}
	off := session.NewManager(newEnv(t, rdb, session.Options{}).store, session.ManagerOptions{})
	if err := off.Subscribe(ctx2, session.EventOptions{Group: "web"}, c.add); err == nil || ctx2.Err() != nil {
		t.Errorf("events off: %v (context %v), want an error at once", err, ctx2.Err())
	}
}

// waitFor polls cond every 20 ms for up to 20 s and fails the test if it
// never holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
