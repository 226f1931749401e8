package session_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
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

// app is a small site used by the end-to-end tests.
func app(m *session.Manager) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if err := m.Login(r.Context(), r.FormValue("user")); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		m.RememberMe(r.Context(), r.FormValue("remember") == "1")
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("POST /renew", func(w http.ResponseWriter, r *http.Request) {
		if err := m.RenewToken(r.Context()); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("POST /incr", func(w http.ResponseWriter, r *http.Request) {
		k := r.FormValue("k")
		m.Put(r.Context(), k, m.GetInt(r.Context(), k)+1)
	})
	mux.HandleFunc("POST /flash", func(w http.ResponseWriter, r *http.Request) {
		m.Put(r.Context(), "flash", r.FormValue("msg"))
	})
	mux.HandleFunc("GET /flash", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, m.PopString(r.Context(), "flash"))
	})
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s:%d", m.UserID(r.Context()), m.GetInt(r.Context(), r.FormValue("k")))
	})
	mux.HandleFunc("POST /logout-all", func(w http.ResponseWriter, r *http.Request) {
		n, err := m.LogoutEverywhere(r.Context())
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, n)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := m.Destroy(r.Context()); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("POST /late", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		m.Put(r.Context(), "late", 1)
	})
	mux.HandleFunc("POST /unencodable", func(w http.ResponseWriter, r *http.Request) {
		m.Put(r.Context(), "ch", make(chan int))
		fmt.Fprint(w, "handler body")
	})
	return m.LoadAndSave(mux)
}

type client struct {
	t    *testing.T
	http *http.Client
	base string
}

func newClient(t *testing.T, srv *httptest.Server) *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	// srv.Client() is one shared *http.Client: copy it so each client
	// keeps its own jar.
	c := &http.Client{Transport: srv.Client().Transport, Jar: jar}
	return &client{t: t, http: c, base: srv.URL}
}

func (c *client) do(method, path string, form url.Values) (*http.Response, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func (c *client) cookie() string {
	u, _ := url.Parse(c.base)
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == "session" {
			return ck.Value
		}
	}
	return ""
}

func (c *client) setCookie(v string) {
	u, _ := url.Parse(c.base)
	c.http.Jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: v, Path: "/"}})
}

