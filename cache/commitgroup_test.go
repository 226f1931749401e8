package cache

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
)

// holdFirstCommit is a hook that holds the first scriptCommit call until
// release is closed, and records every commit call after it.
type holdFirstCommit struct {
	held, release chan struct{}
	once          sync.Once

	mu    sync.Mutex
	calls [][]any // the arguments of every commit call after the first
}

func (h *holdFirstCommit) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *holdFirstCommit) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if args := cmd.Args(); len(args) > 1 && cmd.Name() == "evalsha" {
			switch args[1] {
			case scriptCommit.Hash():
				first := false
				h.once.Do(func() { first = true })
				if first {
					close(h.held)
					<-h.release
					return next(ctx, cmd)
				}
				fallthrough
			case scriptCommitGroup.Hash():
				h.mu.Lock()
				h.calls = append(h.calls, args)
				h.mu.Unlock()
			}
		}
		return next(ctx, cmd)
	}
}

func (h *holdFirstCommit) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestCommitGroup: while a commit is on the wire, the commits of other
// misses wait for it and go as one call, each still a compare-and-set on
// its own lease: a key deleted while its commit waited is not written
// back, and a lease a waiter flagged gets its event.
func TestCommitGroup(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	h := &holdFirstCommit{held: make(chan struct{}), release: make(chan struct{})}
	rdb.AddHook(h)
	ctx := ctxT(t)
	c := newCache(t, rdb, Options{})
	if !c.grouped {
		t.Fatal("a Cache on a *redis.Client with default options does not group commits")
	}

	type answer struct {
		key string
		v   []byte
		err error
	}
	answers := make(chan answer, 8)
	getOrSet := func(key string) {
		go func() {
			v, err := c.GetOrSet(ctx, key, time.Minute, func(context.Context) ([]byte, error) {
				return []byte("loaded " + key), nil
			})
			answers <- answer{key, v, err}
		}()
	}
	getOrSet("first")
	select {
	case <-h.held:
	case <-ctx.Done():
		t.Fatal("the first commit never ran")
	}
	const waiting = 5
	for i := range waiting {
		getOrSet(fmt.Sprint("k", i))
	}
	waitFor(t, "the commits to wait for the wire", func() bool {
		c.group.mu.Lock()
		defer c.group.mu.Unlock()
		return c.group.next != nil && len(c.group.next.keys) == waiting
	})

	// k1 is deleted while its commit waits; k2's lease is flagged by a
	// waiter, which listens for the event.
	if err := c.Delete(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	marker, err := rdb.Get(ctx, c.key("k2")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if _, held, err := c.watchMarker(ctx, c.key("k2"), marker); err != nil || !held {
		t.Fatalf("flagging k2's lease: held %v, %v", held, err)
	}
	sub := rdb.Subscribe(ctx, c.channel)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}

	close(h.release)
	for range waiting + 1 {
		a := <-answers
		if a.err != nil || string(a.v) != "loaded "+a.key {
			t.Errorf("GetOrSet(%s) = %q, %v; want its loaded value", a.key, a.v, a.err)
		}
	}
	h.mu.Lock()
	calls := h.calls
	h.mu.Unlock()
	if len(calls) != 1 || calls[0][1] != scriptCommitGroup.Hash() || fmt.Sprint(calls[0][2]) != fmt.Sprint(waiting) {
		t.Fatalf("commits after the first: %v; want one group call of %d keys", calls, waiting)
	}
	for _, key := range []string{"first", "k0", "k2", "k3", "k4"} {
		v, hit, err := c.Get(ctx, key)
		if err != nil || !hit || string(v) != "loaded "+key {
			t.Errorf("Get(%s) = %q, %v, %v; want the loaded value", key, v, hit, err)
		}
	}
	if n, err := rdb.Exists(ctx, c.key("k1")).Result(); err != nil || n != 0 {
		t.Errorf("k1, deleted while its commit waited: exists %d, %v; want not written back", n, err)
	}
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := string(evStored) + c.key("k2"); msg.Payload != want {
		t.Errorf("event %q, want %q", msg.Payload, want)
	}
}

// TestCommitGroupOnlyWhereItHolds: commits group only on a *redis.Client,
// without a Tracer and without PipelineAlways (see commitgroup.go).
func TestCommitGroupOnlyWhereItHolds(t *testing.T) {
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	t.Cleanup(func() { _ = cluster.Close() })
	for _, tc := range []struct {
		name string
		rdb  redis.UniversalClient
		opt  Options
		want bool
	}{
		{"client", fakeClient(t), Options{}, true},
		{"pooled", fakeClient(t), Options{Pipelining: PipelineOff}, true},
		{"always", fakeClient(t), Options{Pipelining: PipelineAlways}, false},
		{"traced", fakeClient(t), Options{Tracer: noopTracer{}}, false},
		{"cluster", cluster, Options{}, false},
	} {
		tc.opt.Prefix = "t"
		c, err := New(tc.rdb, tc.opt)
		if err != nil {
			t.Fatal(err)
		}
		if c.grouped != tc.want {
			t.Errorf("%s: grouped %v, want %v", tc.name, c.grouped, tc.want)
		}
		_ = c.Close()
	}
}

// noopTracer is a Tracer that records nothing.
type noopTracer struct{}

func (noopTracer) Start(ctx context.Context, _, _ string) (context.Context, func(error)) {
	return ctx, func(error) {}
}
func (noopTracer) SetInt(context.Context, string, int)   {}
func (noopTracer) SetBool(context.Context, string, bool) {}
