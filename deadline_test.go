package rediskit

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/retry"
)

// promptSlack is the promptness bound of the issue: a call with a deadline
// d returns within d + promptSlack. It is a correctness bound (a call that
// ignores its deadline takes seconds), not a speed measurement.
const promptSlack = 50 * time.Millisecond

// withDeadline runs f under a context with timeout d and returns how long
// it took and its error.
func withDeadline(d time.Duration, f func(ctx context.Context) error) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	return time.Since(start), err
}

// TestDeadlineBlockingCommands: every blocking command asked to wait
// forever (timeout 0) returns by its context's deadline with an error that
// matches context.DeadlineExceeded — not redis.Nil, not ErrAmbiguous — and
// the server-side timeout rediskit sent was shortened. With an element
// present, the element comes back.
func TestDeadlineBlockingCommands(t *testing.T) {
	for _, tp := range topologies {
		t.Run(tp.name, func(t *testing.T) {
			t.Parallel()
			c := open(t, tp.cfg(t))
			rdb := c.Redis()
			p := "{" + redistest.Prefix(t) + "}"
			bg := context.Background()
			const d = 150 * time.Millisecond
			if err := rdb.XGroupCreateMkStream(bg, p+"s", "g", "$").Err(); err != nil {
				t.Fatal(err)
			}
			cases := []struct {
				name string
				call func(ctx context.Context) error
				fill func() error
			}{
				{"blpop", func(ctx context.Context) error { return rdb.BLPop(ctx, 0, p+"l").Err() },
					func() error { return rdb.RPush(bg, p+"l", "x").Err() }},
				{"brpop", func(ctx context.Context) error { return rdb.BRPop(ctx, 0, p+"l").Err() },
					func() error { return rdb.RPush(bg, p+"l", "x").Err() }},
				{"blmove", func(ctx context.Context) error { return rdb.BLMove(ctx, p+"l", p+"m", "LEFT", "RIGHT", 0).Err() },
					func() error { return rdb.RPush(bg, p+"l", "x").Err() }},
				{"brpoplpush", func(ctx context.Context) error { return rdb.BRPopLPush(ctx, p+"l", p+"m", 0).Err() },
					func() error { return rdb.RPush(bg, p+"l", "x").Err() }},
				{"blmpop", func(ctx context.Context) error { return rdb.BLMPop(ctx, 0, "left", 1, p+"l").Err() },
					func() error { return rdb.RPush(bg, p+"l", "x").Err() }},
				{"bzpopmin", func(ctx context.Context) error { return rdb.BZPopMin(ctx, 0, p+"z").Err() },
					func() error { return rdb.ZAdd(bg, p+"z", redis.Z{Score: 1, Member: "x"}).Err() }},
				{"bzpopmax", func(ctx context.Context) error { return rdb.BZPopMax(ctx, 0, p+"z").Err() },
					func() error { return rdb.ZAdd(bg, p+"z", redis.Z{Score: 1, Member: "x"}).Err() }},
				{"bzmpop", func(ctx context.Context) error { return rdb.BZMPop(ctx, 0, "min", 1, p+"z").Err() },
					func() error { return rdb.ZAdd(bg, p+"z", redis.Z{Score: 1, Member: "x"}).Err() }},
				{"xread", func(ctx context.Context) error {
					return rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{p + "s", "$"}, Block: 0}).Err()
				}, nil},
				{"xreadgroup", func(ctx context.Context) error {
					return rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{p + "s", ">"}, Block: 0}).Err()
				}, func() error { return rdb.XAdd(bg, &redis.XAddArgs{Stream: p + "s", Values: []string{"f", "v"}}).Err() }},
				{"do blpop", func(ctx context.Context) error { return rdb.Do(ctx, "BLPOP", p+"l", "0").Err() },
					func() error { return rdb.RPush(bg, p+"l", "x").Err() }},
			}
			if tp.name == "standalone" {
				cases = append(cases, struct {
					name string
					call func(ctx context.Context) error
					fill func() error
				}{"wait", func(ctx context.Context) error { return rdb.(*redis.Client).Wait(ctx, 1, 0).Err() }, nil})
			}
			for _, tc := range cases {
				before := c.deadline.shortened.Load()
				took, err := withDeadline(d, tc.call)
				if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, retry.ErrAmbiguous) || errors.Is(err, redis.Nil) {
					t.Errorf("%s with timeout 0 and a %v deadline: err = %v, want context.DeadlineExceeded only", tc.name, d, err)
				}
				if took > d+promptSlack {
					t.Errorf("%s: returned after %v, deadline %v", tc.name, took, d)
				}
				if c.deadline.shortened.Load() == before {
					t.Errorf("%s: server-side timeout not shortened", tc.name)
				}
				if tc.fill == nil {
					continue
				}
				if err := tc.fill(); err != nil {
					t.Fatal(err)
				}
				if _, err := withDeadline(d, tc.call); err != nil {
					t.Errorf("%s with an element present: %v", tc.name, err)
				}
			}
			// A caller timeout shorter than the deadline is the caller's:
			// the server's empty answer is redis.Nil, as without a deadline.
			_, err := withDeadline(2*time.Second, func(ctx context.Context) error {
				return rdb.Do(ctx, "blpop", p+"l", "0.05").Err()
			})
			if !errors.Is(err, redis.Nil) {
				t.Errorf("BLPOP with a 50 ms timeout and a 2 s deadline: err = %v, want redis.Nil", err)
			}
			s, _ := c.Stats(bg)
			if s.Failures != 0 || s.Breaker != BreakerClosed {
				t.Errorf("after deadlines: Failures = %d, breaker %v; want 0, closed", s.Failures, s.Breaker)
			}
			if s.Deadlines < uint64(len(cases)) {
				t.Errorf("Stats.Deadlines = %d, want >= %d", s.Deadlines, len(cases))
			}
		})
	}
}

