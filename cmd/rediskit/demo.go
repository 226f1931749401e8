package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rediskit/rediskit/session"
)

// The demo application shows the library as a service would use it: the
// session Manager for sign-in and a "your sessions" page, and the cache's
// GetOrSet in front of a slow endpoint.

var demoTmpl = template.Must(template.New("").Funcs(template.FuncMap{
	"ago": func(t time.Time) string {
		d := time.Since(t).Round(time.Second)
		if d < time.Second {
			return "just now"
		}
		return d.String() + " ago"
	},
	"in": func(t time.Time) string { return time.Until(t).Round(time.Second).String() },
}).ParseFS(webFS, "web/demo/*.html"))

const (
	keyUser  = "user"
	keyCSRF  = "csrf"
	keyFlash = "flash"
	// keySeen: until when (Unix ms) this device has shown the notices of
	// the user's other devices; keyRevoked: the handles this device
	// revoked itself (space-separated, the latest few), whose notices it
	// does not show.
	keySeen    = "notices_seen"
	keyRevoked = "revoked_here"
)

// slowLoadTime is how long the demo's slow endpoint takes on a cache miss.
const slowLoadTime = 300 * time.Millisecond

func (a *app) demoRoutes(mux *http.ServeMux) {
	m := a.manager
	mux.Handle("GET /demo/{$}", m.LoadAndSave(http.HandlerFunc(a.demoHome)))
	mux.Handle("POST /demo/login", m.LoadAndSave(a.csrf(http.HandlerFunc(a.demoLogin))))
	mux.Handle("POST /demo/logout", m.LoadAndSave(a.csrf(http.HandlerFunc(a.demoLogout))))
	mux.Handle("GET /demo/sessions", m.LoadAndSave(http.HandlerFunc(a.demoSessions)))
	mux.Handle("POST /demo/sessions/revoke", m.LoadAndSave(a.csrf(http.HandlerFunc(a.demoRevoke))))
	mux.Handle("POST /demo/sessions/revoke-all", m.LoadAndSave(a.csrf(http.HandlerFunc(a.demoRevokeAll))))
	mux.HandleFunc("GET /demo/slow", a.demoSlow)
}

type demoPage struct {
	User     string
	CSRF     string
	Flash    string
	Notices  []notice // the user's other devices signed out since the last page
	Current  string   // handle of this request's session
	Sessions []session.Info
}

func (a *app) page(w http.ResponseWriter, r *http.Request, name string, p demoPage) {
	ctx := r.Context()
	p.User = a.manager.GetString(ctx, keyUser)
	p.CSRF = a.csrfToken(ctx)
	if f, ok := a.manager.Pop(ctx, keyFlash).(string); ok {
		p.Flash = f
	}
	if info, ok := a.manager.Info(ctx); ok {
		p.Current = info.Handle
		if p.User != "" {
			p.Notices = a.unseenNotices(ctx, p.User, info)
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := demoTmpl.ExecuteTemplate(w, name, p); err != nil {
		a.logger.Error("demo template", "page", name, "err", err)
	}
}

// unseenNotices returns the notices of the user's other devices signed out
// since this device's session began and since it last showed one, and
// marks them shown (saved with the session, before the page is written).
func (a *app) unseenNotices(ctx context.Context, user string, info session.Info) []notice {
	after := info.CreatedAt
	if seen := time.UnixMilli(a.manager.GetInt64(ctx, keySeen)); seen.After(after) {
		after = seen
	}
	list := a.notices.since(user, after, a.manager.GetString(ctx, keyRevoked))
	if len(list) > 0 {
		a.manager.Put(ctx, keySeen, list[len(list)-1].At.UnixMilli())
	}
	return list
}

func (a *app) demoHome(w http.ResponseWriter, r *http.Request) { a.page(w, r, "home.html", demoPage{}) }

func (a *app) demoLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	user := strings.TrimSpace(r.PostFormValue("user"))
	if user == "" || len(user) > 64 {
		a.manager.Put(ctx, keyFlash, "Pick a user name of 1 to 64 characters.")
		http.Redirect(w, r, "/demo/", http.StatusSeeOther)
		return
	}
	// A new session ID on sign-in: a token planted before login is useless.
	if err := a.manager.Login(ctx, user); err != nil {
		a.fail(w, r, "sign in", err)
		return
	}
	a.manager.Put(ctx, keyUser, user)
	a.manager.RememberMe(ctx, r.PostFormValue("remember") == "on")
	a.manager.Put(ctx, keyFlash, "Signed in as "+user+".")
	http.Redirect(w, r, "/demo/sessions", http.StatusSeeOther)
}

func (a *app) demoLogout(w http.ResponseWriter, r *http.Request) {
	if err := a.manager.Destroy(r.Context()); err != nil {
		a.fail(w, r, "sign out", err)
		return
	}
	http.Redirect(w, r, "/demo/", http.StatusSeeOther)
}

func (a *app) demoSessions(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	user := a.manager.GetString(ctx, keyUser)
	if user == "" {
		http.Redirect(w, r, "/demo/", http.StatusSeeOther)
		return
	}
	list, err := a.sessions.ListByUser(ctx, user)
	if err != nil {
		a.fail(w, r, "list sessions", err)
		return
	}
	a.page(w, r, "sessions.html", demoPage{Sessions: list})
}

func (a *app) demoRevoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	user := a.manager.GetString(ctx, keyUser)
	if user == "" {
		http.Redirect(w, r, "/demo/", http.StatusSeeOther)
		return
	}
	handle := r.PostFormValue("handle")
	ok, err := a.sessions.RevokeHandle(ctx, user, handle)
	if err != nil {
		a.fail(w, r, "revoke", err)
		return
	}
	if ok {
		// This device did it: it needs no notice of it.
		mine := strings.Fields(a.manager.GetString(ctx, keyRevoked))
		mine = append(mine[max(0, len(mine)-maxNoticesPerUser+1):], handle)
		a.manager.Put(ctx, keyRevoked, strings.Join(mine, " "))
	}
	if info, cur := a.manager.Info(ctx); cur && info.Handle == handle {
		// Revoking this very device is signing out.
		_ = a.manager.Destroy(ctx)
		http.Redirect(w, r, "/demo/", http.StatusSeeOther)
		return
	}
	if ok {
		a.manager.Put(ctx, keyFlash, "Session revoked.")
	} else {
		a.manager.Put(ctx, keyFlash, "That session had already ended.")
	}
	http.Redirect(w, r, "/demo/sessions", http.StatusSeeOther)
}

