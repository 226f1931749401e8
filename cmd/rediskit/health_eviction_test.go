package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rediskit/rediskit/internal/redistest"
)

// health and the dashboard warn when the instance's maxmemory-policy can
// evict session keys; the warning does not make the instance unhealthy.
func TestHealthWarnsOfEviction(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.WithArgs("--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"))
	r := cli(t, nil, "health", "--redis", s.URL()).want(t, exitOK)
	if !strings.Contains(r.stdout, "warning: "+s.Addr+": maxmemory-policy allkeys-lru") || !strings.Contains(r.stdout, "MAXMEMORY-POLICY") {
		t.Fatalf("health output has no eviction warning:\n%s", r.stdout)
	}
	var h struct {
		Status   string
		Warnings []string
		Nodes    []struct {
			Policy    string `json:"maxmemory_policy"`
			Maxmemory int64
		}
	}
	cli(t, nil, "health", "--json", "--redis", s.URL()).want(t, exitOK).json(t, &h)
	if h.Status != "up" || len(h.Warnings) != 1 || len(h.Nodes) != 1 || h.Nodes[0].Policy != "allkeys-lru" || h.Nodes[0].Maxmemory != 100<<20 {
		t.Fatalf("health --json: %+v", h)
	}

	srv := startServe(t, nil, "--redis", s.URL())
	c := &http.Client{Timeout: 10 * time.Second}
	if resp, body := get(t, c, srv.base+"/api/snapshot"); resp.StatusCode != 200 || !strings.Contains(body, `"warnings":["`+s.Addr+`: maxmemory-policy allkeys-lru`) {
		t.Fatalf("/api/snapshot has no eviction warning: %d %s", resp.StatusCode, body)
	}
	srv.stop(t)

	// The default policy (noeviction) gives no warning.
	quiet := redistest.Start(t)
	if r := cli(t, nil, "health", "--redis", quiet.URL()).want(t, exitOK); strings.Contains(r.stdout, "warning") {
		t.Fatalf("warning for noeviction:\n%s", r.stdout)
	}
}
