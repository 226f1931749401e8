package rediskit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rediskit/rediskit/internal/redistest"
)

// The health report gives each node's maxmemory policy and warns where
// session keys can be evicted: any policy but noeviction with a maxmemory
// set. A policy it cannot read (INFO refused by an ACL) is reported as
// unknown, with a warning; Open and Status are unaffected either way.
func TestHealthEvictionWarning(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []struct {
		name       string
		args       []string
		acl        bool // connect as a user refused INFO and CONFIG
		policy     string
		maxmemory  int64
		warnSubstr string // "" for no warning
	}{
		{"default", nil, false, "noeviction", 0, ""},
		{"noeviction with a limit", []string{"--maxmemory", "100mb", "--maxmemory-policy", "noeviction"}, false, "noeviction", 100 << 20, ""},
		{"allkeys-lru", []string{"--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"}, false, "allkeys-lru", 100 << 20, "maxmemory-policy allkeys-lru with maxmemory 104857600 bytes"},
		{"volatile-lfu", []string{"--maxmemory", "100mb", "--maxmemory-policy", "volatile-lfu"}, false, "volatile-lfu", 100 << 20, "may evict session keys"},
		{"allkeys-lfu without a limit", []string{"--maxmemory-policy", "allkeys-lfu"}, false, "allkeys-lfu", 0, ""},
		{"INFO refused", []string{"--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"}, true, "unknown", -1, "maxmemory-policy unknown"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t, redistest.WithArgs(tc.args...))
			cfg := Config{Addr: srv.Addr, HealthCheckInterval: -1}
			if tc.acl {
				if _, err := srv.Do(ctx, "ACL", "SETUSER", "limited", "on", ">limited-pw", "~*", "&*", "+@all", "-info", "-config"); err != nil {
					t.Fatal(err)
				}
				cfg.Username, cfg.Password = "limited", "limited-pw"
			}
			c := open(t, cfg)
			h := c.Health(ctx)
			if h.Status != StatusUp || len(h.Nodes) != 1 {
				t.Fatalf("health %s with %d nodes: %+v", h.Status, len(h.Nodes), h)
			}
			n := h.Nodes[0]
			if n.MaxmemoryPolicy != tc.policy || n.Maxmemory != tc.maxmemory {
				t.Errorf("policy %q, maxmemory %d; want %q, %d", n.MaxmemoryPolicy, n.Maxmemory, tc.policy, tc.maxmemory)
			}
			switch {
			case tc.warnSubstr == "" && len(h.Warnings) != 0:
				t.Errorf("warnings %q, want none", h.Warnings)
			case tc.warnSubstr != "" && (len(h.Warnings) != 1 || !strings.Contains(h.Warnings[0], tc.warnSubstr) || !strings.Contains(h.Warnings[0], srv.Addr)):
				t.Errorf("warnings %q, want one naming %s and saying %q", h.Warnings, srv.Addr, tc.warnSubstr)
			}
		})
	}
}

// TestOpenLogsEvictionWarning: the first health report after Open logs the
// eviction warning at Warn, once; later reports with the same warning log
// nothing more.
func TestOpenLogsEvictionWarning(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.WithArgs("--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"))
	logs := &logBuffer{}
	c := open(t, Config{Addr: srv.Addr, HealthCheckInterval: 20 * time.Millisecond, Logger: logs.logger()})
	eventually(t, 5*time.Second, "the warning is logged", func() bool { return len(logs.records("may evict session keys")) > 0 })
	for range 5 {
		c.Health(context.Background())
		time.Sleep(25 * time.Millisecond)
	}
	recs := logs.records("may evict session keys")
	if len(recs) != 1 || recs[0]["level"] != "WARN" || !strings.Contains(recs[0]["msg"].(string), srv.Addr) {
		t.Fatalf("eviction warning logged %d times: %v", len(recs), recs)
	}
}
