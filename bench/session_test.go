package bench

// Session benchmarks: rediskit/session side by side with alexedwards/scs/v2
// (goredisstore) and gorilla/sessions (rbcervilla/redisstore/v9), on the one
// redis-server that TestMain starts. Run:
//
//	cd bench && go test -run '^$' -bench 'Session' -benchtime 3s -count 1
//
// Every request benchmark runs 64 concurrent clients (RunParallel with
// parallelism 64/GOMAXPROCS), each with its own logged-in session holding the
// same payload, and reports req/s and Redis commands per request (counted by
// a go-redis hook).

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/goredisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	"github.com/gorilla/sessions"
	"github.com/rbcervilla/redisstore/v9"
	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/session"
)

const clients = 64

// payload is what every library's session holds.
var payload = map[string]any{
	"user_id": 4242,
	"name":    "Alice Example",
	"role":    "editor",
	"csrf":    strings.Repeat("c", 43),
	"prefs":   strings.Repeat("p", 200),
}

// cmdCounter counts Redis commands: one per processed command, len(cmds)
// per pipeline.
type cmdCounter struct{ n atomic.Int64 }

func (c *cmdCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *cmdCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}
func (c *cmdCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

func newClient(b *testing.B) (*redis.Client, *cmdCounter) {
	rdb := redis.NewClient(&redis.Options{Addr: benchAddr, PoolSize: 2 * clients})
	b.Cleanup(func() { _ = rdb.Close() })
	c := &cmdCounter{}
	rdb.AddHook(c)
	return rdb, c
}

// runRequests drives h with 64 concurrent clients, client i presenting
// cookies[i%len(cookies)], and reports req/s and Redis commands/request.
func runRequests(b *testing.B, h http.Handler, cookies []*http.Cookie, count *cmdCounter) {
	b.Helper()
	var next atomic.Int64
	count.n.Store(0)
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := cookies[int(next.Add(1))%len(cookies)]
		for pb.Next() {
			req := httptest.NewRequest("GET", "/", nil)
			req.AddCookie(c)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 200 || rec.Body.Len() == 0 {
				b.Errorf("status %d body %q", rec.Code, rec.Body.String())
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(float64(count.n.Load())/float64(b.N), "redis-cmds/req")
}

// login runs one request through h with a login handler and returns the
// cookie it set.
func login(b *testing.B, h http.Handler) *http.Cookie {
	b.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/login", nil))
	cs := rec.Result().Cookies()
	if len(cs) == 0 {
		b.Fatalf("login set no cookie: %d %s", rec.Code, rec.Body.String())
	}
	return cs[0]
}

func BenchmarkSessionRequest(b *testing.B) {
	b.Run("rediskit", func(b *testing.B) { benchRediskit(b, false) })
	b.Run("rediskit-autopipeline", func(b *testing.B) { benchRediskit(b, true) })
	b.Run("scs-goredisstore", benchSCS)
	b.Run("gorilla-redisstore", benchGorilla)
}

func benchRediskit(b *testing.B, autopipeline bool) {
	h, cookies, count := rediskitHandler(b, autopipeline)
	runRequests(b, h, cookies, count)
}

// rediskitHandler returns the rediskit request handler, the cookies of 64
// logged-in sessions and the command counter of its client.
func rediskitHandler(b *testing.B, autopipeline bool) (http.Handler, []*http.Cookie, *cmdCounter) {
	rdb, count := newClient(b)
	store, err := session.New(rdb, session.Options{Prefix: fmt.Sprintf("rk%d:", time.Now().UnixNano()), AutoPipeline: autopipeline})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	if err := store.Preload(context.Background()); err != nil {
		b.Fatal(err)
	}
	m := session.NewManager(store, session.ManagerOptions{})
	var seq atomic.Int64
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.Method == "POST" {
			if err := m.Login(ctx, fmt.Sprintf("user%d", seq.Add(1))); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			for k, v := range payload {
				m.Put(ctx, k, v)
			}
			return
		}
		fmt.Fprintf(w, "%d %s", m.GetInt(ctx, "user_id"), m.GetString(ctx, "role"))
	}))
	return h, loginAll(b, h), count
}

func loginAll(b *testing.B, h http.Handler) []*http.Cookie {
	cookies := make([]*http.Cookie, clients)
	for i := range cookies {
		cookies[i] = login(b, h)
	}
	return cookies
}

func benchSCS(b *testing.B) {
	rdb, count := newClient(b)
	h := scsHandler(goredisstore.NewWithPrefix(rdb, fmt.Sprintf("scs%d:", time.Now().UnixNano())))
	runRequests(b, h, loginAll(b, h), count)
}

