package rediskit

import (
	"context"
	"errors"
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