func TestManagerEndToEnd(t *testing.T) {
	forEachTopology(t, session.Options{}, func(t *testing.T, e *env) {
		m := session.NewManager(e.store, session.ManagerOptions{})
		srv := httptest.NewTLSServer(app(m))
		defer srv.Close()
		a, b := newClient(t, srv), newClient(t, srv)

		// An anonymous visit that changes nothing writes nothing and sets no cookie.
		e.count.reset()
		res, _ := a.do("GET", "/get?k=x", nil)
		if n, _ := e.count.get(); n != 0 || res.Header.Get("Set-Cookie") != "" {
			t.Fatalf("anonymous read: %d Redis calls, Set-Cookie %q", n, res.Header.Get("Set-Cookie"))
		}

		// Login on two devices.
		res, _ = a.do("POST", "/login", url.Values{"user": {"alice"}})
		sc := res.Header.Get("Set-Cookie")
		for _, attr := range []string{"HttpOnly", "Secure", "SameSite=Lax", "Path=/"} {
			if !strings.Contains(sc, attr) {
				t.Errorf("cookie %q lacks %s", sc, attr)
			}
		}
		if strings.Contains(sc, "Expires") {
			t.Errorf("cookie without RememberMe persists: %q", sc)
		}
		if res.Header.Get("Vary") != "Cookie" || res.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("Vary %q Cache-Control %q", res.Header.Get("Vary"), res.Header.Get("Cache-Control"))
		}
		res, _ = b.do("POST", "/login", url.Values{"user": {"alice"}, "remember": {"1"}})
		if sc := res.Header.Get("Set-Cookie"); !strings.Contains(sc, "Expires=") {
			t.Errorf("RememberMe cookie %q has no Expires", sc)
		}
		c1 := a.cookie()
		if !session.ValidToken(c1) {
			t.Fatalf("cookie %q is not a token", c1)
		}

		// Steady state: exactly one Redis command per request, no cookie.
		e.count.reset()
		res, body := a.do("GET", "/get?k=x", nil)
		if n, cmds := e.count.get(); n != 1 || cmds[0] != "get" {
			t.Fatalf("steady-state request: %d calls %v", n, cmds)
		}
		if body != "alice:0" || res.Header.Get("Set-Cookie") != "" {
			t.Fatalf("steady state: body %q Set-Cookie %q", body, res.Header.Get("Set-Cookie"))
		}
		// A change costs one more.
		e.count.reset()
		a.do("POST", "/incr", url.Values{"k": {"x"}})
		if n, _ := e.count.get(); n != 2 {
			t.Fatalf("changing request: %d calls", n)
		}

		// Rotate: new cookie, old one dead.
		a.do("POST", "/renew", nil)
		c2 := a.cookie()
		if c2 == c1 || c2 == "" {
			t.Fatal("RenewToken did not change the cookie")
		}
		if _, body := a.do("GET", "/get?k=x", nil); body != "alice:1" {
			t.Fatalf("after renew: %q", body)
		}
		stale := newClient(t, srv)
		stale.setCookie(c1)
		res, body = stale.do("GET", "/get?k=x", nil)
		if body != ":0" || !strings.Contains(res.Header.Get("Set-Cookie"), "Max-Age=0") {
			t.Fatalf("old cookie after renew: body %q Set-Cookie %q", body, res.Header.Get("Set-Cookie"))
		}

		// Concurrent requests changing different keys all survive.
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				res, body := a.do("POST", "/incr", url.Values{"k": {fmt.Sprintf("k%d", i)}})
				if sc := res.Header.Get("Set-Cookie"); sc != "" || res.StatusCode != 200 {
					t.Errorf("concurrent incr: %d %q Set-Cookie %q", res.StatusCode, body, sc)
				}
			})
		}
		wg.Wait()
		for i := range 20 {
			if _, body := a.do("GET", fmt.Sprintf("/get?k=k%d", i), nil); body != "alice:1" {
				t.Fatalf("k%d after concurrent requests: %q", i, body)
			}
		}

		// Flash messages.
		a.do("POST", "/flash", url.Values{"msg": {"saved"}})
		if _, body := a.do("GET", "/flash", nil); body != "saved" {
			t.Fatalf("flash = %q", body)
		}
		if _, body := a.do("GET", "/flash", nil); body != "" {
			t.Fatalf("flash twice = %q", body)
		}

		// Log out everywhere from device B: both sessions die.
		if _, body := b.do("POST", "/logout-all", nil); body != "2" {
			t.Fatalf("logout-all = %q", body)
		}
		if _, body := a.do("GET", "/get?k=x", nil); body != ":0" {
			t.Fatalf("device A after logout everywhere: %q", body)
		}
		for _, old := range []string{c1, c2} {
			stale.setCookie(old)
			if _, body := stale.do("GET", "/get?k=x", nil); body != ":0" {
				t.Fatalf("old cookie after logout everywhere: %q", body)
			}
		}
		if l, _ := e.store.ListByUser(context.Background(), "alice"); len(l) != 0 {
			t.Fatalf("sessions left: %+v", l)
		}

		// Log in again then log out.
		a.do("POST", "/login", url.Values{"user": {"alice"}})
		a.do("POST", "/logout", nil)
		if a.cookie() != "" {
			t.Fatal("Destroy left the cookie")
		}
	})
}

func TestManagerNeverWritesAfterCommit(t *testing.T) {
	forEachTopology(t, session.Options{}, func(t *testing.T, e *env) {
		var logs bytes.Buffer
		m := session.NewManager(e.store, session.ManagerOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		srv := httptest.NewTLSServer(app(m))
		defer srv.Close()
		a := newClient(t, srv)
		a.do("POST", "/login", url.Values{"user": {"late"}})
		e.count.reset()
		res, _ := a.do("POST", "/late", nil)
		if res.StatusCode != http.StatusAccepted {
			t.Fatalf("status %d", res.StatusCode)
		}
		if n, _ := e.count.get(); n != 1 {
			t.Fatalf("late Put caused %d Redis calls, want only the load", n)
		}
		if !strings.Contains(logs.String(), "after the response was committed") {
			t.Fatalf("no warning logged: %s", logs.String())
		}
		if _, body := a.do("GET", "/get?k=late", nil); body != "late:0" {
			t.Fatalf("late value was saved: %q", body)
		}

		// A save failure replaces the response through the error handler.
		res, body := a.do("POST", "/unencodable", nil)
		if res.StatusCode != 500 || strings.Contains(body, "handler body") {
			t.Fatalf("unencodable: %d %q", res.StatusCode, body)
		}
	})
}

func TestManagerRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t, func(o *redis.Options) { o.MaxRetries = -1; o.DialTimeout = 300 * time.Millisecond })
	e := newEnv(t, rdb, session.Options{})
	var logs bytes.Buffer
	m := session.NewManager(e.store, session.ManagerOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	web := httptest.NewTLSServer(app(m))
	defer web.Close()
	a := newClient(t, web)
	a.do("POST", "/login", url.Values{"user": {"down"}})
	tok := a.cookie()
	if tok == "" {
		t.Fatal("no cookie")
	}
	srv.Kill()
	res, _ := a.do("GET", "/get?k=x", nil)
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", res.StatusCode)
	}
	if strings.Contains(logs.String(), tok) || !strings.Contains(logs.String(), "load failed") {
		t.Fatalf("log: %s", logs.String())
	}

	// A replaceable handler.
	m2 := session.NewManager(e.store, session.ManagerOptions{
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) { http.Error(w, "custom", 599) },
	})
	web2 := httptest.NewTLSServer(app(m2))
	defer web2.Close()
	b := newClient(t, web2)
	res, body := b.do("POST", "/incr", url.Values{"k": {"x"}})
	if res.StatusCode != 599 || !strings.Contains(body, "custom") {
		t.Fatalf("custom handler: %d %q", res.StatusCode, body)
	}
}