// scsHandler is the scs request handler over store.
func scsHandler(store scs.Store) http.Handler {
	sm := scs.New()
	sm.Store = store
	sm.IdleTimeout = 30 * time.Minute // slide the idle window, as rediskit does
	sm.Lifetime = 24 * time.Hour
	h := sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.Method == "POST" {
			if err := sm.RenewToken(ctx); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			for k, v := range payload {
				sm.Put(ctx, k, v)
			}
			return
		}
		fmt.Fprintf(w, "%d %s", sm.GetInt(ctx, "user_id"), sm.GetString(ctx, "role"))
	}))
	return h
}

func benchGorilla(b *testing.B) {
	rdb, count := newClient(b)
	gs, err := redisstore.NewRedisStore(context.Background(), rdb)
	if err != nil {
		b.Fatal(err)
	}
	gs.KeyPrefix(fmt.Sprintf("gor%d:", time.Now().UnixNano()))
	gs.Options(sessions.Options{Path: "/", MaxAge: 1800, HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := gs.Get(r, "session")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if r.Method == "POST" {
			for k, v := range payload {
				s.Values[k] = v
			}
		}
		// Save on every request: it is how gorilla slides the expiry.
		if err := s.Save(r, w); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if r.Method == "GET" {
			fmt.Fprintf(w, "%v %v", s.Values["user_id"], s.Values["role"])
		}
	})
	cookies := make([]*http.Cookie, clients)
	for i := range cookies {
		cookies[i] = login(b, h)
	}
	runRequests(b, h, cookies, count)
}

// BenchmarkSessionCeiling measures what the request harness can do at all
// at 64 clients on this machine, with no Redis in the way: a handler that
// does no session work (it writes the same body), and scs over its in-memory
// store (a complete cookie-session middleware without a network hop).
// "inprocess" is the harness of BenchmarkSessionRequest (ServeHTTP with a
// recorder); "loopback" puts a real net/http server and client on 127.0.0.1
// around the same handlers, and runs scs and rediskit over Redis there too,
// so the ratios can be read under real HTTP cost.
func BenchmarkSessionCeiling(b *testing.B) {
	noSession := func(b *testing.B) (http.Handler, []*http.Cookie, *cmdCounter) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "POST" {
				http.SetCookie(w, &http.Cookie{Name: "session", Value: strings.Repeat("t", 43)})
				return
			}
			fmt.Fprintf(w, "%d %s", 4242, "editor")
		})
		return h, loginAll(b, h), &cmdCounter{}
	}
	memSCS := func(b *testing.B) (http.Handler, []*http.Cookie, *cmdCounter) {
		h := scsHandler(memstore.NewWithCleanupInterval(0))
		return h, loginAll(b, h), &cmdCounter{}
	}
	redisSCS := func(b *testing.B) (http.Handler, []*http.Cookie, *cmdCounter) {
		rdb, count := newClient(b)
		h := scsHandler(goredisstore.NewWithPrefix(rdb, fmt.Sprintf("scs%d:", time.Now().UnixNano())))
		return h, loginAll(b, h), count
	}
	autoRediskit := func(b *testing.B) (http.Handler, []*http.Cookie, *cmdCounter) {
		return rediskitHandler(b, true)
	}
	type build func(*testing.B) (http.Handler, []*http.Cookie, *cmdCounter)
	inprocess := func(f build) func(*testing.B) {
		return func(b *testing.B) { h, c, n := f(b); runRequests(b, h, c, n) }
	}
	loopback := func(f build) func(*testing.B) {
		return func(b *testing.B) { h, c, n := f(b); runHTTP(b, h, c, n) }
	}
	b.Run("inprocess/no-session", inprocess(noSession))
	b.Run("inprocess/scs-memstore", inprocess(memSCS))
	b.Run("loopback/no-session", loopback(noSession))
	b.Run("loopback/scs-memstore", loopback(memSCS))
	b.Run("loopback/scs-goredisstore", loopback(redisSCS))
	b.Run("loopback/rediskit-autopipeline", loopback(autoRediskit))
}

