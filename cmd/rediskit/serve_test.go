package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rediskit/rediskit/internal/redistest"
)

// server is a `rediskit serve` process: this test binary re-run as main.
type server struct {
	cmd    *exec.Cmd
	base   string // http://host:port
	banner []string
	exited chan error
}

func startServe(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	redistest.Binary(t) // the embedded server is a real redis-server here
	cmd := exec.Command(os.Args[0], append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(withoutRedisEnv(os.Environ()), append(env, "REDISKIT_TEST_RUN_MAIN=1")...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, exited: make(chan error, 1)}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		s.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		for range lines {
		}
	})
	re := regexp.MustCompile(`dashboard on (http://\S+)/ `)
	timeout := time.After(30 * time.Second)
	for s.base == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("serve exited before listening; said %q", s.banner)
			}
			s.banner = append(s.banner, l)
			if m := re.FindStringSubmatch(l); m != nil {
				s.base = m[1]
			}
		case <-timeout:
			t.Fatalf("serve did not print its URL within 30 s; said %q", s.banner)
		}
	}
	go func() {
		for l := range lines {
			s.banner = append(s.banner, l)
		}
	}()
	return s
}

func withoutRedisEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "REDIS_URL=") && !strings.HasPrefix(kv, "REDISKIT_") {
			out = append(out, kv)
		}
	}
	return out
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.exited:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve still running 20 s after SIGTERM")
	}
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestServeEmbedded(t *testing.T) {
	t.Parallel()
	s := startServe(t, nil)
	m := regexp.MustCompile(`embedded redis-server .* on (127\.0\.0\.1:\d+)`).FindStringSubmatch(strings.Join(s.banner, "\n"))
	if m == nil {
		t.Fatalf("banner does not say an embedded redis-server was started: %q", s.banner)
	}
	embeddedAddr := m[1]

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	if resp, body := get(t, c, s.base+"/healthz"); resp.StatusCode != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", resp.StatusCode, body)
	}
	if resp, body := get(t, c, s.base+"/readyz"); resp.StatusCode != 200 || body != "up\n" {
		t.Fatalf("/readyz: %d %q", resp.StatusCode, body)
	}
	if resp, body := get(t, c, s.base+"/"); resp.StatusCode != 200 || !strings.Contains(body, "/static/app.js") {
		t.Fatalf("dashboard: %d", resp.StatusCode)
	}
	if resp, body := get(t, c, s.base+"/static/app.js"); resp.StatusCode != 200 || !strings.Contains(body, "EventSource") {
		t.Fatalf("embedded asset: %d", resp.StatusCode)
	}

	// The demo: a miss, then a hit through GetOrSet: from Redis, or from
	// the near tier if it already holds the value (the miss's own
	// invalidation may or may not have refused its insert).
	if resp, _ := get(t, c, s.base+"/demo/slow?item=42"); resp.Header.Get("X-Cache") != "miss" {
		t.Fatalf("slow endpoint, first call: X-Cache %q, want miss", resp.Header.Get("X-Cache"))
	}
	resp, _ := get(t, c, s.base+"/demo/slow?item=42")
	redisHits := 0
	switch got := resp.Header.Get("X-Cache"); got {
	case "hit":
		redisHits = 1
	case "near":
	default:
		t.Fatalf("slow endpoint, second call: X-Cache %q, want hit or near", got)
	}
	// The near tier serves it from now on (the embedded redis-server
	// tracks keys), and the dashboard's snapshot shows it.
	nearHits := 0
	askSlow := func() { // counts what answered, for the metrics below
		resp, _ := get(t, c, s.base+"/demo/slow?item=42")
		switch got := resp.Header.Get("X-Cache"); got {
		case "near":
			nearHits++
		case "hit":
			redisHits++
		default:
			t.Fatalf("slow endpoint, a later call: X-Cache %q, want hit or near", got)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); nearHits == 0; time.Sleep(20 * time.Millisecond) {
		askSlow()
		if time.Now().After(deadline) {
			t.Fatal("the slow endpoint was never answered from the near tier")
		}
	}
	var snap struct {
		Cache struct {
			Hits uint64 `json:"hits"`
			Near struct {
				Mode          string `json:"mode"`
				Serving       bool   `json:"serving"`
				Hits          uint64 `json:"hits"`
				Fills         uint64 `json:"fills"`
				Entries       int    `json:"entries"`
				Invalidations uint64 `json:"invalidations"`
				Flushes       uint64 `json:"flushes"`
			} `json:"near"`
		} `json:"cache"`
	}
	// The sampler takes a snapshot every second. An entry may be gone by
	// then (a late invalidation of the first call's write, or a flush when
	// a loaded machine misses a health check of the tracking connection),
	// so the endpoint is asked again, which fills it again, until a
	// snapshot shows the tier at work.
	working := func() bool {
		n := snap.Cache.Near
		return n.Mode == "tracking" && n.Serving && n.Hits > 0 && n.Fills > 0 && n.Entries > 0
	}
	for waitSnap := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, body := get(t, c, s.base+"/api/snapshot")
		if err := json.Unmarshal([]byte(body), &snap); err != nil {
			t.Fatalf("/api/snapshot: %v", err)
		}
		if working() {
			break
		}
		if time.Now().After(waitSnap) {
			t.Fatalf("snapshot's near tier = %+v; want tracking, serving, with hits, fills and entries", snap.Cache.Near)
		}
		askSlow()
	}
	// Sign in: the form carries a CSRF token from the session.
	_, home := get(t, c, s.base+"/demo/")
	tok := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(home)
	if tok == nil {
		t.Fatal("sign-in form has no CSRF token")
	}
	var err error
	resp, err = c.PostForm(s.base+"/demo/login", url.Values{"user": {"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("login without CSRF token: %d, want 403", resp.StatusCode)
	}
	resp, err = c.PostForm(s.base+"/demo/login", url.Values{"user": {"alice"}, "csrf": {tok[1]}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "this device") {
		t.Fatalf("after login: %d, sessions page lacks this device:\n%s", resp.StatusCode, b)
	}

	// Metrics: the client, the cache and the sessions are all there.
	_, metrics := get(t, c, s.base+"/metrics")
	for _, want := range []string{
		"rediskit_client_command_duration_seconds_bucket", "rediskit_breaker_state 0",
		`rediskit_cache_loads_total{cache="demo"} 1`, fmt.Sprintf(`rediskit_cache_hits_total{cache="demo"} %d`, redisHits),
		fmt.Sprintf(`rediskit_cache_near_hits_total{cache="demo"} %d`, nearHits), `rediskit_cache_near_serving{cache="demo"} 1`,
		"rediskit_session_active 1", "rediskit_pool_connections",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// The event stream sends snapshots; shutdown must end it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.base+"/api/events", nil)
	stream, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stream.Body).ReadString('\n')
	if !strings.HasPrefix(line, `data: {"time":`) {
		t.Fatalf("event stream: %q", line)
	}

	s.stop(t)
	stream.Body.Close()
	if conn, err := net.DialTimeout("tcp", embeddedAddr, time.Second); err == nil {
		conn.Close()
		t.Fatalf("embedded redis-server on %s still accepts connections after shutdown", embeddedAddr)
	}
}

func TestServeCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.SharedCluster(t)
	s := startServe(t, []string{"REDIS_URL=redis-cluster://" + strings.Join(cl.Addrs(), ",")}, "--demo=false")
	if strings.Contains(strings.Join(s.banner, "\n"), "embedded") {
		t.Fatalf("started an embedded server despite REDIS_URL: %q", s.banner)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	_, snap := get(t, c, s.base+"/api/snapshot")
	if n := strings.Count(snap, `"role":"master"`); n != 3 {
		t.Fatalf("snapshot lists %d masters, want 3: %s", n, snap)
	}
	for _, k := range []string{`"waits":`, `"wait_ms":`, `"deadlines":`} {
		if !strings.Contains(snap, k) {
			t.Fatalf("snapshot has no %s (pool wait, caller deadlines): %s", k, snap)
		}
	}
	if resp, _ := get(t, c, s.base+"/demo/"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("--demo=false still serves /demo/: %d", resp.StatusCode)
	}
	s.stop(t)
}

// The real process, not the in-process runner: go-redis's own logging
// must not add lines to the one error line, nor leak the password.
func TestProcessErrorIsOneLine(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.WithPassword("s3cret-pw"))
	addr := s.Addr
	s.Kill()
	cmd := exec.Command(os.Args[0], "stats", "--redis", "redis://:s3cret-pw@"+addr+"/0")
	cmd.Env = append(withoutRedisEnv(os.Environ()), "REDISKIT_TEST_RUN_MAIN=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitUnreachable {
		t.Fatalf("exit: %v, want status %d", err, exitUnreachable)
	}
	msg := strings.TrimRight(stderr.String(), "\n")
	if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, addr) || strings.Contains(msg, "s3cret-pw") {
		t.Fatalf("stderr is not one secret-free line naming %s:\n%s", addr, stderr.String())
	}
}

// Without redis-server on PATH, serve falls back to the in-process server
// and the dashboard and the demo still work.
func TestServeInProcessFallback(t *testing.T) {
	t.Parallel()
	s := startServe(t, []string{"PATH=" + t.TempDir()})
	if banner := strings.Join(s.banner, "\n"); !strings.Contains(banner, "in-process Redis-compatible server") {
		t.Fatalf("banner does not name the in-process server: %q", s.banner)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	if resp, body := get(t, c, s.base+"/readyz"); resp.StatusCode != 200 || body != "up\n" {
		t.Fatalf("/readyz: %d %q", resp.StatusCode, body)
	}
	for i, want := range []string{"miss", "hit"} {
		resp, _ := get(t, c, s.base+"/demo/slow?item=7")
		if got := resp.Header.Get("X-Cache"); got != want {
			t.Fatalf("slow endpoint call %d: X-Cache %q, want %q", i, got, want)
		}
	}
	if resp, body := get(t, c, s.base+"/api/snapshot"); resp.StatusCode != 200 || !strings.Contains(body, `"status":"up"`) {
		t.Fatalf("/api/snapshot: %d %s", resp.StatusCode, body)
	}
	s.stop(t)
}