func TestManagerCookieOptions(t *testing.T) {
	rdb := redistest.Shared(t).Client(t)
	e := newEnv(t, rdb, session.Options{})
	m := session.NewManager(e.store, session.ManagerOptions{Cookie: session.CookieOptions{
		Name: "sid", Path: "/app", Domain: "example.test", ScriptAccess: true, Insecure: true,
		SameSite: http.SameSiteStrictMode, Persist: true,
	}})
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.Put(r.Context(), "a", 1)
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/app", nil))
	sc := rec.Header().Get("Set-Cookie")
	for _, want := range []string{"sid=", "Path=/app", "Domain=example.test", "SameSite=Strict", "Expires="} {
		if !strings.Contains(sc, want) {
			t.Errorf("cookie %q lacks %q", sc, want)
		}
	}
	for _, not := range []string{"HttpOnly", "Secure"} {
		if strings.Contains(sc, not) {
			t.Errorf("cookie %q has %q", sc, not)
		}
	}
}

// TestManagerValues covers the value accessors over a loaded session
// (read in place until the first change) and after changes.
func TestManagerValues(t *testing.T) {
	forEachTopology(t, session.Options{}, func(t *testing.T, e *env) {
		m := session.NewManager(e.store, session.ManagerOptions{})
		mux := http.NewServeMux()
		mux.HandleFunc("POST /put", func(w http.ResponseWriter, r *http.Request) {
			for _, k := range []string{"a", "b", "c"} {
				m.Put(r.Context(), k, k+"!")
			}
		})
		show := func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			fmt.Fprintf(w, "%v a=%v/%q b=%q", m.Keys(ctx), m.Exists(ctx, "a"), m.GetString(ctx, "a"), m.GetString(ctx, "b"))
		}
		mux.HandleFunc("GET /show", show)
		mux.HandleFunc("POST /remove", func(w http.ResponseWriter, r *http.Request) {
			m.Remove(r.Context(), "a")
			m.Remove(r.Context(), "missing")
			show(w, r)
		})
		mux.HandleFunc("POST /put-then-clear", func(w http.ResponseWriter, r *http.Request) {
			m.Put(r.Context(), "d", 1)
			m.Clear(r.Context())
			show(w, r)
		})
		srv := httptest.NewTLSServer(m.LoadAndSave(mux))
		defer srv.Close()
		c := newClient(t, srv)
		c.do("POST", "/put", nil)
		for _, step := range []struct{ method, path, want string }{
			{"GET", "/show", `[a b c] a=true/"a!" b="b!"`},
			{"POST", "/remove", `[b c] a=false/"" b="b!"`},
			{"GET", "/show", `[b c] a=false/"" b="b!"`},
			{"POST", "/put-then-clear", `[] a=false/"" b=""`},
			{"GET", "/show", `[] a=false/"" b=""`},
		} {
			e.count.reset()
			if _, body := c.do(step.method, step.path, nil); body != step.want {
				t.Fatalf("%s %s = %q, want %q", step.method, step.path, body, step.want)
			}
			if n, cmds := e.count.get(); step.method == "GET" && n != 1 {
				t.Fatalf("%s %s: %d Redis calls %v, want 1", step.method, step.path, n, cmds)
			}
		}
	})
}

