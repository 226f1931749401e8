package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/cache"
	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/session"
)

func TestMain(m *testing.M) {
	// The serve test runs this binary as the rediskit command.
	if os.Getenv("REDISKIT_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	redistest.Main(m)
}

// result is what one in-process run of the command printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs the command line in-process with the given environment
// (REDIS_URL and friends); stdout is not a terminal.
func cli(t *testing.T, vars map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{
		stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		lookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
	}
	code := run(context.Background(), e, args)
	return result{code, out.String(), errb.String()}
}

func (r result) want(t *testing.T, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit status %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

func (r result) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
}

// oneLine checks that stderr is a single line naming what is wrong.
func (r result) oneLine(t *testing.T, contains string) {
	t.Helper()
	msg := strings.TrimRight(r.stderr, "\n")
	if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, contains) {
		t.Fatalf("stderr = %q, want one line containing %q", r.stderr, contains)
	}
	if strings.Contains(msg, "goroutine ") || strings.Contains(msg, "panic") {
		t.Fatalf("stderr has a stack trace: %q", r.stderr)
	}
}

func TestUsageAndConfigErrors(t *testing.T) {
	t.Parallel()
	cli(t, nil).want(t, exitUsage)
	cli(t, nil, "--help").want(t, exitOK)
	cli(t, nil, "frobnicate").want(t, exitUsage).oneLine(t, `unknown command "frobnicate"`)
	cli(t, nil, "health", "--no-such-flag").want(t, exitUsage).oneLine(t, "no-such-flag")
	cli(t, nil, "health").want(t, exitUsage).oneLine(t, "no Redis configured")
	cli(t, nil, "stats", "--redis", "http://example.com").want(t, exitUsage).oneLine(t, "--redis")

	// A bad URL with a password: the error names the problem, never the secret.
	r := cli(t, nil, "health", "--redis", "redis://:hunter2@127.0.0.1:notaport/0").want(t, exitUsage)
	r.oneLine(t, "--redis")
	if strings.Contains(r.stderr, "hunter2") {
		t.Fatalf("password in stderr: %q", r.stderr)
	}
	r = cli(t, map[string]string{"REDIS_URL": "redis://:hunter2@127.0.0.1:6379/0", "REDISKIT_POOL_SIZE": "many"}, "stats").want(t, exitUsage)
	r.oneLine(t, "POOL_SIZE")
	if strings.Contains(r.stderr, "hunter2") {
		t.Fatalf("password in stderr: %q", r.stderr)
	}
	cli(t, nil, "sessions", "list", "--redis", "redis://127.0.0.1:1").want(t, exitUsage).oneLine(t, "--user")
	cli(t, nil, "sessions", "revoke", "--id", "not-a-token", "--redis", "redis://127.0.0.1:1").want(t, exitUsage).oneLine(t, "--id")
	cli(t, nil, "cache", "get", "--redis", "redis://127.0.0.1:1").want(t, exitUsage).oneLine(t, "wrong number of arguments")
	cli(t, nil, "cache", "evict", "k", "--redis", "redis://127.0.0.1:1").want(t, exitUsage).oneLine(t, "unknown cache command")

	// Every command has --help with examples, and it exits 0.
	for _, c := range commands() {
		r := cli(t, nil, c.name, "--help").want(t, exitOK)
		if !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "rediskit "+c.name) {
			t.Errorf("%s --help lacks examples:\n%s", c.name, r.stdout)
		}
		// The help is printed once, and writes flags as the examples do:
		// --name, never -name.
		if n := strings.Count(r.stdout, "Usage:"); n != 1 {
			t.Errorf("%s --help printed its usage %d times", c.name, n)
		}
		for _, line := range strings.Split(r.stdout, "\n") {
			if l := strings.TrimLeft(line, " "); len(l) > 1 && l[0] == '-' && l[1] != '-' {
				t.Errorf("%s --help shows a single-dash flag: %q", c.name, line)
			}
		}
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	url := s.URL()
	s.Kill()
	cli(t, nil, "stats", "--redis", url).want(t, exitUnreachable).oneLine(t, s.Addr)
	// For health, an unreachable server is simply unhealthy.
	cli(t, nil, "health", "--redis", url).want(t, exitFailed).oneLine(t, s.Addr)
	var h map[string]any
	cli(t, nil, "health", "--json", "--redis", url).want(t, exitFailed).json(t, &h)
	if h["status"] != "down" {
		t.Fatalf("health --json on a dead server: %v", h)
	}
}