// runHTTP is runRequests through a real net/http server on a loopback port
// and a keep-alive client with one connection per concurrent client.
func runHTTP(b *testing.B, h http.Handler, cookies []*http.Cookie, count *cmdCounter) {
	b.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	tr := &http.Transport{MaxIdleConns: 2 * clients, MaxIdleConnsPerHost: 2 * clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	var next atomic.Int64
	count.n.Store(0)
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := cookies[int(next.Add(1))%len(cookies)]
		for pb.Next() {
			req, _ := http.NewRequest("GET", srv.URL+"/", nil)
			req.AddCookie(c)
			resp, err := hc.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != 200 || n == 0 {
				b.Errorf("status %d, %d body bytes", resp.StatusCode, n)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(float64(count.n.Load())/float64(b.N), "redis-cmds/req")
}

// BenchmarkSessionGet compares Store.Get with a bare go-redis GET of the
// same bytes, at 128 goroutines, through the pooled client and through an
// auto-pipeliner.
func BenchmarkSessionGet(b *testing.B) {
	for _, ap := range []bool{false, true} {
		name := "pooled"
		if ap {
			name = "autopipeline"
		}
		b.Run(name+"/store-get", func(b *testing.B) {
			rdb, count := newClient(b)
			store, err := session.New(rdb, session.Options{Prefix: fmt.Sprintf("g%d:", time.Now().UnixNano()), AutoPipeline: ap})
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			ctx := context.Background()
			if err := store.Preload(ctx); err != nil {
				b.Fatal(err)
			}
			s, err := store.Create(ctx, "bench-user", payload, session.CreateOptions{IP: "192.0.2.1", UserAgent: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			id := s.ID()
			count.n.Store(0)
			b.SetParallelism(128 / runtime.GOMAXPROCS(0))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := store.Get(ctx, id); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			b.ReportMetric(float64(count.n.Load())/float64(b.N), "redis-cmds/op")
		})
		b.Run(name+"/bare-get", func(b *testing.B) {
			rdb, _ := newClient(b)
			var c redis.Cmdable = rdb
			if ap {
				p, err := rdb.AutoPipeline()
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
				c = p
			}
			ctx := context.Background()
			// The same bytes the session hash holds: every field and value.
			var sb strings.Builder
			for k, v := range payload {
				fmt.Fprintf(&sb, "d:%s\x01%v", k, v)
			}
			sb.WriteString("c1764000000000s1764000000000i1800000a1764086400000v1ubench-useripua192.0.2.1p0")
			key := fmt.Sprintf("bare%d", time.Now().UnixNano())
			if err := rdb.Set(ctx, key, sb.String(), time.Hour).Err(); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(128 / runtime.GOMAXPROCS(0))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Get(ctx, key).Bytes(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

// BenchmarkSessionMemory reports Redis memory per session (MEMORY USAGE of
// every key the session uses: its hash and its user's index) for a 1 KB
// payload, beside scs's and gorilla's single string key for the same data.
func BenchmarkSessionMemory(b *testing.B) {
	const sessions = 1000
	kb := map[string]any{"data": strings.Repeat("x", 1024)}
	ctx := context.Background()
	b.Run("rediskit", func(b *testing.B) {
		rdb, _ := newClient(b)
		prefix := fmt.Sprintf("mem%d:", time.Now().UnixNano())
		store, err := session.New(rdb, session.Options{Prefix: prefix})
		if err != nil {
			b.Fatal(err)
		}
		defer store.Close()
		for i := range sessions {
			if _, err := store.Create(ctx, fmt.Sprintf("user%d", i), kb, session.CreateOptions{IP: "192.0.2.1", UserAgent: "Mozilla/5.0 (X11; Linux x86_64)"}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(memoryOf(b, rdb, prefix))/sessions, "bytes/session")
		for range b.N {
		}
	})
	b.Run("scs-goredisstore", func(b *testing.B) {
		rdb, _ := newClient(b)
		prefix := fmt.Sprintf("memscs%d:", time.Now().UnixNano())
		sm := scs.New()
		sm.Store = goredisstore.NewWithPrefix(rdb, prefix)
		h := sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sm.Put(r.Context(), "data", kb["data"])
		}))
		for range sessions {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/", nil))
		}
		b.ReportMetric(float64(memoryOf(b, rdb, prefix))/sessions, "bytes/session")
		for range b.N {
		}
	})
	b.Run("gorilla-redisstore", func(b *testing.B) {
		rdb, _ := newClient(b)
		prefix := fmt.Sprintf("memgor%d:", time.Now().UnixNano())
		gs, err := redisstore.NewRedisStore(ctx, rdb)
		if err != nil {
			b.Fatal(err)
		}
		gs.KeyPrefix(prefix)
		for range sessions {
			r := httptest.NewRequest("POST", "/", nil)
			s, _ := gs.Get(r, "session")
			s.Values["data"] = kb["data"]
			if err := s.Save(r, httptest.NewRecorder()); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(memoryOf(b, rdb, prefix))/sessions, "bytes/session")
		for range b.N {
		}
	})
}

func memoryOf(b *testing.B, rdb *redis.Client, prefix string) int64 {
	ctx := context.Background()
	var total int64
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		n, err := rdb.MemoryUsage(ctx, iter.Val(), 0).Result()
		if err != nil {
			b.Fatal(err)
		}
		total += n
	}
	if err := iter.Err(); err != nil {
		b.Fatal(err)
	}
	return total
}
