package rediskit

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rediskit/rediskit/internal/redistest"
)

// logBuffer is a JSON slog handler's output, safe for the client's
// goroutines, with its records decoded on demand.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// records returns the records whose message contains msg.
func (b *logBuffer) records(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(b.String(), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil && strings.Contains(r["msg"].(string), msg) {
			out = append(out, r)
		}
	}
	return out
}

// TestGoRedisLevels: go-redis's lines (format strings copied from the
// v9.23.0 source) get the level an operator would give them: a failover
// and an unreachable node are Warn, a topology change or reconnection is
// Info, a retired connection Debug, a recovered panic Error.
func TestGoRedisLevels(t *testing.T) {
	for format, want := range map[string]slog.Level{
		"sentinel: new master=%q addr=%q":                                 slog.LevelWarn,
		"redis: connection pool: failed to dial after %d attempts: %v":    slog.LevelWarn,
		"sentinel: GetMasterAddrByName name=%q failed: %s":                slog.LevelWarn,
		"pubsub: reconnecting to new endpoint %s (was %s)":                slog.LevelInfo,
		"sentinel: discovered new sentinel=%q for master=%q":              slog.LevelInfo,
		"cluster: slots %v migrated to %s, reloading cluster state":       slog.LevelInfo,
		"redis: failed to close connection: %v":                           slog.LevelDebug,
		"Conn has unread data (not push notification), removing it":       slog.LevelDebug,
		"autopipeline: recovered dispatch panic: %v\n%s":                  slog.LevelError,
		"specified duration is %s, but minimal supported value is %s - x": slog.LevelWarn,
	} {
		if got := goRedisLevel(format); got != want {
			t.Errorf("goRedisLevel(%q) = %v, want %v", format, got, want)
		}
	}
}

// TestGoRedisLogRoutesAndRedacts: go-redis's lines reach the Logger of
// every open Client once per distinct Logger (two Clients sharing one get
// one record), stop reaching a Client's Logger when it is closed, carry
// component=go-redis, and never contain a password of a registered Config
// nor the credentials of a URL.
func TestGoRedisLogRoutesAndRedacts(t *testing.T) {
	const pw = "Sup3r-secret-pw"
	srv := redistest.Start(t, redistest.WithPassword(pw))
	var a, b logBuffer
	cfg := Config{Addr: srv.Addr, Password: pw, HealthCheckInterval: -1}
	cfgA, cfgB := cfg, cfg
	cfgA.Logger, cfgB.Logger = a.logger(), b.logger()
	a1, a2, b1 := open(t, cfgA), open(t, cfgA), open(t, cfgB)
	_ = a2

	ctx := context.Background()
	// go-redis logs when a TTL below its resolution is rounded up
	// (commands.go, formatMs), with the caller's context.
	if err := a1.Redis().Set(ctx, redistest.Prefix(t)+"k", "v", 777*time.Microsecond).Err(); err != nil {
		t.Fatal(err)
	}
	for name, buf := range map[string]*logBuffer{"A (two clients)": &a, "B": &b} {
		recs := buf.records("777µs")
		if len(recs) != 1 {
			t.Fatalf("logger %s got %d records of the go-redis line, want 1:\n%s", name, len(recs), buf.String())
		}
		if recs[0]["component"] != "go-redis" || recs[0]["level"] != "WARN" {
			t.Errorf("logger %s: record %v, want component=go-redis level=WARN", name, recs[0])
		}
	}

	if err := b1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a1.Redis().Set(ctx, redistest.Prefix(t)+"k", "v", 778*time.Microsecond).Err(); err != nil {
		t.Fatal(err)
	}
	if n := len(b.records("778µs")); n != 0 {
		t.Errorf("a closed Client's Logger got %d go-redis records", n)
	}
	if n := len(a.records("778µs")); n != 1 {
		t.Errorf("the open Clients' Logger got %d records, want 1", n)
	}

	// A line that carried a password (go-redis does not write one today;
	// the router is the last line of defence) is redacted.
	redisLog.Printf(ctx, "dial redis://user:%s@host:1 failed: %s", "url-"+pw, pw)
	recs := a.records("dial redis://")
	if len(recs) != 1 {
		t.Fatalf("got %d records of the crafted line:\n%s", len(recs), a.String())
	}
	if msg := recs[0]["msg"].(string); strings.Contains(msg, pw) || !strings.Contains(msg, "[redacted]") {
		t.Errorf("crafted line logged as %q", msg)
	}
	if strings.Contains(a.String(), pw) || strings.Contains(b.String(), pw) {
		t.Errorf("a password reached a log:\n%s\n%s", a.String(), b.String())
	}

	// Every Client closed: lines go to standard error, URL credentials
	// removed, and no Logger gets them.
	_ = a1.Close()
	_ = a2.Close()
	var stderr logBuffer
	redisLogStderr.SetOutput(&stderr)
	defer redisLogStderr.SetOutput(os.Stderr)
	before := a.String()
	redisLog.Printf(ctx, "dial redis://user:%s@host:2 failed", "url-"+pw)
	if got := stderr.String(); !strings.Contains(got, "redis: ") || !strings.Contains(got, "redis://[redacted]@host:2") || strings.Contains(got, pw) {
		t.Errorf("with every Client closed, standard error got %q", got)
	}
	if a.String() != before {
		t.Errorf("a closed Client's Logger still gets go-redis lines:\n%s", strings.TrimPrefix(a.String(), before))
	}
}