func TestHealthAndStats(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		url   func(t *testing.T) string
		nodes int
	}{
		{"standalone", func(t *testing.T) string { return redistest.Shared(t).URL() }, 1},
		{"cluster", func(t *testing.T) string {
			return "redis-cluster://" + strings.Join(redistest.SharedCluster(t).Addrs(), ",")
		}, 3},
		{"sentinel", func(t *testing.T) string {
			s := redistest.SharedSentinel(t)
			return "redis-sentinel://" + strings.Join(s.SentinelAddrs(), ",") + "/" + s.MasterName
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := tc.url(t)
			r := cli(t, nil, "health", "--redis", url).want(t, exitOK)
			if !strings.HasPrefix(r.stdout, "status: up") || !strings.Contains(r.stdout, "7.") {
				t.Fatalf("health output:\n%s", r.stdout)
			}
			var h struct {
				Status string
				Nodes  []struct {
					Up   bool
					Role string
				}
			}
			cli(t, map[string]string{"REDIS_URL": url}, "health", "--json").want(t, exitOK).json(t, &h)
			if h.Status != "up" || len(h.Nodes) != tc.nodes {
				t.Fatalf("health --json: %+v, want %d nodes up", h, tc.nodes)
			}
			for _, n := range h.Nodes {
				if !n.Up || n.Role != "master" {
					t.Fatalf("node %+v", n)
				}
			}
			var s struct {
				Server struct {
					UsedMemory int64 `json:"used_memory"`
				}
				Nodes  []map[string]any
				Pool   map[string]any
				Client map[string]any
			}
			cli(t, nil, "stats", "--json", "--redis", url).want(t, exitOK).json(t, &s)
			if len(s.Nodes) != tc.nodes || s.Server.UsedMemory <= 0 {
				t.Fatalf("stats --json: %+v", s)
			}
			for _, k := range []string{"waits", "wait_ms"} {
				if _, ok := s.Pool[k]; !ok {
					t.Fatalf("stats --json: pool has no %q: %v", k, s.Pool)
				}
			}
			if _, ok := s.Client["deadlines"]; !ok {
				t.Fatalf("stats --json: client has no deadlines: %v", s.Client)
			}
			r = cli(t, nil, "stats", "--redis", url).want(t, exitOK)
			if !strings.Contains(r.stdout, "MEMORY") || !strings.Contains(r.stdout, "waits for a connection") {
				t.Fatalf("stats output:\n%s", r.stdout)
			}
		})
	}
}

