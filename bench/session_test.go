package bench

// Session benchmarks: rediskit/session side by side with alexedwards/scs/v2
// (goredisstore, and cmdableStore below on an AutoPipeliner) and
// gorilla/sessions (rbcervilla/redisstore/v9), on the one redis-server that
// TestMain starts. Tables and their commands: SESSIONS.md.
//
// Every request benchmark runs 64 concurrent clients (RunParallel with
// parallelism 64/GOMAXPROCS), each with its own logged-in session holding the
// same payload, and reports req/s, allocations and Redis commands per request
// (counted by a go-redis hook, which sees pooled and auto-pipelined commands
// alike). Row names say the client: "pooled", "autopipelined" (the client's
// AutoPipeliner), "adaptive" (rediskit's default: the AutoPipeliner while
// commands overlap, a lone command on the path measured faster for lone
// commands).

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/goredisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	"github.com/gorilla/sessions"
	"github.com/rbcervilla/redisstore/v9"
	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/bench/internal/rounds"
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
	rdb := redis.NewClient(&redis.Options{Addr: benchAddr, PoolSize: 2 * clients, AutoPipelineOptions: benchAP})
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
	before := readUsage(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// The harness allocates one shallow copy of a prepared request per
		// request (gorilla replaces *r in place, so each needs its own) and
		// reuses its response writer, so allocs/op is the library's own
		// plus that one.
		base := httptest.NewRequest("GET", "/", nil)
		base.AddCookie(cookies[int(next.Add(1))%len(cookies)])
		w := &reusedWriter{header: http.Header{}}
		for pb.Next() {
			req := *base
			w.reset()
			h.ServeHTTP(w, &req)
			if w.code != 200 || w.n == 0 {
				b.Errorf("status %d, %d bytes", w.code, w.n)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(float64(count.n.Load())/float64(b.N), "redis-cmds/req")
	before.report(b)
}

// reusedWriter is a ResponseWriter the harness reuses: it keeps the status
// and the body's length.
type reusedWriter struct {
	header http.Header
	code   int
	n      int
}

func (w *reusedWriter) reset() {
	clear(w.header)
	w.code, w.n = 0, 0
}

func (w *reusedWriter) Header() http.Header { return w.header }

func (w *reusedWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *reusedWriter) Write(p []byte) (int, error) {
	w.WriteHeader(200)
	w.n += len(p)
	return len(p), nil
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

// BenchmarkSessionRequest: one request cycle per op (load the session, read
// two values, save if the library needs to). scs commits only a changed
// session unless IdleTimeout is set, when it re-commits every request to
// slide the expiry ("-slide" rows); gorilla saves every request, which is
// how it slides the expiry; rediskit slides it with its touch script once
// per TouchInterval.
func BenchmarkSessionRequest(b *testing.B) {
	type row struct {
		name string
		run  func(b *testing.B)
	}
	var rows []row
	// "-slide": sliding the expiry on every request, as scs's "-slide" rows
	// do; TouchInterval -1 runs the touch script on every Get.
	for _, v := range []struct {
		name  string
		touch time.Duration
	}{{"rediskit", 0}, {"rediskit-slide", -1}} {
		for _, m := range sessionModes {
			rows = append(rows, row{v.name + "/" + m.name, func(b *testing.B) {
				h, cookies, count := rediskitHandler(b, m.mode, v.touch)
				runRequests(b, h, cookies, count)
			}})
		}
	}
	rows = append(rows,
		row{"go-redis-GET/autopipelined", func(b *testing.B) {
			h, cookies, count := bareGetHandler(b)
			runRequests(b, h, cookies, count)
		}},
		row{"scs-goredisstore/pooled", func(b *testing.B) { benchSCS(b, false, false) }},
		row{"scs-cmdablestore/autopipelined", func(b *testing.B) { benchSCS(b, true, false) }},
		row{"scs-goredisstore-slide/pooled", func(b *testing.B) { benchSCS(b, false, true) }},
		row{"scs-cmdablestore-slide/autopipelined", func(b *testing.B) { benchSCS(b, true, true) }},
		row{"gorilla-redisstore/pooled", func(b *testing.B) { benchGorilla(b, false) }},
		row{"gorilla-redisstore/autopipelined", func(b *testing.B) { benchGorilla(b, true) }},
	)
	for r := range rounds.N() {
		for _, row := range rounds.InOrder(rows, r) {
			b.Run(row.name, row.run)
		}
	}
}

var sessionModes = []struct {
	name string
	mode session.Pipelining
}{
	{"adaptive", session.PipelineAdaptive}, // the default: session.Options{}
	{"pooled", session.PipelineOff},
	{"autopipelined", session.PipelineAlways},
}

// rediskitHandler returns the rediskit request handler, the cookies of 64
// logged-in sessions and the command counter of its client.
// touch is the store's TouchInterval (0: the default).
func rediskitHandler(b *testing.B, mode session.Pipelining, touch time.Duration) (http.Handler, []*http.Cookie, *cmdCounter) {
	rdb, count := newClient(b)
	store, err := session.New(rdb, session.Options{Prefix: fmt.Sprintf("rk%d:", time.Now().UnixNano()), Pipelining: mode, TouchInterval: touch})
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

// bareGetHandler is the least a session middleware over Redis does per
// request, with no session logic at all: one GET on the auto-pipelined
// client of a key named by the cookie, holding the bytes of a rediskit
// session with the benchmark's payload, and a request copy whose context
// carries them to the handler. It is the ceiling of every store that reads
// a session with one command.
func bareGetHandler(b *testing.B) (http.Handler, []*http.Cookie, *cmdCounter) {
	ctx := context.Background()
	rdb, count := newClient(b)
	ap := autoPipeliner(b, rdb)
	prefix := fmt.Sprintf("bare%d:", time.Now().UnixNano())
	store, err := session.New(rdb, session.Options{Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Create(ctx, "bench-user", payload, session.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	_, stored := sessionString(b, rdb, prefix)
	cookies := make([]*http.Cookie, clients)
	for i := range cookies {
		tok := fmt.Sprintf("%064d", i)
		if err := rdb.Set(ctx, prefix+tok, stored, time.Hour).Err(); err != nil {
			b.Fatal(err)
		}
		cookies[i] = &http.Cookie{Name: "session", Value: tok}
	}
	type bytesKey struct{}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d %s", len(r.Context().Value(bytesKey{}).([]byte)), "admin")
	})
	h := bareGetMiddleware(ap, prefix, bytesKey{}, next)
	return h, cookies, count
}

// bareGetMiddleware is bareGetHandler's middleware: it hands next a request
// copy whose context carries the bytes, as every session middleware hands
// its handler one that carries the session. next is an http.Handler it
// cannot see through, so that copy is allocated on the heap as it is for
// every other row (a handler written inline kept it on the stack, 320 bytes
// a request that no middleware saves).
func bareGetMiddleware(ap redis.Cmdable, prefix string, key any, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Cookie"), "session=")
		if !ok {
			http.Error(w, "no cookie", 400)
			return
		}
		v, err := ap.Get(r.Context(), prefix+tok).Bytes()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), key, v)))
	})
}

