package session_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redisproc"
	"github.com/rediskit/rediskit/session"
)

// exampleClient starts a throwaway redis-server for the example (examples
// have no testing.TB, so they use the process helper under redistest).
func exampleClient() (redis.UniversalClient, func()) {
	dir, err := os.MkdirTemp("", "session-example-")
	if err != nil {
		panic(err)
	}
	srv, err := redisproc.Start(redisproc.Config{Dir: dir})
	if err != nil {
		panic(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	return rdb, func() {
		_ = rdb.Close()
		srv.Stop()
		_ = os.RemoveAll(dir)
	}
}

func ExampleStore() {
	rdb, done := exampleClient()
	defer done()
	ctx := context.Background()

	store, err := session.New(rdb, session.Options{Prefix: "example:"})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	s, _ := store.Create(ctx, "alice", map[string]any{"cart": 3}, session.CreateOptions{UserAgent: "Firefox"})
	_, _ = store.Update(ctx, s.ID(), session.Changes{Set: map[string]any{"theme": "dark"}})

	// On login or privilege change, rotate: same data, new ID.
	id, _ := store.Rotate(ctx, s.ID())
	got, _ := store.Get(ctx, id)
	var cart int
	_ = got.Decode("cart", &cart)
	fmt.Println("cart:", cart, "keys:", got.Keys())

	_, err = store.Get(ctx, s.ID())
	fmt.Println("old ID:", err)

	devices, _ := store.ListByUser(ctx, "alice")
	fmt.Println("devices:", len(devices), devices[0].UserAgent)

	n, _ := store.DeleteByUser(ctx, "alice")
	fmt.Println("logged out everywhere:", n)
	// Output:
	// cart: 3 keys: [cart theme]
	// old ID: session: get: session: not found
	// devices: 1 Firefox
	// logged out everywhere: 1
}

func ExampleManager() {
	rdb, done := exampleClient()
	defer done()
	store, _ := session.New(rdb, session.Options{Prefix: "example:"})
	defer store.Close()
	m := session.NewManager(store, session.ManagerOptions{})

	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if err := m.Login(r.Context(), "alice"); err != nil {
			http.Error(w, "login failed", 500)
			return
		}
		m.Put(r.Context(), "flash", "welcome back")
	})
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s: %s", m.UserID(r.Context()), m.PopString(r.Context(), "flash"))
	})
	h := m.LoadAndSave(mux)

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/login", nil))
	cookie := rec.Result().Cookies()[0]
	fmt.Println(cookie.Name, cookie.HttpOnly, cookie.Secure, cookie.SameSite == http.SameSiteLaxMode)

	for range 2 {
		req := httptest.NewRequest("GET", "/", nil)
		req.AddCookie(cookie)
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Println(rec.Body.String())
	}
	// Output:
	// session true true true
	// alice: welcome back
	// alice:
}