// TestDeadlineDisabled: with DisableContextTimeout a blocking command
// waits for its own timeout, as go-redis does without
// ContextTimeoutEnabled.
func TestDeadlineDisabled(t *testing.T) {
	t.Parallel()
	c := open(t, Config{Addr: redistest.Shared(t).Addr, DisableContextTimeout: true})
	if c.deadline != nil {
		t.Fatal("deadline hook installed with DisableContextTimeout")
	}
	p := redistest.Prefix(t)
	took, err := withDeadline(50*time.Millisecond, func(ctx context.Context) error {
		return c.Redis().BLPop(ctx, time.Second, p+"l").Err()
	})
	if !errors.Is(err, redis.Nil) || took < time.Second {
		t.Fatalf("BLPOP 1 s with a 50 ms deadline, deadlines off: err = %v after %v; want redis.Nil after 1 s", err, took)
	}
}

// TestDeadlinePaused: behind a paused server (SIGSTOP) every kind of call
// returns within its deadline + promptSlack on standalone, Cluster and
// Sentinel: a read with the context's error, a write and a blocking pop
// sent on an open connection (so they may have run) with an error matching
// both retry.ErrAmbiguous and context.DeadlineExceeded, a pipeline with one
// of each per command. (On a new connection the handshake times out first:
// the command was never sent, and its error is the context's only.) None of
// them is a server fault: with a breaker threshold of 2 the breaker stays
// closed after five, Stats.Failures stays 0 and Stats.Deadlines counts them.
// The pause stays under the 1 s after which a cluster or a sentinel would
// declare the node down.
func TestDeadlinePaused(t *testing.T) {
	type setup struct {
		name string
		cfg  func(t *testing.T) Config
		// server returns the process that serves key.
		server func(t *testing.T, c *Client, key string) *redistest.Server
	}
	var standalone *redistest.Server
	setups := []setup{
		{"standalone", func(t *testing.T) Config {
			standalone = redistest.Start(t)
			return Config{Addr: standalone.Addr}
		}, func(t *testing.T, c *Client, _ string) *redistest.Server {
			warmNode(t, c.Redis().(*redis.Client), 8)
			return standalone
		}},
		{"cluster", func(t *testing.T) Config { return Config{ClusterAddrs: redistest.SharedCluster(t).Addrs()} },
			func(t *testing.T, c *Client, key string) *redistest.Server {
				srv, m := redistest.SharedCluster(t).MasterOf(t, c.Redis().(*redis.ClusterClient), key)
				warmNode(t, m, 8)
				return srv
			}},
		{"sentinel", func(t *testing.T) Config {
			s := redistest.SharedSentinel(t)
			return Config{MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs()}
		}, func(t *testing.T, c *Client, _ string) *redistest.Server {
			warmNode(t, c.Redis().(*redis.Client), 8)
			return redistest.SharedSentinel(t).Master
		}},
	}
	const d = 100 * time.Millisecond
	for _, st := range setups {
		t.Run(st.name, func(t *testing.T) {
			cfg := st.cfg(t)
			cfg.BreakerThreshold, cfg.HealthCheckInterval = 2, -1
			var tr transitions
			cfg.OnBreakerChange = tr.record
			c := open(t, cfg)
			rdb := c.Redis()
			key := "{" + redistest.Prefix(t) + "}k" // key+"n", key+"l": same node
			bg := context.Background()
			if err := rdb.Set(bg, key, "1", 0).Err(); err != nil {
				t.Fatal(err)
			}
			srv := st.server(t, c, key)
			// Pipelines have their own pool in go-redis: open one connection there too.
			if _, err := rdb.Pipelined(bg, func(p redis.Pipeliner) error { p.Get(bg, key); return nil }); err != nil {
				t.Fatal(err)
			}
			before, _ := c.Stats(bg)

			srv.Pause()
			resumed := false
			resume := func() {
				if !resumed {
					srv.Resume()
					resumed = true
				}
			}
			defer resume()
			type result struct {
				what string
				took time.Duration
				err  error
				amb  bool
			}
			var results []result
			run := func(what string, amb bool, f func(ctx context.Context) error) {
				took, err := withDeadline(d, f)
				results = append(results, result{what, took, err, amb})
			}
			run("GET", false, func(ctx context.Context) error { return rdb.Get(ctx, key).Err() })
			run("INCR", true, func(ctx context.Context) error { return rdb.Incr(ctx, key+"n").Err() })
			run("BLPOP 0", true, func(ctx context.Context) error { return rdb.BLPop(ctx, 0, key+"l").Err() })
			var pget, pincr redis.Cmder
			run("pipeline", false, func(ctx context.Context) error {
				pipe := rdb.Pipeline()
				pget, pincr = pipe.Get(ctx, key), pipe.Incr(ctx, key+"n")
				_, err := pipe.Exec(ctx)
				return err
			})
			run("GET again", false, func(ctx context.Context) error { return rdb.Get(ctx, key).Err() })
			resume()

			for _, r := range results {
				t.Logf("%s: returned after %v (deadline %v)", r.what, r.took.Round(time.Millisecond), d)
				if !errors.Is(r.err, context.DeadlineExceeded) || errors.Is(r.err, retry.ErrAmbiguous) != r.amb {
					t.Errorf("%s behind a paused server: err = %v; want context.DeadlineExceeded, ambiguous %v", r.what, r.err, r.amb)
				}
				if r.took > d+promptSlack {
					t.Errorf("%s behind a paused server: returned after %v, deadline %v", r.what, r.took, d)
				}
			}
			if err := pget.Err(); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, retry.ErrAmbiguous) {
				t.Errorf("GET in the pipeline: %v, want context.DeadlineExceeded only", err)
			}
			if err := pincr.Err(); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, retry.ErrAmbiguous) {
				t.Errorf("INCR in the pipeline: %v, want context.DeadlineExceeded and ErrAmbiguous", err)
			}
			if c.BreakerState() != BreakerClosed || tr.String() != "" {
				t.Errorf("breaker %v, transitions %q after deadlines only; want closed, none", c.BreakerState(), tr.String())
			}
			ctx, cancel := context.WithTimeout(bg, 5*time.Second)
			defer cancel()
			if v, err := rdb.Get(ctx, key).Result(); err != nil || v != "1" {
				t.Fatalf("GET after resume: %q, %v", v, err)
			}
			after, _ := c.Stats(bg)
			if after.Failures != before.Failures {
				t.Errorf("Stats.Failures went from %d to %d on deadlines only", before.Failures, after.Failures)
			}
			if n := after.Deadlines - before.Deadlines; n < uint64(len(results)) {
				t.Errorf("Stats.Deadlines grew by %d, want >= %d", n, len(results))
			}
			if after.Ambiguous-before.Ambiguous < 3 {
				t.Errorf("Stats.Ambiguous grew by %d, want >= 3 (INCR, BLPOP, INCR in pipeline)", after.Ambiguous-before.Ambiguous)
			}
		})
	}
}

// TestLateReplyKept: a read whose deadline has passed fails in Go without
// looking at the socket, even when the reply is already there (as when the
// reading goroutine was not running at the deadline). Through
// keepLateReplies the reply is read.
func TestLateReplyKept(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("+OK\r\n+OK\r\n"))
		time.Sleep(time.Second)
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	time.Sleep(50 * time.Millisecond) // the bytes are in the socket buffer
	buf := make([]byte, 5)
	_ = raw.SetReadDeadline(time.Now().Add(-time.Millisecond))
	if n, err := raw.Read(buf); n != 0 || !isTimeout(err) {
		t.Fatalf("plain read past its deadline: %d bytes, %v; want 0 and a timeout", n, err)
	}
	late := keepLateReplies(raw)
	if _, ok := late.(syscall.Conn); !ok {
		t.Fatal("the wrapper hides syscall.Conn: go-redis could not check idle connections")
	}
	_ = late.SetReadDeadline(time.Now().Add(-time.Millisecond))
	if n, err := late.Read(buf); err != nil || string(buf[:n]) != "+OK\r\n" {
		t.Fatalf("read past its deadline through keepLateReplies: %q, %v; want the reply", buf[:n], err)
	}
}