func loginAll(b *testing.B, h http.Handler) []*http.Cookie {
	cookies := make([]*http.Cookie, clients)
	for i := range cookies {
		cookies[i] = login(b, h)
	}
	return cookies
}

// benchSCS runs scs over goredisstore on the pooled client, or over
// cmdableStore on its AutoPipeliner; slide sets IdleTimeout.
func benchSCS(b *testing.B, autopipelined, slide bool) {
	rdb, count := newClient(b)
	prefix := fmt.Sprintf("scs%d:", time.Now().UnixNano())
	var store scs.Store = goredisstore.NewWithPrefix(rdb, prefix)
	if autopipelined {
		store = &cmdableStore{c: autoPipeliner(b, rdb), prefix: prefix}
	}
	h := scsHandler(store, slide)
	runRequests(b, h, loginAll(b, h), count)
}

// cmdableStore is scs/goredisstore over an interface instead of a
// *redis.Client, so that it can run on an AutoPipeliner: the same commands
// (GET, SET with a PX expiry, DEL) with the same arguments.
type cmdableStore struct {
	c      redis.Cmdable
	prefix string
}

func (s *cmdableStore) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	b, err := s.c.Get(ctx, s.prefix+token).Bytes()
	if err == redis.Nil {
		return nil, false, nil
	} else if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