// TestClientLogRecords: a Client's own records, at the levels an operator
// chooses by: Open at Info; the server gone makes a command be retried
// (Debug), the health report go down (Warn) and the breaker open (Warn);
// back up, the breaker closes and health is up again (Info). No record
// carries the password.
func TestClientLogRecords(t *testing.T) {
	const pw = "Sup3r-secret-pw"
	srv := redistest.Start(t, redistest.WithPassword(pw))
	var logs logBuffer
	c := open(t, Config{Addr: srv.Addr, Password: pw, Logger: logs.logger(),
		HealthCheckInterval: -1, BreakerThreshold: 2, BreakerCooldown: 50 * time.Millisecond,
		DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond})
	ctx := context.Background()
	if h := c.Health(ctx); !h.Healthy() {
		t.Fatalf("health before the kill: %+v", h)
	}
	srv.Kill()
	// The first failure is retried (the breaker needs two to open).
	_ = c.Redis().Get(ctx, "k").Err()
	if h := c.Health(ctx); h.Healthy() {
		t.Fatalf("health after the kill: %+v", h)
	}
	for range 4 {
		_ = c.Redis().Get(ctx, "k").Err()
	}
	srv.Restart(t)
	eventually(t, 10*time.Second, "the breaker closes", func() bool {
		_ = c.Redis().Get(ctx, "k").Err()
		return c.BreakerState() == BreakerClosed
	})
	if h := c.Health(ctx); !h.Healthy() {
		t.Fatalf("health after the restart: %+v", h)
	}
	for msg, level := range map[string]string{
		"rediskit: open":                   "INFO",
		"rediskit: health down":            "WARN",
		"rediskit: circuit breaker open":   "WARN",
		"rediskit: circuit breaker closed": "INFO",
		"rediskit: health up":              "INFO",
		"rediskit: retrying a command":     "DEBUG",
	} {
		recs := logs.records(msg)
		if len(recs) == 0 {
			t.Errorf("no %q record:\n%s", msg, logs.String())
			continue
		}
		if recs[0]["level"] != level || recs[0]["component"] != "rediskit" {
			t.Errorf("%q logged as %v, want level %s, component rediskit", msg, recs[0], level)
		}
	}
	if strings.Contains(logs.String(), pw) {
		t.Errorf("the password reached the log:\n%s", logs.String())
	}
}
