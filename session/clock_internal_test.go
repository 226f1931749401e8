package session

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
)

// names records the names of the commands a client sends.
func names() *redistest.Recorder[string] {
	return &redistest.Recorder[string]{Keep: func(cmd redis.Cmder) (string, bool) { return cmd.Name(), true }}
}

// TestLocalClockSkew: a local clock an hour off Redis's neither ends
// sessions nor keeps touching them. Its first Get runs the script (whose
// reply teaches the offset), and the next is a plain read again.
func TestLocalClockSkew(t *testing.T) {
	for _, skew := range []time.Duration{-time.Hour, time.Hour} {
		t.Run(fmt.Sprintf("local clock %v", skew), func(t *testing.T) {
			ctx := context.Background()
			rdb := redistest.Shared(t).Client(t)
			seen := names()
			rdb.AddHook(seen)
			st, err := New(rdb, Options{Prefix: redistest.Prefix(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if err := st.Preload(ctx); err != nil {
				t.Fatal(err)
			}
			st.wall = func() int64 { return time.Now().Add(skew).UnixMilli() }
			s, err := st.Create(ctx, "skewed", map[string]any{"a": 1}, CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// Forget the offset Create taught: as if another server had
			// created the session.
			st.skew.Store(0)
			seen.Take()
			for i, want := range []string{"[get evalsha]", "[get]", "[get]"} {
				g, err := st.Get(ctx, s.ID())
				if err != nil || !g.Has("a") {
					t.Fatalf("Get %d = %v, %v", i, g, err)
				}
				if got := fmt.Sprint(seen.Take()); got != want {
					t.Fatalf("Get %d sent %s, want %s", i, got, want)
				}
			}
		})
	}
}

// TestMonoClock: the store's clock reads the wall time it started from
// plus the monotonic time since, so it agrees with time.Now while the
// wall clock is not stepped.
func TestMonoClock(t *testing.T) {
	clock := monoClock()
	for range 3 {
		before := time.Now().UnixMilli()
		got := clock()
		after := time.Now().UnixMilli()
		if got < before-1 || got > after+1 {
			t.Fatalf("monoClock() = %d, time.Now between %d and %d", got, before, after)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