func (a *app) demoRevokeAll(w http.ResponseWriter, r *http.Request) {
	if _, err := a.manager.LogoutEverywhere(r.Context()); err != nil {
		a.fail(w, r, "log out everywhere", err)
		return
	}
	http.Redirect(w, r, "/demo/", http.StatusSeeOther)
}

// demoSlow is an endpoint whose answer takes slowLoadTime to compute,
// served through GetOrSet: X-Cache says hit, miss or stale.
func (a *app) demoSlow(w http.ResponseWriter, r *http.Request) {
	item := r.URL.Query().Get("item")
	if item == "" {
		item = "1"
	}
	if _, err := strconv.Atoi(item); err != nil || len(item) > 9 {
		http.Error(w, "item must be a number", http.StatusBadRequest)
		return
	}
	var loaded atomic.Bool
	before, nearBefore := a.cache.LocalStats().StaleServed, a.cache.NearStats().Hits
	start := time.Now()
	v, err := a.slow.GetOrSet(r.Context(), "slow:"+item, 20*time.Second, func(ctx context.Context) (json.RawMessage, error) {
		loaded.Store(true)
		select {
		case <-time.After(slowLoadTime):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return json.Marshal(map[string]any{"item": item, "computed_at": time.Now().UTC().Format(time.RFC3339Nano)})
	})
	if err != nil {
		a.fail(w, r, "slow endpoint", err)
		return
	}
	outcome := "hit"
	switch {
	case loaded.Load():
		outcome = "miss"
	case a.cache.NearStats().Hits > nearBefore:
		// Answered from process memory (same caveat as stale below).
		outcome = "near"
	case a.cache.LocalStats().StaleServed > before:
		// Another request may have been served stale at the same moment; on
		// a demo's traffic the counter tells this one apart well enough.
		outcome = "stale"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Cache", outcome)
	w.Header().Set("X-Response-Time", time.Since(start).Round(time.Microsecond).String())
	_, _ = w.Write(v)
}

// fail answers an error from Redis: 503 when it is unavailable, 500 else.
func (a *app) fail(w http.ResponseWriter, r *http.Request, op string, err error) {
	a.errs.add(op + ": " + err.Error())
	session.DefaultErrorHandler(w, r, err)
}

// csrfToken returns the session's anti-forgery token, creating it on first
// use. Forms carry it; POST handlers check it.
func (a *app) csrfToken(ctx context.Context) string {
	if t := a.manager.GetString(ctx, keyCSRF); t != "" {
		return t
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	t := base64.RawURLEncoding.EncodeToString(b)
	a.manager.Put(ctx, keyCSRF, t)
	return t
}

func (a *app) csrf(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := a.manager.GetString(r.Context(), keyCSRF)
		got := r.PostFormValue("csrf")
		if want == "" || subtle.ConstantTimeCompare([]byte(want), []byte(got)) != 1 {
			http.Error(w, fmt.Sprintf("%s: form expired, reload the page", http.StatusText(http.StatusForbidden)), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
