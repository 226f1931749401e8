package rediskit

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rediskit/rediskit/internal/redistest"
)

// TestReadinessHandler: the readiness probe answers from the cached health
// report (100 probes, 0 commands), turns 503 when the server dies and 200
// again when it is back, and 503 once the client is closed. The liveness
// probe is 200 throughout.
func TestReadinessHandler(t *testing.T) {
	srv := redistest.Start(t)
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	waitFor := func(url string, code int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if got, _ := get(url); got == code {
				return
			}
			if time.Now().After(deadline) {
				got, body := get(url)
				t.Fatalf("readiness = %d %q, want %d", got, body, code)
			}
		}
	}

	// A fresh report is read, not re-checked: 100 probes, 0 commands.
	slow := open(t, Config{Addr: srv.Addr, HealthCheckInterval: time.Minute})
	slowReady := httptest.NewServer(slow.ReadinessHandler())
	defer slowReady.Close()
	waitFor(slowReady.URL, http.StatusOK)
	n := newCounter()
	slow.Redis().AddHook(n)
	for range 100 {
		if code, body := get(slowReady.URL); code != http.StatusOK || body != "up" {
			t.Fatalf("readiness = %d %q", code, body)
		}
	}
	if got := n.total(); got != 0 {
		t.Fatalf("100 readiness probes sent %d commands, want 0", got)
	}

	// It follows the checker: down with the server, up when it is back,
	// down once the client is closed. Liveness stays up.
	c := open(t, Config{Addr: srv.Addr, HealthCheckInterval: 50 * time.Millisecond})
	ready := httptest.NewServer(c.ReadinessHandler())
	defer ready.Close()
	live := httptest.NewServer(LivenessHandler())
	defer live.Close()
	waitFor(ready.URL, http.StatusOK)
	srv.Kill()
	waitFor(ready.URL, http.StatusServiceUnavailable)
	if code, _ := get(live.URL); code != http.StatusOK {
		t.Fatalf("liveness = %d with Redis down, want 200", code)
	}
	srv.Restart(t)
	waitFor(ready.URL, http.StatusOK)
	_ = c.Close()
	if code, body := get(ready.URL); code != http.StatusServiceUnavailable || !strings.Contains(body, "closed") {
		t.Fatalf("readiness after Close = %d %q", code, body)
	}
}
