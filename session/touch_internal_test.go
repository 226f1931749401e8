package session

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/retry"
)

// touchState is what a touch leaves behind for one session.
type touchState struct {
	reply      string // the script's reply
	read       string // the session Get makes of the reply: its Info and values
	raw        string // the stored session
	ttl        time.Duration
	score      float64 // its index entry (0: none)
	indexTTL   time.Duration
	indexCount int64
}

// TestTouchScriptMatchesGet runs scriptTouch and scriptGet on the same
// stored sessions at the same instant and wants Get to read the same
// session from their replies, and the same stored session, expiry and index
// afterwards; where scriptTouch hands a session back (0), scriptGet must be
// the one that acts. scriptTouch moves last-seen in place and replies with
// the stored string from before, which Get then corrects ("moved").
func TestTouchScriptMatchesGet(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Shared(t).Client(t)
	t0 := time.UnixMilli(1_900_000_000_000)
	clock := t0
	st, err := New(rdb, Options{Prefix: redistest.Prefix(t), Clock: func() time.Time { return clock }, IdleTimeout: 30 * time.Minute, AbsoluteTimeout: 2 * time.Hour, TouchInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mk := func(user string, o CreateOptions) *Session {
		s, err := st.Create(ctx, user, map[string]any{"k": strings.Repeat("v", 100), "n": 7}, o)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cases := []struct {
		name    string
		sess    *Session
		at      time.Duration // after t0
		handsOn bool          // scriptTouch returns 0
		moved   bool          // scriptTouch moves last-seen in place
	}{
		{"user, touch due", mk("alice", CreateOptions{IP: "192.0.2.1", UserAgent: "ua"}), 10 * time.Minute, false, true},
		{"user, touch not due", mk("bob", CreateOptions{}), 30 * time.Second, false, false},
		{"anonymous, touch due", mk("", CreateOptions{}), 10 * time.Minute, false, true},
		{"own idle timeout", mk("carol", CreateOptions{IdleTimeout: 5 * time.Minute}), 2 * time.Minute, false, true},
		{"expiry capped by the deadline", mk("dave", CreateOptions{IdleTimeout: 110 * time.Minute}), 100 * time.Minute, false, true},
		{"past the idle timeout", mk("erin", CreateOptions{}), 31 * time.Minute, true, false},
		{"past the deadline", mk("frank", CreateOptions{}), 121 * time.Minute, true, false},
	}
	// Keep every session alive up to its case's instant, as use would.
	for _, c := range cases {
		p, _ := parseToken(st.opts.Prefix, c.sess.ID())
		key, idx := p.key, st.indexKey(p.tag)
		raw, err := rdb.Get(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		score, _ := rdb.ZScore(ctx, idx, p.handle).Result()
		now := t0.Add(c.at).UnixMilli()
		// run puts the session back as created (value, TTL far enough
		// to be alive in Redis at now, index entry) and runs script.
		run := func(script retry.Script) (touchState, error) {
			if err := rdb.Set(ctx, key, raw, 3*time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
			rdb.Del(ctx, idx)
			if score != 0 {
				rdb.ZAdd(ctx, idx, redis.Z{Score: score, Member: p.handle})
			}
			v, err := script.RunRepeatable(ctx, rdb, []string{key, idx}, now, p.handle, st.opts.TouchInterval.Milliseconds(), st.opts.IdleTimeout.Milliseconds()).Result()
			var out touchState
			if err != nil && err != redis.Nil {
				return out, err
			}
			out.reply = fmt.Sprint(v)
			if res, ok := v.([]any); ok {
				var sess Session
				if err := st.loadTouched(&sess, c.sess.ID(), p.handle, res); err != nil {
					t.Fatal(err)
				}
				var vals []string
				sess.rec.eachValue(func(k string, v sealed) { vals = append(vals, k, string(v)) })
				out.read = fmt.Sprint(sess.Info(), sess.version, vals)
			}
			out.raw, _ = rdb.Get(ctx, key).Result()
			out.ttl, _ = rdb.PTTL(ctx, key).Result()
			out.score, _ = rdb.ZScore(ctx, idx, p.handle).Result()
			out.indexTTL, _ = rdb.PTTL(ctx, idx).Result()
			out.indexCount, _ = rdb.ZCard(ctx, idx).Result()
			return out, nil
		}
		t.Run(c.name, func(t *testing.T) {
			touched, err := run(scriptTouch)
			if err != nil {
				t.Fatal(err)
			}
			if c.handsOn {
				if touched.reply != "0" || touched.raw != raw {
					t.Fatalf("scriptTouch = %s and changed the session; want 0 and nothing written", touched.reply)
				}
				return
			}
			got, err := run(scriptGet)
			if err != nil {
				t.Fatal(err)
			}
			// PTTL is relative to the server's clock, the expiry to now:
			// compare them to within the time between the two runs.
			near := func(a, b time.Duration) bool { return (a - b).Abs() < time.Second }
			if moved := touched.reply != got.reply; moved != c.moved {
				t.Errorf("scriptTouch replied %s, scriptGet %s; want them to differ: %v", touched.reply, got.reply, c.moved)
			}
			if touched.read != got.read || touched.raw != got.raw || !near(touched.ttl, got.ttl) ||
				touched.score != got.score || !near(touched.indexTTL, got.indexTTL) || touched.indexCount != got.indexCount {
				t.Fatalf("scriptTouch left\n%+v\nscriptGet\n%+v", touched, got)
			}
		})
	}
}

// BenchmarkTouchScripts reports the server's time per call (INFO
// commandstats) of scriptTouch and scriptGet sliding a session with a
// user and five values on every call:
//
//	go test -run '^$' -bench TouchScripts ./session/
func BenchmarkTouchScripts(b *testing.B) {
	ctx := context.Background()
	srv := redistest.Start(b) // its own server: commandstats are the benchmark's alone
	rdb := srv.Client(b)
	st, err := New(rdb, Options{Prefix: "bench:", TouchInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s, err := st.Create(ctx, "bench-user", map[string]any{
		"user_id": 4242, "name": "Alice Example", "role": "editor",
		"csrf": strings.Repeat("c", 43), "prefs": strings.Repeat("p", 200),
	}, CreateOptions{IP: "192.0.2.1", UserAgent: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	p, _ := parseToken(st.opts.Prefix, s.ID())
	for _, sc := range []struct {
		name   string
		script retry.Script
	}{{"touch", scriptTouch}, {"get", scriptGet}} {
		b.Run(sc.name, func(b *testing.B) {
			if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := sc.script.RunRepeatable(ctx, rdb, []string{p.key, st.indexKey(p.tag)}, 0, p.handle, int64(0), st.opts.IdleTimeout.Milliseconds()).Err(); err != nil {
					b.Fatal(err)
				}
			}
			info, err := rdb.Info(ctx, "commandstats").Result()
			if err != nil {
				b.Fatal(err)
			}
			for line := range strings.Lines(info) {
				if v, ok := strings.CutPrefix(line, "cmdstat_evalsha:"); ok {
					for f := range strings.SplitSeq(strings.TrimSpace(v), ",") {
						if us, ok := strings.CutPrefix(f, "usec_per_call="); ok {
							var x float64
							fmt.Sscan(us, &x)
							b.ReportMetric(x, "server-µs/call")
						}
					}
				}
			}
		})
	}
}
