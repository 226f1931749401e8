package retry_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/retry"
)

var (
	incrScript = retry.NewScript(`return redis.call('INCR', KEYS[1])`)
	setScript  = retry.NewScript(`return redis.call('SET', KEYS[1], 'v')`)
)

// TestOnceOnPlainClient shows the fault that Once exists for and that Once
// stops it: through a go-redis client with its default MaxRetries (3), a
// script whose reply is lost after the server ran it is sent again and
// applied twice, with no error. Sent with Once, it is applied once, and the
// caller learns the outcome is unknown.
func TestOnceOnPlainClient(t *testing.T) {
	srv := redistest.Start(t)
	proxy := redistest.NewProxy(t, srv.Addr)
	direct := srv.Client(t)
	ctx := context.Background()
	if err := incrScript.Load(ctx, direct).Err(); err != nil {
		t.Fatal(err)
	}
	plain := redis.NewClient(&redis.Options{Addr: proxy.Addr, ReadTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = plain.Close() })

	type sender func(ctx context.Context, key string) error
	cases := []struct {
		name  string
		send  sender
		want  int64 // server's counter after one call
		ambig bool
	}{
		{"go-redis Script.Run", func(ctx context.Context, key string) error {
			return incrScript.Run(ctx, plain, []string{key}).Err()
		}, 2, false},
		{"RunOnce", func(ctx context.Context, key string) error {
			return retry.Ambiguous("incr", incrScript.RunOnce(ctx, plain, []string{key}).Err())
		}, 1, true},
		{"RunOnce/AutoPipeliner", func(ctx context.Context, key string) error {
			ap, err := plain.AutoPipeline()
			if err != nil {
				return err
			}
			return retry.Ambiguous("incr", incrScript.RunOnce(ctx, ap, []string{key}).Err())
		}, 1, true},
		{"Once/pipeline", func(ctx context.Context, key string) error {
			pipe := plain.Pipeline()
			cmd := incrScript.Cmd(ctx, true, []string{key}, nil)
			_ = pipe.Process(ctx, retry.Once(cmd))
			_, _ = pipe.Exec(ctx)
			return retry.Ambiguous("incr", cmd.Err())
		}, 1, true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := redistest.Prefix(t) + "n" + strings.Repeat("x", i)
			proxy.DropReplyAfter(key)
			before := proxy.Dropped()
			err := tc.send(ctx, key)
			if proxy.Dropped() != before+1 {
				t.Fatalf("the fault did not fire (dropped %d)", proxy.Dropped()-before)
			}
			got, gerr := direct.Get(ctx, key).Int64()
			if gerr != nil {
				t.Fatal(gerr)
			}
			if got != tc.want {
				t.Fatalf("server counter = %d after one call, want %d", got, tc.want)
			}
			if tc.ambig != errors.Is(err, retry.ErrAmbiguous) {
				t.Fatalf("err = %v, want ambiguous: %v", err, tc.ambig)
			}
		})
	}
}

// TestOnceOnCluster: on a cluster a command sent with Once is routed by its
// key, and a NOSCRIPT (the EVALSHA did not run: the script is new to each
// master) is followed by EVAL.
func TestOnceOnCluster(t *testing.T) {
	ctx := context.Background()
	s := retry.NewScript(`return redis.call('INCRBY', KEYS[1], ARGV[1])`)
	c := redistest.SharedCluster(t)
	rdb := c.Client(t)
	for i := range 20 {
		key := redistest.Prefix(t) + "k" + strings.Repeat("y", i)
		n, err := s.RunOnce(ctx, rdb, []string{key}, 5).Int64()
		if err != nil || n != 5 {
			t.Fatalf("RunOnce on cluster = %d, %v; want 5", n, err)
		}
	}
}

func TestMain(m *testing.M) { redistest.Main(m) }