// TestManagerDeadSessionReadsEmpty: a session whose idle timeout has passed
// by the store's clock while its key still lives in Redis is read once (the
// GET finds it), then killed by the touch; the request must then see an
// empty session (no user, no values) and drop the cookie, not the dead
// session's values.
func TestManagerDeadSessionReadsEmpty(t *testing.T) {
	clock := newFakeClock()
	opts := session.Options{IdleTimeout: time.Hour, TouchInterval: time.Minute, Clock: clock.Now}
	forEachTopology(t, opts, func(t *testing.T, e *env) {
		m := session.NewManager(e.store, session.ManagerOptions{})
		srv := httptest.NewTLSServer(app(m))
		defer srv.Close()
		a := newClient(t, srv)
		a.do("POST", "/login", url.Values{"user": {"alice"}})
		a.do("POST", "/incr", url.Values{"k": {"n"}})
		if _, body := a.do("GET", "/get?k=n", nil); body != "alice:1" {
			t.Fatalf("live session reads %q, want alice:1", body)
		}
		clock.Add(2 * time.Hour)
		res, body := a.do("GET", "/get?k=n", nil)
		if body != ":0" {
			t.Errorf("dead session reads %q, want :0", body)
		}
		if !strings.Contains(res.Header.Get("Set-Cookie"), "Max-Age=0") {
			t.Errorf("dead session's cookie kept: Set-Cookie %q", res.Header.Get("Set-Cookie"))
		}
	})
}

// TestManagerInfo: Info says nothing of a session not stored yet; once
// stored, it gives the user, the handle, the device the request came
// from and the times, in the request that logged in and in the next one,
// which read it from Redis with Persist; Store.Get agrees.
func TestManagerInfo(t *testing.T) {
	forEachTopology(t, session.Options{}, func(t *testing.T, e *env) {
		m := session.NewManager(e.store, session.ManagerOptions{})
		type seen struct {
			info session.Info
			ok   bool
		}
		var got []seen
		h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "POST" {
				before, ok := m.Info(r.Context())
				got = append(got, seen{before, ok})
				if err := m.Login(r.Context(), "ada"); err != nil {
					t.Error(err)
				}
				m.RememberMe(r.Context(), true)
			}
			info, ok := m.Info(r.Context())
			got = append(got, seen{info, ok})
		}))
		start := time.Now().Add(-time.Second)
		req := httptest.NewRequest("POST", "/", nil)
		req.RemoteAddr = "192.0.2.7:1234"
		req.Header.Set("User-Agent", "probe/1")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var cookie *http.Cookie
		for _, c := range w.Result().Cookies() {
			if c.Name == "session" {
				cookie = c
			}
		}
		if cookie == nil {
			t.Fatal("login set no cookie")
		}
		req = httptest.NewRequest("GET", "/", nil)
		req.AddCookie(cookie)
		h.ServeHTTP(httptest.NewRecorder(), req)

		if len(got) != 3 {
			t.Fatalf("%d Info calls recorded, want 3", len(got))
		}
		if (got[0] != seen{}) {
			t.Errorf("before login: Info = %+v, %v; want the zero Info, false", got[0].info, got[0].ok)
		}
		s, err := e.store.Get(context.Background(), cookie.Value)
		if err != nil {
			t.Fatal(err)
		}
		for i, g := range got[1:] {
			in := g.info
			// RememberMe is saved with the response: the next request reads it.
			if !g.ok || in.UserID != "ada" || in.Handle != s.Info().Handle || in.IP != "192.0.2.7" ||
				in.UserAgent != "probe/1" || in.Persist != (i == 1) {
				t.Errorf("request %d: Info = %+v, %v", i+1, in, g.ok)
			}
			if in.CreatedAt.Before(start) || in.LastSeen.Before(in.CreatedAt) || !in.Deadline.After(in.LastSeen) ||
				in.ExpiresAt.After(in.Deadline) || !in.ExpiresAt.After(in.LastSeen) || in.IdleTimeout <= 0 {
				t.Errorf("request %d: times %+v", i+1, in)
			}
			if !in.CreatedAt.Equal(s.Info().CreatedAt) || !in.Deadline.Equal(s.Info().Deadline) {
				t.Errorf("request %d: created %v deadline %v; Store.Get says %v, %v",
					i+1, in.CreatedAt, in.Deadline, s.Info().CreatedAt, s.Info().Deadline)
			}
		}
	})
}
