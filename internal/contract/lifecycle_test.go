package contract_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/rediskit/rediskit"
	"github.com/rediskit/rediskit/cache"
	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/session"
)

// sharers are the users of one client in TestSharedClientLifecycles: each
// can be closed, and each can show it still works.
type sharer struct {
	name  string
	close func() error
	works func(ctx context.Context) error
}

// permutations returns every order of n items.
func permutations(n int) [][]int {
	if n == 1 {
		return [][]int{{0}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int(nil), p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

// TestSharedClientLifecycles: one client shared by a session Store (with
// AutoPipeline) and its Manager, a Cache with its near tier (with
// AutoPipeline), a plain Cache, and the caller's own commands, plain and
// auto-pipelined. Closing the stores and caches in every order leaves every
// other user, and the client, working; closing the client last leaves no
// goroutine behind.
func TestSharedClientLifecycles(t *testing.T) {
	for _, kind := range []string{"client", "rediskit"} {
		t.Run(kind, func(t *testing.T) {
			srv := redistest.Shared(t)
			_ = srv.Client(t).Ping(context.Background()).Err() // the shared server is up before the leak baseline
			for _, order := range permutations(3) {
				t.Run(fmt.Sprint(order), func(t *testing.T) { testLifecycleOrder(t, kind, srv.Addr, order) })
			}
		})
	}
}

func testLifecycleOrder(t *testing.T, kind, addr string, order []int) {
	ctx := context.Background()
	ignore := goleak.IgnoreCurrent()
	var rdb redis.UniversalClient
	var closeClient func() error
	if kind == "rediskit" {
		c, err := rediskit.Open(ctx, rediskit.Config{Addr: addr})
		if err != nil {
			t.Fatal(err)
		}
		rdb, closeClient = c.Redis(), c.Close
	} else {
		c := redis.NewClient(&redis.Options{Addr: addr})
		rdb, closeClient = c, c.Close
	}
	prefix := redistest.Prefix(t)

	store, err := session.New(rdb, session.Options{Prefix: prefix + "s:", Pipelining: session.PipelineAlways})
	if err != nil {
		t.Fatal(err)
	}
	mgr := session.NewManager(store, session.ManagerOptions{Cookie: session.CookieOptions{Insecure: true}})
	app := httptest.NewServer(mgr.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mgr.Put(r.Context(), "n", mgr.GetInt(r.Context(), "n")+1)
		fmt.Fprint(w, mgr.GetInt(r.Context(), "n"))
	})))
	defer app.Close()
	near, err := cache.New(rdb, cache.Options{Prefix: prefix + "near", Pipelining: cache.PipelineAlways, Near: &cache.NearOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	typed := cache.NewTyped[string](near, cache.JSONCodec{})
	plain, err := cache.New(rdb, cache.Options{Prefix: prefix + "plain"})
	if err != nil {
		t.Fatal(err)
	}

	closed := map[string]bool{}
	sharers := []sharer{
		{"session store", store.Close, func(ctx context.Context) error {
			if _, err := store.Create(ctx, "u", map[string]any{"a": 1}, session.CreateOptions{}); err != nil {
				return err
			}
			return request(app.URL)
		}},
		{"near cache", near.Close, func(ctx context.Context) error {
			if err := typed.Set(ctx, "k", "v", time.Minute); err != nil {
				return err
			}
			v, err := typed.GetOrSet(ctx, "k2", time.Minute, func(context.Context) (string, error) { return "w", nil })
			if err != nil || v != "w" {
				return fmt.Errorf("GetOrSet = %q, %v", v, err)
			}
			_, _, err = typed.Get(ctx, "k")
			return err
		}},
		{"plain cache", plain.Close, func(ctx context.Context) error {
			if _, err := plain.Incr(ctx, "n", 1, time.Minute); err != nil {
				return err
			}
			_, err := plain.GetOrSet(ctx, "g", time.Minute, func(context.Context) ([]byte, error) { return []byte("x"), nil })
			return err
		}},
	}
	own := func(ctx context.Context) error {
		if err := rdb.Set(ctx, prefix+"own", "1", time.Minute).Err(); err != nil {
			return err
		}
		ap, err := rdb.AutoPipeline()
		if err != nil {
			return err
		}
		return ap.Get(ctx, prefix+"own").Err()
	}
	checkAll := func(stage string) {
		t.Helper()
		if err := own(ctx); err != nil {
			t.Fatalf("%s: the caller's own commands: %v", stage, err)
		}
		for _, s := range sharers {
			if closed[s.name] {
				continue
			}
			if err := s.works(ctx); err != nil {
				t.Fatalf("%s: %s: %v", stage, s.name, err)
			}
		}
	}
	checkAll("before any Close")
	for _, i := range order {
		s := sharers[i]
		if err := s.close(); err != nil {
			t.Fatalf("Close of %s: %v", s.name, err)
		}
		closed[s.name] = true
		checkAll("after closing the " + s.name)
	}
	app.Close()
	if err := closeClient(); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, ignore)
}

func request(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = fmt.Fprint(&b, resp.StatusCode)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("request through the Manager: status %s", b.String())
	}
	return nil
}