func TestSessionsCommands(t *testing.T) {
	t.Parallel()
	forEachTopology(t, func(t *testing.T, rdb redis.UniversalClient, url string) {
		ctx := context.Background()
		prefix := redistest.Prefix(t)
		store, err := session.New(rdb, session.Options{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		var ids []string
		for i := range 3 {
			s, err := store.Create(ctx, "alice", map[string]any{"n": i}, session.CreateOptions{IP: "10.0.0.1", UserAgent: fmt.Sprintf("browser-%d", i)})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, s.ID())
		}
		bob, err := store.Create(ctx, "bob", nil, session.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		args := func(a ...string) []string { return append(a, "--redis", url, "--prefix", prefix) }

		var list []struct {
			Handle    string
			UserAgent string `json:"user_agent"`
		}
		cli(t, nil, args("sessions", "list", "--user", "alice", "--json")...).want(t, exitOK).json(t, &list)
		if len(list) != 3 {
			t.Fatalf("list: %d sessions, want 3", len(list))
		}
		r := cli(t, nil, args("sessions", "list", "--user", "alice")...).want(t, exitOK)
		if !strings.Contains(r.stdout, "browser-2") || strings.Contains(r.stdout, ids[0]) {
			t.Fatalf("list output shows no device or shows a session ID:\n%s", r.stdout)
		}
		// An empty --handle must not fall back to revoking every session.
		cli(t, nil, args("sessions", "revoke", "--user", "alice", "--handle", "")...).want(t, exitUsage).oneLine(t, "--handle")
		cli(t, nil, args("sessions", "revoke", "--user", "alice", "--handle", list[0].Handle)...).want(t, exitOK)
		cli(t, nil, args("sessions", "list", "--user", "alice", "--json")...).want(t, exitOK).json(t, &list)
		if len(list) != 2 {
			t.Fatalf("after revoking one handle: %d sessions, want 2", len(list))
		}
		cli(t, nil, args("sessions", "revoke", "--id", bob.ID())...).want(t, exitOK)
		if _, err := store.Get(ctx, bob.ID()); err == nil {
			t.Fatal("bob's session survived revoke --id")
		}
		var rev struct{ Revoked int }
		cli(t, nil, args("sessions", "revoke", "--user", "alice", "--json")...).want(t, exitOK).json(t, &rev)
		if rev.Revoked != 2 {
			t.Fatalf("revoke --user: %d, want the 2 left", rev.Revoked)
		}
		for _, id := range ids {
			if _, err := store.Get(ctx, id); err == nil {
				t.Fatal("a session survived revoke --user")
			}
		}
		var st struct{ Sessions int64 }
		cli(t, nil, args("sessions", "stats", "--json")...).want(t, exitOK).json(t, &st)
		if st.Sessions != 0 {
			t.Fatalf("stats after revoking everything: %d sessions", st.Sessions)
		}
		cli(t, nil, args("sessions", "cleanup")...).want(t, exitOK)
	})
}

func TestCacheCommands(t *testing.T) {
	t.Parallel()
	forEachTopology(t, func(t *testing.T, rdb redis.UniversalClient, url string) {
		ctx := context.Background()
		prefix := strings.TrimSuffix(redistest.Prefix(t), ":")
		c, err := cache.New(rdb, cache.Options{Prefix: prefix, Version: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		items := map[string][]byte{"bin": {0xff, 0x00, 0x01}}
		for i := range 50 {
			items[fmt.Sprintf("user:%d", i)] = []byte(fmt.Sprintf("value-%d", i))
			items[fmt.Sprintf("item:%d", i)] = []byte("x")
		}
		if err := c.MSet(ctx, items, 0); err != nil {
			t.Fatal(err)
		}
		args := func(a ...string) []string { return append(a, "--redis", url, "--prefix", prefix, "--version", "2") }

		if r := cli(t, nil, args("cache", "get", "user:7")...).want(t, exitOK); r.stdout != "value-7\n" {
			t.Fatalf("get: %q", r.stdout)
		}
		var got struct {
			ValueBase64 string `json:"value_base64"`
		}
		cli(t, nil, args("cache", "get", "bin", "--json")...).want(t, exitOK).json(t, &got)
		if got.ValueBase64 != "/wAB" {
			t.Fatalf("get binary: %+v", got)
		}
		cli(t, nil, args("cache", "get", "nope")...).want(t, exitFailed).oneLine(t, "not found")
		// Another version of the namespace holds nothing.
		cli(t, nil, "cache", "get", "user:7", "--redis", url, "--prefix", prefix).want(t, exitFailed)

		cli(t, nil, args("cache", "del", "user:7", "user:8")...).want(t, exitOK)
		if ok, _ := c.Exists(ctx, "user:7"); ok {
			t.Fatal("user:7 survived del")
		}

		var dry struct{ Matched, Deleted int64 }
		cli(t, nil, args("cache", "clear", "user:*", "--dry-run", "--json")...).want(t, exitOK).json(t, &dry)
		if dry.Matched != 48 || dry.Deleted != 0 {
			t.Fatalf("dry run: %+v, want 48 matched", dry)
		}
		// Not a terminal and no --yes: refuse rather than delete unasked.
		cli(t, nil, args("cache", "clear", "user:*")...).want(t, exitUsage).oneLine(t, "--yes")
		if ok, _ := c.Exists(ctx, "user:9"); !ok {
			t.Fatal("clear without --yes deleted keys")
		}
		var cleared struct{ Deleted int64 }
		cli(t, nil, args("cache", "clear", "user:*", "--yes", "--json")...).want(t, exitOK).json(t, &cleared)
		if cleared.Deleted != 48 {
			t.Fatalf("clear: %d deleted, want 48", cleared.Deleted)
		}
		if ok, _ := c.Exists(ctx, "item:3"); !ok {
			t.Fatal("clear of user:* deleted item:3")
		}
		var st struct {
			SampledKeys int `json:"sampled_keys"`
		}
		cli(t, nil, args("cache", "stats", "--json")...).want(t, exitOK).json(t, &st)
		if st.SampledKeys == 0 {
			t.Fatal("cache stats sampled no key")
		}
	})
}

// forEachTopology runs f on the shared standalone server and the shared
// cluster, giving a client and the URL the command should use.
func forEachTopology(t *testing.T, f func(t *testing.T, rdb redis.UniversalClient, url string)) {
	t.Run("standalone", func(t *testing.T) {
		s := redistest.Shared(t)
		f(t, s.Client(t), s.URL())
	})
	t.Run("cluster", func(t *testing.T) {
		c := redistest.SharedCluster(t)
		f(t, c.Client(t), "redis-cluster://"+strings.Join(c.Addrs(), ","))
	})
}

// TestSessionsRevokeEmitsEvents: with --events, an operator's revoke is a
// revoked event that the application's subscribers receive, as if the
// application had revoked the session itself.
func TestSessionsRevokeEmitsEvents(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	store, err := session.New(rdb, session.Options{Prefix: prefix, Events: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var handles []string
	for range 2 {
		s, err := store.Create(ctx, "alice", nil, session.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		handles = append(handles, s.Info().Handle)
	}
	cli(t, nil, "sessions", "revoke", "--user", "alice", "--events", "--redis", "redis://"+srv.Addr, "--prefix", prefix).want(t, exitOK)
	got := map[string]bool{}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err = store.Subscribe(sctx, session.EventOptions{Group: "app", From: session.FromOldest, Sweep: -1}, func(_ context.Context, ev session.Event) error {
		if ev.Kind == session.EventRevoked && ev.Cause == "user" {
			got[ev.Handle] = true
		}
		if len(got) == len(handles) {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe: %v; revoked events for %d of %d sessions", err, len(got), len(handles))
	}
	for _, h := range handles {
		if !got[h] {
			t.Errorf("no revoked event for %s", h)
		}
	}
}