// BenchmarkScript compares go-redis's Script.Run with RunOnce and
// RunRepeatable on one script, through a plain client: the marks cost no
// round trip, and the allocations per call are reported side by side.
func BenchmarkScript(b *testing.B) {
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	ctx := context.Background()
	s := retry.NewScript(`return redis.call('SET', KEYS[1], ARGV[1])`)
	if err := s.Load(ctx, rdb).Err(); err != nil {
		b.Fatal(err)
	}
	keys := []string{"bench"}
	for _, bc := range []struct {
		name string
		run  func() error
	}{
		{"Run", func() error { return s.Run(ctx, rdb, keys, "v").Err() }},
		{"RunOnce", func() error { return s.RunOnce(ctx, rdb, keys, "v").Err() }},
		{"RunRepeatable", func() error { return s.RunRepeatable(ctx, rdb, keys, "v").Err() }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestHookGivesUpAmbiguously: through retry.Hook, an idempotent write whose
// reply is lost is re-sent; when every re-send is refused (the server can
// no longer be reached), the write is reported as ambiguous, since the first
// attempt ran — not as a clean failure. A read under the same fault fails
// plainly.
func TestHookGivesUpAmbiguously(t *testing.T) {
	srv := redistest.Start(t)
	direct := srv.Client(t)
	ctx := context.Background()
	if err := setScript.Load(ctx, direct).Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		write bool
		run   func(rdb *redis.Client, key string) error
	}{
		{"SET", true, func(rdb *redis.Client, key string) error { return rdb.Set(ctx, key, "v", 0).Err() }},
		{"script sent Repeatable", true, func(rdb *redis.Client, key string) error {
			return setScript.RunRepeatable(ctx, rdb, []string{key}).Err()
		}},
		{"GET", false, func(rdb *redis.Client, key string) error { return rdb.Get(ctx, key).Err() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := redistest.NewProxy(t, srv.Addr)
			rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr, MaxRetries: -1,
				ReadTimeout: 200 * time.Millisecond, DialTimeout: 100 * time.Millisecond})
			t.Cleanup(func() { _ = rdb.Close() })
			hook := retry.NewHook(retry.Policy{MaxAttempts: 3, BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
			hook.Install(rdb)
			if err := rdb.Ping(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			key := redistest.Prefix(t) + "k"
			proxy.DropReplyAfter(key)
			go func() {
				for proxy.Dropped() == 0 {
					time.Sleep(time.Millisecond)
				}
				proxy.Close() // every re-send now meets a refused dial
			}()
			err := tc.run(rdb, key)
			if err == nil {
				t.Fatal("the call succeeded through a closed proxy")
			}
			if tc.write != errors.Is(err, retry.ErrAmbiguous) {
				t.Fatalf("err = %v; ambiguous: want %v", err, tc.write)
			}
			if tc.write {
				if v, _ := direct.Get(ctx, key).Result(); v != "v" {
					t.Fatalf("the first attempt did not run (%q): the fault is not the one meant", v)
				}
			}
		})
	}
}

// TestRedirectIsTransient: a MOVED reply that reaches a caller (a node
// asked for a slot it does not own, as after a failover when go-redis's
// redirects ran out) is unavailable and proves the command did not run; it
// does not count against a breaker (not ClassTransient), which sees every
// redirect go-redis follows.
func TestRedirectIsTransient(t *testing.T) {
	c := redistest.SharedCluster(t)
	ctx := context.Background()
	rdb := c.Client(t)
	key := redistest.Prefix(t) + "moved"
	owner, _ := c.MasterOf(t, rdb, key)
	for _, m := range c.Masters {
		if m == owner {
			continue
		}
		err := m.Client(t).Get(ctx, key).Err()
		if _, moved := redis.IsMovedError(err); !moved {
			t.Fatalf("GET on a node that does not own the slot = %v, want MOVED", err)
		}
		if retry.IsInfrastructure(err) || !retry.NotApplied(err) || !retry.IsUnavailable(err) {
			t.Fatalf("MOVED: infrastructure %v, not applied %v, unavailable %v", retry.IsInfrastructure(err), retry.NotApplied(err), retry.IsUnavailable(err))
		}
		return
	}
}

// TestScriptCmdAllocs: building a script's command allocates the argument
// slice and the command, not the hash or the source, which every run of the
// script sends (boxed once by NewScript; 3 and 4 allocations before).
func TestScriptCmdAllocs(t *testing.T) {
	s := retry.NewScript(`return 1`)
	ctx, keys, args := context.Background(), []string{"k"}, []any{"1"}
	for _, sha := range []bool{true, false} {
		if n := testing.AllocsPerRun(1000, func() { _ = s.Cmd(ctx, sha, keys, args) }); n != 2 {
			t.Errorf("Cmd(sha=%v) allocates %v times, want 2", sha, n)
		}
		want := []any{"evalsha", s.Hash(), int64(1), "k", "1"}
		if !sha {
			want[0], want[1] = "eval", `return 1`
		}
		got := s.Cmd(ctx, sha, keys, args).Args()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Cmd(sha=%v) args = %v, want %v", sha, got, want)
		}
	}
}

// TestMarksDoNotAllocate: Once and Repeatable wrap the command kinds
// rediskit marks (scripts, SET … GET, SET … IFEQ, counters) without an
// allocation, and keep their marks: NoRetry for Once, IsIdempotent for
// Repeatable, on every kind.
func TestMarksDoNotAllocate(t *testing.T) {
	ctx := context.Background()
	cmds := []redis.Cmder{
		redis.NewCmd(ctx, "evalsha", "x", 0),
		redis.NewStringCmd(ctx, "set", "k", "v", "nx", "get"),
		redis.NewStatusCmd(ctx, "set", "k", "v", "ifeq", "m"),
		redis.NewIntCmd(ctx, "incr", "k"),
		redis.NewBoolCmd(ctx, "expire", "k", 1), // any other kind: one allocation
	}
	for _, cmd := range cmds {
		want := 0.0
		if _, ok := cmd.(*redis.BoolCmd); ok {
			want = 1
		}
		for name, mark := range map[string]func(redis.Cmder) redis.Cmder{"Once": retry.Once, "Repeatable": retry.Repeatable} {
			if n := testing.AllocsPerRun(100, func() { _ = mark(cmd) }); n != want {
				t.Errorf("%s(%T) allocates %v times, want %v", name, cmd, n, want)
			}
		}
		if !retry.Once(cmd).NoRetry() {
			t.Errorf("Once(%T) is not NoRetry", cmd)
		}
		if !retry.IsIdempotent(retry.Repeatable(cmd)) || retry.Repeatable(cmd).NoRetry() {
			t.Errorf("Repeatable(%T): idempotent %v, NoRetry %v", cmd, retry.IsIdempotent(retry.Repeatable(cmd)), retry.Repeatable(cmd).NoRetry())
		}
	}
}
