package rediskit_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rediskit/rediskit"
	"github.com/rediskit/rediskit/cache"
	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/session"
)

// TestSecretsNeverLeak runs the library end to end with a password URL —
// open, sessions through the middleware, cache, health, statistics, then
// Redis killed — and records every log line (the Manager's, and the
// Client's Config.Logger with go-redis's lines routed to it), error string
// and printed config. Neither the password nor any session token may appear in them.
func TestSecretsNeverLeak(t *testing.T) {
	const password = "Sup3r-secret-pw"
	srv := redistest.Start(t, redistest.WithPassword(password))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var seen []string // every error and printed value of the run
	record := func(vs ...any) {
		for _, v := range vs {
			if v != nil {
				seen = append(seen, fmt.Sprintf("%v|%+v|%#v", v, v, v))
			}
		}
	}

	cfg, err := rediskit.ParseURL(srv.URL() + "?breaker_threshold=2&retry_attempts=1&dial_timeout=300ms&read_timeout=300ms")
	if err != nil || cfg.Password != password {
		t.Fatalf("ParseURL: %v", err)
	}
	cfg.Logger = logger // rediskit's records and go-redis's lines (log.go)
	record(cfg, &cfg)
	for _, u := range []string{
		strings.Replace(srv.URL(), password, "wrong-"+password, 1), // wrong password
		srv.URL() + "?pool_size=many",                              // config error
		strings.Replace(srv.URL(), "/0", "/x", 1),
	} {
		bad := mustParse(u)
		bad.Logger = logger // the slog path sees the failed opens too
		c, err := rediskit.Open(ctx, bad)
		if err == nil {
			_ = c.Close()
			if !strings.Contains(u, "wrong-") {
				t.Fatalf("Open(%q) succeeded", u)
			}
		}
		record(err)
	}
	client, err := rediskit.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	record(client.Config())

	store, err := session.New(client.Redis(), session.Options{Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	m := session.NewManager(store, session.ManagerOptions{Logger: logger})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		record(m.Login(r.Context(), "alice"))
		m.Put(r.Context(), "n", 1)
	})
	mux.HandleFunc("POST /renew", func(w http.ResponseWriter, r *http.Request) { record(m.RenewToken(r.Context())) })
	mux.HandleFunc("POST /bad", func(w http.ResponseWriter, r *http.Request) { m.Put(r.Context(), "ch", make(chan int)) })
	mux.HandleFunc("POST /late", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		m.Put(r.Context(), "late", 1)
		record(m.RenewToken(r.Context()))
	})
	h := m.LoadAndSave(mux)
	var tokens []string
	serve := func(method, path, tok string) string {
		r := httptest.NewRequest(method, path, nil)
		if tok != "" {
			r.AddCookie(&http.Cookie{Name: "session", Value: tok})
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		for _, c := range rec.Result().Cookies() {
			if c.Value != "" {
				tokens = append(tokens, c.Value)
				tok = c.Value
			}
		}
		return tok
	}
	tok := serve("POST", "/login", "")
	tok = serve("POST", "/renew", tok)
	serve("POST", "/bad", tok)
	serve("POST", "/late", tok)
	serve("POST", "/login", "") // a second device
	s, err := store.Get(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	record(s, *s, s.Info())
	dead := tokens[0] // rotated away
	_, err = store.Get(ctx, dead)
	record(err)
	_, err = store.Update(ctx, dead, session.Changes{Set: map[string]any{"x": 1}})
	record(err)
	_, err = store.Rotate(ctx, dead)
	record(err)
	_, err = store.Get(ctx, dead[:40]+"!!!!"+dead[44:])
	record(err)

	c, err := cache.New(client.Redis(), cache.Options{Prefix: strings.TrimSuffix(redistest.Prefix(t), ":")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	record(c.Set(ctx, "k", []byte("v"), time.Minute))
	_, err = c.GetOrSet(ctx, "boom", time.Minute, func(context.Context) ([]byte, error) { return nil, fmt.Errorf("db down") })
	record(err)
	record(client.Health(ctx))
	st, err := client.Stats(ctx)
	record(st, err)

	// Redis goes away: every failure path logs and errors, still clean.
	srv.Kill()
	serve("GET", "/", tok)
	serve("POST", "/login", "")
	_, err = store.Get(ctx, tok)
	record(err)
	_, err = store.Create(ctx, "bob", nil, session.CreateOptions{})
	record(err)
	_, err = c.GetOrSet(ctx, "k2", time.Minute, func(context.Context) ([]byte, error) { return []byte("x"), nil })
	record(err)
	_, _, err = c.Get(ctx, "k")
	record(err)
	record(client.Health(ctx))
	st, err = client.Stats(ctx)
	record(st, err)

	if len(tokens) < 3 {
		t.Fatalf("only %d tokens seen: the run did not exercise the middleware", len(tokens))
	}
	if !strings.Contains(logs.String(), "load failed") || !strings.Contains(logs.String(), "save failed") {
		t.Fatalf("the run logged no failure:\n%s", logs.String())
	}
	for _, want := range []string{`"msg":"rediskit: open"`, `"msg":"rediskit: circuit breaker open"`, `"component":"go-redis"`} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("the slog path logged no %s:\n%s", want, logs.String())
		}
	}
	all := logs.String() + "\n" + strings.Join(seen, "\n")
	for _, secret := range append([]string{password}, tokens...) {
		if strings.Contains(all, secret) {
			i := strings.Index(all, secret)
			t.Fatalf("secret %.8q… found: %q", secret, all[max(0, i-200):min(len(all), i+len(secret)+50)])
		}
	}
}

func mustParse(u string) rediskit.Config {
	c, err := rediskit.ParseURL(u)
	if err != nil {
		return rediskit.Config{Addr: "127.0.0.1:1", Password: "Sup3r-secret-pw"}
	}
	return c
}