func (s *cmdableStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	return s.c.Set(ctx, s.prefix+token, string(b), time.Until(expiry)).Err()
}

func (s *cmdableStore) DeleteCtx(ctx context.Context, token string) error {
	return s.c.Del(ctx, s.prefix+token).Err()
}

func (s *cmdableStore) Find(token string) ([]byte, bool, error) {
	return s.FindCtx(context.Background(), token)
}

func (s *cmdableStore) Commit(token string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), token, b, expiry)
}

func (s *cmdableStore) Delete(token string) error {
	return s.DeleteCtx(context.Background(), token)
}

var _ scs.CtxStore = (*cmdableStore)(nil)

// scsHandler is the scs request handler over store; slide sets IdleTimeout,
// so that scs re-commits the session on every request to slide its expiry.
func scsHandler(store scs.Store, slide bool) http.Handler {
	sm := scs.New()
	sm.Store = store
	if slide {
		sm.IdleTimeout = 30 * time.Minute
	}
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

// benchGorilla runs gorilla/sessions over redisstore, which takes a
// redis.UniversalClient: the pooled client or its AutoPipeliner.
func benchGorilla(b *testing.B, autopipelined bool) {
	rdb, count := newClient(b)
	var c redis.UniversalClient = rdb
	if autopipelined {
		c = autoPipeliner(b, rdb)
	}
	gs, err := redisstore.NewRedisStore(context.Background(), c)
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
		h := scsHandler(memstore.NewWithCleanupInterval(0), true)
		return h, loginAll(b, h), &cmdCounter{}
	}
	redisSCS := func(b *testing.B) (http.Handler, []*http.Cookie, *cmdCounter) {
		rdb, count := newClient(b)
		h := scsHandler(goredisstore.NewWithPrefix(rdb, fmt.Sprintf("scs%d:", time.Now().UnixNano())), true)
		return h, loginAll(b, h), count
	}
	autoRediskit := func(b *testing.B) (http.Handler, []*http.Cookie, *cmdCounter) {
		return rediskitHandler(b, session.PipelineAlways, 0)
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
// same bytes on the same client, at 128 goroutines: the session's stored
// string is read once with GET and written under another key, and
// bare-get GETs that key. "pooled": the store runs with PipelineOff and
// the bare GET on the client; "autopipelined": PipelineAlways and the
// client's AutoPipeliner. "bare-get-same-key" GETs the session's own key: it
// differs from store-get only in the client's work (the token's hash, the
// key, the parse), and from bare-get only in the key's length, which the
// server hashes. "bare-get-hashed-key" derives that key from the token
// every op, as any store that keeps tokens hashed must (SHA-256,
// base64url, one string): what stays between it and store-get is
// rediskit's own work, checking the token and parsing the stored form
// into a Session. Each row also reports the CPU time per op of the server
// (srv-µs/op) and of this process (cli-µs/op): on 2 cores the two share
// the machine, so the client's extra work shows in the ratio.
func BenchmarkSessionGet(b *testing.B) {
	ctx := context.Background()
	for _, m := range []struct {
		name string
		mode session.Pipelining
	}{{"pooled", session.PipelineOff}, {"autopipelined", session.PipelineAlways}} {
		rdb, count := newClient(b)
		var bare redis.Cmdable = rdb
		if m.mode == session.PipelineAlways {
			bare = autoPipeliner(b, rdb)
		}
		prefix := fmt.Sprintf("g%d:", time.Now().UnixNano())
		store, err := session.New(rdb, session.Options{Prefix: prefix, Pipelining: m.mode})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = store.Close() })
		if err := store.Preload(ctx); err != nil {
			b.Fatal(err)
		}
		s, err := store.Create(ctx, "bench-user", payload, session.CreateOptions{IP: "192.0.2.1", UserAgent: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		id := s.ID()
		sessionKey, stored := sessionString(b, rdb, prefix)
		keyHead, isHashed := strings.CutSuffix(sessionKey, hashedKey("", id))
		if !isHashed {
			b.Fatalf("session key %q does not end with the token's SHA-256", sessionKey)
		}
		bareKey := fmt.Sprintf("bare%d", time.Now().UnixNano())
		if err := rdb.Set(ctx, bareKey, stored, time.Hour).Err(); err != nil {
			b.Fatal(err)
		}
		// Open the pool's connections first, so that neither row pays
		// for dialling them.
		var wg sync.WaitGroup
		for range 128 {
			wg.Go(func() { _ = rdb.Ping(ctx).Err() })
		}
		wg.Wait()
		run128 := func(b *testing.B, op func() error) {
			count.n.Store(0)
			b.SetParallelism(max(1, 128/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			u := readUsage(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := op(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			b.ReportMetric(float64(count.n.Load())/float64(b.N), "redis-cmds/op")
			u.report(b)
		}
		bareGet := func(key string) error {
			v, err := bare.Get(ctx, key).Bytes()
			if err == nil && len(v) != len(stored) {
				err = fmt.Errorf("GET returned %d bytes, want %d", len(v), len(stored))
			}
			return err
		}
		rows := []struct {
			name string
			op   func() error
		}{
			{"store-get", func() error { _, err := store.Get(ctx, id); return err }},
			{"bare-get", func() error { return bareGet(bareKey) }},
			{"bare-get-same-key", func() error { return bareGet(sessionKey) }},
			{"bare-get-hashed-key", func() error { return bareGet(hashedKey(keyHead, id)) }},
		}
		for r := range rounds.N() {
			for _, row := range rounds.InOrder(rows, r) {
				b.Run(m.name+"/"+row.name, func(b *testing.B) { run128(b, row.op) })
			}
		}
	}
}

// hashedKey is head followed by the base64url of the SHA-256 of tok, the
// name a session store that keeps tokens hashed reads, in one allocation
// (tok is hashed from a copy on the stack).
func hashedKey(head, tok string) string {
	var src [session.TokenLen]byte
	copy(src[:], tok)
	sum := sha256.Sum256(src[:])
	var h [43]byte
	base64.RawURLEncoding.Encode(h[:], sum[:])
	var k strings.Builder
	k.Grow(len(head) + len(h))
	k.WriteString(head)
	k.Write(h[:])
	return k.String()
}

// sessionString returns the key and the stored string of the one session
// under prefix: the only string key there (the user index is a sorted set).
func sessionString(b *testing.B, rdb *redis.Client, prefix string) (key string, stored []byte) {
	ctx := context.Background()
	found := 0
	iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
	for iter.Next(ctx) {
		if t, err := rdb.Type(ctx, iter.Val()).Result(); err != nil || t != "string" {
			continue
		}
		v, err := rdb.Get(ctx, iter.Val()).Bytes()
		if err != nil {
			b.Fatal(err)
		}
		key, stored, found = iter.Val(), v, found+1
	}
	if err := iter.Err(); err != nil {
		b.Fatal(err)
	}
	if found != 1 {
		b.Fatalf("%d string keys under %q, want the one session", found, prefix)
	}
	return key, stored
}

// BenchmarkSessionMemory reports Redis memory per session (MEMORY USAGE of
// every key the session uses: its string and its user's index) for a 1 KB
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
