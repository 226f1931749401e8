package session_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/session"
)

// TestSessionFixation: a token an attacker obtained (or planted in the
// victim's browser) before login is worthless after Login and RenewToken,
// and a token the server never issued is never adopted.
func TestSessionFixation(t *testing.T) {
	rdb := redistest.Shared(t).Client(t)
	e := newEnv(t, rdb, session.Options{})
	var logs bytes.Buffer
	m := session.NewManager(e.store, session.ManagerOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	web := httptest.NewTLSServer(app(m))
	defer web.Close()

	// The attacker gets an anonymous session and plants its token in the
	// victim's browser.
	attacker := newClient(t, web)
	attacker.do("POST", "/incr", url.Values{"k": {"a"}})
	fixed := attacker.cookie()
	if !session.ValidToken(fixed) {
		t.Fatalf("attacker got no session: %q", fixed)
	}
	victim := newClient(t, web)
	victim.setCookie(fixed)
	victim.do("POST", "/incr", url.Values{"k": {"cart"}}) // the victim shops anonymously, then logs in
	if res, _ := victim.do("POST", "/login", url.Values{"user": {"victim"}}); res.StatusCode != 200 {
		t.Fatalf("login: %d", res.StatusCode)
	}
	afterLogin := victim.cookie()
	if afterLogin == fixed || !session.ValidToken(afterLogin) {
		t.Fatalf("login kept the planted token")
	}
	if _, err := e.store.Get(t.Context(), fixed); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("the planted token after login: %v, want ErrNotFound", err)
	}
	// The attacker's browser still presents the old token: it is anonymous
	// and sees nothing of the victim's.
	attacker.setCookie(fixed)
	if _, body := attacker.do("GET", "/get?k=cart", nil); body != ":0" {
		t.Fatalf("the attacker with the fixed token sees %q", body)
	}
	if _, body := victim.do("GET", "/get?k=cart", nil); body != "victim:1" {
		t.Fatalf("the victim sees %q, want victim:1 (values carried over login)", body)
	}

	// RenewToken on privilege change: the token before it is dead.
	before := victim.cookie()
	victim.do("POST", "/renew", nil)
	renewed := victim.cookie()
	if renewed == before {
		t.Fatal("RenewToken kept the token")
	}
	if _, err := e.store.Get(t.Context(), before); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("the token before RenewToken: %v, want ErrNotFound", err)
	}
	stolen := newClient(t, web)
	stolen.setCookie(before)
	if _, body := stolen.do("GET", "/get?k=cart", nil); body != ":0" {
		t.Fatalf("a client with the pre-renewal token sees %q", body)
	}

	// A well-formed token the server never issued is not adopted: the
	// first write gets a fresh ID.
	forged := strings.Repeat("A", session.TokenLen)
	dupe := newClient(t, web)
	dupe.setCookie(forged)
	dupe.do("POST", "/incr", url.Values{"k": {"x"}})
	if got := dupe.cookie(); got == forged || !session.ValidToken(got) {
		t.Fatalf("forged token adopted: %q", got)
	}
	for _, tok := range []string{fixed, afterLogin, before, renewed, forged} {
		if strings.Contains(logs.String(), tok) {
			t.Fatalf("a token is in the log:\n%s", logs.String())
		}
	}
}

// TestCookieFlags: with default options every Set-Cookie carries
// HttpOnly, Secure, SameSite=Lax and Path=/, and every response that sets
// or clears the cookie carries Vary: Cookie and Cache-Control: no-store.
func TestCookieFlags(t *testing.T) {
	rdb := redistest.Shared(t).Client(t)
	e := newEnv(t, rdb, session.Options{})
	m := session.NewManager(e.store, session.ManagerOptions{})
	h := app(m)
	check := func(what string, rec *httptest.ResponseRecorder, wantClear bool) string {
		t.Helper()
		res := rec.Result()
		cookies := res.Cookies()
		if len(cookies) != 1 {
			t.Fatalf("%s: %d cookies: %v", what, len(cookies), res.Header["Set-Cookie"])
		}
		c := cookies[0]
		if c.Name != "session" || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
			t.Errorf("%s: cookie %q lacks a default flag", what, res.Header.Get("Set-Cookie"))
		}
		if wantClear != (c.MaxAge < 0) {
			t.Errorf("%s: cookie %q, want cleared=%v", what, res.Header.Get("Set-Cookie"), wantClear)
		}
		if !strings.Contains(strings.Join(res.Header.Values("Vary"), ","), "Cookie") || res.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Vary %q, Cache-Control %q", what, res.Header.Values("Vary"), res.Header.Get("Cache-Control"))
		}
		return c.Value
	}
	form := func(method, path, body, cookie string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if cookie != "" {
			r.AddCookie(&http.Cookie{Name: "session", Value: cookie})
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	tok := check("new session", form("POST", "/incr", "k=a", ""), false)
	tok = check("login", form("POST", "/login", "user=flags", tok), false)
	tok = check("renew", form("POST", "/renew", "", tok), false)
	check("logout", form("POST", "/logout", "", tok), true)
	check("stale cookie", form("GET", "/get?k=a", "", tok), true)
	check("malformed cookie", form("GET", "/get?k=a", "", "not-a-token"), true)
	// A request that changes nothing sets no cookie and no caching header.
	tok = check("new session", form("POST", "/incr", "k=a", ""), false)
	if rec := form("GET", "/get?k=a", "", tok); len(rec.Result().Cookies()) != 0 {
		t.Errorf("a read set a cookie: %v", rec.Result().Header["Set-Cookie"])
	}
}

// TestSessionFormattingHidesID: no fmt verb prints a session's ID, whether
// the caller formats the *Session or the Session value.
func TestSessionFormattingHidesID(t *testing.T) {
	rdb := redistest.Shared(t).Client(t)
	e := newEnv(t, rdb, session.Options{})
	s, err := e.store.Create(t.Context(), "fmt", map[string]any{"a": 1}, session.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{s, *s, []any{s}, map[string]session.Session{"s": *s}, struct{ S session.Session }{*s}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			if out := fmt.Sprintf(verb, v); strings.Contains(out, s.ID()) {
				t.Errorf("fmt.Sprintf(%q, %T) prints the session ID: %s", verb, v, out)
			}
		}
	}
}
