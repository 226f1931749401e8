package otel_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/rediskit/rediskit/cache"
	"github.com/rediskit/rediskit/internal/redistest"
	rkotel "github.com/rediskit/rediskit/otel"
)

func newCache(t *testing.T, r *rig, prefix string) *cache.Cache {
	t.Helper()
	c, err := cache.New(r.rdb, cache.Options{Prefix: prefix, Tracer: r.tr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Preload(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCacheSpans: Get, Set, MGet, GetOrSet, Delete and Clear (of Cache and
// Typed) are one span each, with the namespace, hit/miss and counts, and
// their Redis commands as children. A GetOrSet that loads has a cache.load
// child, and the loader's own spans are children of cache.load.
func TestCacheSpans(t *testing.T) {
	r := newRig(t, redistest.Start(t))
	c := newCache(t, r, "otelcache")
	ns := c.Namespace()
	typed := cache.NewTyped[string](c, nil)

	check := func(name, op string, fn func(ctx context.Context), want map[string]string, cmds ...string) (tree, tracetest.SpanStub) {
		t.Helper()
		tr := r.under(t, name, fn)
		s := tr.one(t, tr.root, op)
		if got := attr(s, rkotel.AttrNamespace); got != ns {
			t.Errorf("%s: namespace %q, want %q", name, got, ns)
		}
		for k, v := range want {
			if got := attr(s, k); got != v {
				t.Errorf("%s: %s = %q, want %q\n%s", name, k, got, v, tr)
			}
		}
		if got := tr.commands(s.SpanContext.SpanID()); !slices.Equal(got, cmds) {
			t.Errorf("%s: commands %v, want %v\n%s", name, got, cmds, tr)
		}
		return tr, s
	}
	ctx0 := context.Background()
	check("Set", "cache.Set", func(ctx context.Context) {
		if err := c.Set(ctx, "a", []byte("1"), time.Minute); err != nil {
			t.Fatal(err)
		}
	}, nil, "set")
	check("Get hit", "cache.Get", func(ctx context.Context) {
		if _, ok, err := c.Get(ctx, "a"); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}, map[string]string{cache.AttrHit: "true"}, "get")
	check("Get miss", "cache.Get", func(ctx context.Context) {
		if _, ok, err := c.Get(ctx, "nope"); ok || err != nil {
			t.Fatal(ok, err)
		}
	}, map[string]string{cache.AttrHit: "false"}, "get")
	check("MGet", "cache.MGet", func(ctx context.Context) {
		if m, err := c.MGet(ctx, []string{"a", "nope", "nope2"}); len(m) != 1 || err != nil {
			t.Fatal(m, err)
		}
	}, map[string]string{cache.AttrKeys: "3", cache.AttrHits: "1"}, "mget")
	check("GetOrSet hit", "cache.GetOrSet", func(ctx context.Context) {
		if _, err := c.GetOrSet(ctx, "a", time.Minute, func(context.Context) ([]byte, error) {
			t.Fatal("loader called on a hit")
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
	}, map[string]string{cache.AttrHit: "true"}, "set")

	tr, s := check("GetOrSet miss", "cache.GetOrSet", func(ctx context.Context) {
		if _, err := c.GetOrSet(ctx, "b", time.Minute, func(ctx context.Context) ([]byte, error) {
			_, span := r.root.Start(ctx, "db.query") // the loader's own work
			span.End()
			return []byte("2"), nil
		}); err != nil {
			t.Fatal(err)
		}
	}, map[string]string{cache.AttrHit: "false"}, "evalsha", "set") // the commit and the lease (commands() lists them sorted)
	load := tr.one(t, s.SpanContext.SpanID(), "cache.load")
	tr.one(t, load.SpanContext.SpanID(), "db.query")
	if got := attr(load, rkotel.AttrNamespace); got != ns {
		t.Errorf("cache.load: namespace %q", got)
	}

	check("Typed Set", "cache.Set", func(ctx context.Context) {
		if err := typed.Set(ctx, "t", "x", time.Minute); err != nil {
			t.Fatal(err)
		}
	}, nil, "set")
	check("Typed Get", "cache.Get", func(ctx context.Context) {
		if v, ok, err := typed.Get(ctx, "t"); v != "x" || !ok || err != nil {
			t.Fatal(v, ok, err)
		}
	}, map[string]string{cache.AttrHit: "true"}, "get")
	check("Typed MGet", "cache.MGet", func(ctx context.Context) {
		if m, err := typed.MGet(ctx, []string{"t", "nope"}); len(m) != 1 || err != nil {
			t.Fatal(m, err)
		}
	}, map[string]string{cache.AttrKeys: "2", cache.AttrHits: "1"}, "mget")
	tr, s = check("Typed GetOrSet miss", "cache.GetOrSet", func(ctx context.Context) {
		if v, err := typed.GetOrSet(ctx, "u", time.Minute, func(context.Context) (string, error) { return "y", nil }); v != "y" || err != nil {
			t.Fatal(v, err)
		}
	}, map[string]string{cache.AttrHit: "false"}, "evalsha", "set")
	tr.one(t, s.SpanContext.SpanID(), "cache.load")

	check("Delete", "cache.Delete", func(ctx context.Context) {
		if err := c.Delete(ctx, "a", "t"); err != nil {
			t.Fatal(err)
		}
	}, map[string]string{cache.AttrKeys: "2"}, "del")
	check("Clear", "cache.Clear", func(ctx context.Context) {
		if n, err := c.Clear(ctx, cache.Prefix(""), cache.ClearOptions{}); n != 2 || err != nil {
			t.Fatal(n, err)
		}
	}, map[string]string{cache.AttrRemoved: "2"}, "scan", "unlink")
	if _, ok, _ := c.Get(ctx0, "b"); ok {
		t.Fatal("Clear left b")
	}
}

// TestLeaseWaitSpan: a GetOrSet that waits for another process's load of
// the key has a cache.lease_wait child and no cache.load; the process that
// loads has cache.load. Two Caches over one namespace stand for the two
// processes (each has its own in-process flights).
func TestLeaseWaitSpan(t *testing.T) {
	r := newRig(t, redistest.Start(t))
	a := newCache(t, r, "otellease")
	b := newCache(t, r, "otellease")

	entered, release := make(chan struct{}), make(chan struct{})
	r.exp.Reset()
	ctxA, rootA := r.root.Start(context.Background(), "A")
	doneA := make(chan error, 1)
	go func() {
		_, err := a.GetOrSet(ctxA, "k", time.Minute, func(context.Context) ([]byte, error) {
			close(entered)
			<-release
			return []byte("v"), nil
		})
		doneA <- err
	}()
	<-entered
	ctxB, rootB := r.root.Start(context.Background(), "B")
	doneB := make(chan error, 1)
	go func() {
		v, err := b.GetOrSet(ctxB, "k", time.Minute, func(context.Context) ([]byte, error) {
			t.Error("B loaded while A held the lease")
			return nil, nil
		})
		if err == nil && string(v) != "v" {
			t.Errorf("B got %q", v)
		}
		doneB <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); b.LocalStats().LeaseWaits == 0; { // B waits for A's lease
		if time.Now().After(deadline) {
			t.Fatal("B never waited for A's lease")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
	rootA.End()
	rootB.End()

	all := r.exp.GetSpans()
	trA := newTree(all, rootA.SpanContext().SpanID())
	gsA := trA.one(t, trA.root, "cache.GetOrSet")
	if got := trA.names(gsA.SpanContext.SpanID()); !slices.Contains(got, "cache.load") || slices.Contains(got, "cache.lease_wait") {
		t.Errorf("A's GetOrSet children %v, want cache.load and no lease wait\n%s", got, trA)
	}
	trB := newTree(all, rootB.SpanContext().SpanID())
	gsB := trB.one(t, trB.root, "cache.GetOrSet")
	if got := attr(gsB, cache.AttrHit); got != "false" {
		t.Errorf("B: hit %q, want false", got)
	}
	if got := trB.names(gsB.SpanContext.SpanID()); !slices.Contains(got, "cache.lease_wait") || slices.Contains(got, "cache.load") {
		t.Errorf("B's GetOrSet children %v, want cache.lease_wait and no cache.load\n%s", got, trB)
	}
	wait := trB.one(t, gsB.SpanContext.SpanID(), "cache.lease_wait")
	if wait.EndTime.IsZero() || wait.Status.Code != codes.Unset {
		t.Errorf("lease wait span: ended %v, status %v", wait.EndTime, wait.Status)
	}
	// B's lease commands are children of its GetOrSet: its own SET NX GET,
	// and those of the flight that waits, which carries B's context values
	// into the Cache's own context.
	if got := trB.commands(gsB.SpanContext.SpanID()); len(got) < 2 {
		t.Errorf("B's GetOrSet has commands %v, want its SET NX GET and its flight's\n%s", got, trB)
	}
}
