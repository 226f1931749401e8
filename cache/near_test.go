package cache

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/rediskit/rediskit/internal/redistest"
)

// nearFixture is a Typed[string] with a near tier, the Cache under it, the
// trackers it started, and an "outside" client that stands for any other
// writer (another process, redis-cli).
type nearFixture struct {
	c       *Cache
	typed   *Typed[string]
	outside redis.UniversalClient

	mu       sync.Mutex
	trackers []*tracker
}

func newNearFixture(t *testing.T, rdb, outside redis.UniversalClient, nopt NearOptions) *nearFixture {
	t.Helper()
	f := &nearFixture{outside: outside}
	c, err := New(rdb, Options{Prefix: strings.TrimSuffix(redistest.Prefix(t), ":")})
	if err != nil {
		t.Fatal(err)
	}
	no, err := nopt.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	// The tracker hook must be in place before the first tracker starts.
	c.opt.Near = &no
	c.near, err = newNearWith(c.rdb, c.ns, &c.life, no, func(n *near) {
		n.onTracker = func(tr *tracker) {
			f.mu.Lock()
			f.trackers = append(f.trackers, tr)
			f.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	f.c, f.typed = c, NewTyped[string](c, nil)
	waitFor(t, "the near tier to serve", func() bool { return c.NearStats().Serving })
	return f
}

// value returns what Get returns for key, and whether it came from the
// near tier.
func (f *nearFixture) value(t *testing.T, key string) (string, bool, bool) {
	t.Helper()
	before := f.c.NearStats().Hits
	v, ok, err := f.typed.Get(ctxT(t), key)
	if err != nil {
		t.Fatal(err)
	}
	return v, ok, f.c.NearStats().Hits > before
}

// warm stores v under key and reads it until it is served locally.
func (f *nearFixture) warm(t *testing.T, key, v string) {
	t.Helper()
	if err := f.typed.Set(ctxT(t), key, v, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a local hit of "+key, func() bool {
		got, ok, local := f.value(t, key)
		return ok && got == v && local
	})
}

// stored returns the bytes a Typed[string] stores for v (header + JSON), so
// outside writers can write well-formed values.
func (f *nearFixture) stored(t *testing.T, v string) []byte {
	t.Helper()
	p, _ := JSONCodec{}.Marshal(v)
	b, err := f.c.encode(codecJSON, p, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *nearFixture) tracker(t *testing.T) *tracker {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.trackers) == 0 {
		t.Fatal("no tracker started")
	}
	return f.trackers[len(f.trackers)-1]
}

// forEachNearTopology runs f on every deployment of forEachTopology, with
// an outside client of its own.
func forEachNearTopology(t *testing.T, f func(t *testing.T, tp topo, outside redis.UniversalClient)) {
	forEachTopology(t, func(t *testing.T, tp topo) { f(t, tp, tp.client(t)) })
}

func TestNearHitIsLocalAndZeroCommands(t *testing.T) {
	forEachNearTopology(t, func(t *testing.T, tp topo, outside redis.UniversalClient) {
		f := newNearFixture(t, tp.rdb, outside, NearOptions{})
		f.warm(t, "k", "v1")
		tp.cnt.reset()
		for range 100 {
			if v, ok, local := f.value(t, "k"); !ok || v != "v1" || !local {
				t.Fatalf("Get = %q, %v, local %v", v, ok, local)
			}
		}
		if cmds, _, _, names := tp.cnt.snapshot(); cmds != 0 {
			t.Fatalf("near hits sent %d commands %v, want 0", cmds, names)
		}
		// GetOrSet is served locally too, without calling the loader.
		v, err := f.typed.GetOrSet(ctxT(t), "k", time.Minute, func(context.Context) (string, error) {
			t.Error("loader called on a near hit")
			return "", nil
		})
		if err != nil || v != "v1" {
			t.Fatalf("GetOrSet = %q, %v", v, err)
		}
		// A local write is read back at once (no wait for the invalidation).
		if err := f.typed.Set(ctxT(t), "k", "v2", 0); err != nil {
			t.Fatal(err)
		}
		if v, _, _ := f.value(t, "k"); v != "v2" {
			t.Fatalf("Get after own Set = %q, want v2", v)
		}
		st := f.c.NearStats()
		if st.Mode != NearTracking || st.Hits < 101 || st.Entries < 0 {
			t.Fatalf("NearStats = %+v", st)
		}
	})
}

func TestNearInvalidatedByOutsideWrites(t *testing.T) {
	forEachNearTopology(t, func(t *testing.T, tp topo, outside redis.UniversalClient) {
		ctx := ctxT(t)
		f := newNearFixture(t, tp.rdb, outside, NearOptions{})
		writes := []struct {
			name  string
			write func(t *testing.T, rk string, b []byte)
		}{
			{"go-redis SET", func(t *testing.T, rk string, b []byte) {
				if err := outside.Set(ctx, rk, b, 0).Err(); err != nil {
					t.Fatal(err)
				}
			}},
			{"Lua script", func(t *testing.T, rk string, b []byte) {
				err := outside.Eval(ctx, "redis.call('SET', KEYS[1], ARGV[1]) return 1", []string{rk}, b).Err()
				if err != nil {
					t.Fatal(err)
				}
			}},
			{"redis-cli SET", func(t *testing.T, rk string, b []byte) {
				cli, err := exec.LookPath("redis-cli")
				if err != nil {
					t.Skip("redis-cli not on PATH")
				}
				args := []string{"-p", strconv.Itoa(portOfKey(t, outside, rk)), "-x", "SET", rk}
				if tp.cluster {
					args = append([]string{"-c"}, args...)
				}
				cmd := exec.CommandContext(ctx, cli, args...)
				cmd.Stdin = bytes.NewReader(b)
				if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "OK") {
					t.Fatalf("redis-cli: %s %v", out, err)
				}
			}},
		}
		for i, w := range writes {
			t.Run(w.name, func(t *testing.T) {
				key := "w" + strconv.Itoa(i)
				f.warm(t, key, "old")
				inv := f.c.NearStats().Invalidations
				w.write(t, f.c.key(key), f.stored(t, "new"))
				waitFor(t, "the invalidation", func() bool { return f.c.NearStats().Invalidations > inv })
				// The old value has no expiry: only the invalidation can end
				// it. (The count alone could move on warm's own write, whose
				// invalidation may arrive after warm returned.)
				waitFor(t, "the new value after the outside write", func() bool {
					v, ok, _ := f.value(t, key)
					return v == "new" && ok
				})
			})
		}
		t.Run("expiry", func(t *testing.T) {
			// The value carries no soft expiry and no MaxStaleness is set:
			// only Redis's own expiry can remove the local copy.
			f.warm(t, "exp", "old")
			rk := f.c.key("exp")
			ttlSet := f.c.NearStats().Invalidations
			if err := outside.PExpire(ctx, rk, 200*time.Millisecond).Err(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the PEXPIRE invalidation", func() bool { return f.c.NearStats().Invalidations > ttlSet })
			f.warm(t, "exp-probe", "x") // unrelated key: the tier still serves
			if _, ok, _ := f.value(t, "exp"); !ok {
				t.Fatal("value gone before its expiry")
			}
			waitFor(t, "a local copy of exp", func() bool { _, _, local := f.value(t, "exp"); return local })
			inv := f.c.NearStats().Invalidations
			// Wait for Redis to expire the key (active expiry), without
			// touching it from the outside.
			waitFor(t, "the expiry invalidation", func() bool { return f.c.NearStats().Invalidations > inv })
			if v, ok, _ := f.value(t, "exp"); ok {
				t.Fatalf("expired value still served: %q", v)
			}
		})
	})
}

// portOfKey returns the port of the master serving rk.
func portOfKey(t *testing.T, rdb redis.UniversalClient, rk string) int {
	t.Helper()
	addr := ""
	switch r := rdb.(type) {
	case *redis.Client:
		// Ask the server: a failover client's Options().Addr names no server.
		cfg, err := r.ConfigGet(ctxT(t), "port").Result()
		if err != nil {
			t.Fatal(err)
		}
		addr = ":" + cfg["port"]
	case *redis.ClusterClient:
		n, err := r.MasterForKey(ctxT(t), rk)
		if err != nil {
			t.Fatal(err)
		}
		addr = n.Options().Addr
	}
	_, p, _ := strings.Cut(addr, ":")
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q", addr)
	}
	return port
}

// TestNearRefusedPublishDropsTheEntry: a value whose publish is refused,
// because something in its key's stripe changed since the read or write
// began (here a bump of the stripe, as an invalidation of another key of
// the stripe does), still removes the entry held for the key: a negative
// entry left there would answer "not found" for a key a GetOrSet has just
// stored, until the key's own invalidation arrived (TestNearNegativeEntries
// failed that way in one CI run).
func TestNearRefusedPublishDropsTheEntry(t *testing.T) {
	rdb := redistest.Shared(t).Client(t)
	f := newNearFixture(t, rdb, rdb, NearOptions{})
	ctx := ctxT(t)
	waitFor(t, "a negative entry", func() bool {
		_, _, _ = f.typed.Get(ctx, "gone")
		_, held := f.c.near.lookup("gone")
		return held
	})
	tok := f.c.near.begin("gone")
	f.c.near.stripe("gone").Add(1)
	f.c.near.publish("gone", tok, "loaded", 0, 6)
	if v, held := f.c.near.lookup("gone"); held {
		t.Fatalf("after a refused publish the near tier holds %v for the key; want nothing", v)
	}
}

// TestNearInFlightReadDoesNotPublishAfterInvalidation pauses a Get between
// the Redis reply and the local insert, writes the key from outside, waits
// until the invalidation has been received, then lets the Get finish: its
// (old) value must not be served locally afterwards.
func TestNearInFlightReadDoesNotPublishAfterInvalidation(t *testing.T) {
	forEachNearTopology(t, func(t *testing.T, tp topo, outside redis.UniversalClient) {
		ctx := ctxT(t)
		f := newNearFixture(t, tp.rdb, outside, NearOptions{})
		if err := f.typed.Set(ctx, "race", "old", 0); err != nil {
			t.Fatal(err)
		}
		reached, resume := make(chan struct{}), make(chan struct{})
		var once sync.Once
		f.c.near.beforePublish = func(key string) {
			if key == "race" {
				once.Do(func() { close(reached); <-resume })
			}
		}
		got := make(chan string, 1)
		go func() {
			v, _, err := f.typed.Get(ctx, "race")
			if err != nil {
				t.Error(err)
			}
			got <- v
		}()
		<-reached // the Get has its reply ("old") and has not inserted it yet
		inv := f.c.NearStats().Invalidations
		if err := outside.Set(ctx, f.c.key("race"), f.stored(t, "new"), 0).Err(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the invalidation", func() bool { return f.c.NearStats().Invalidations > inv })
		close(resume)
		if v := <-got; v != "old" {
			t.Fatalf("in-flight Get = %q, want old (read before the write)", v)
		}
		f.c.near.beforePublish = nil
		if v, _, local := f.value(t, "race"); v != "new" || local {
			t.Fatalf("after the race: Get = %q, local %v; want new from Redis", v, local)
		}
		if n := f.c.NearStats().Entries; n > 1 {
			t.Fatalf("%d local entries", n)
		}
	})
}

func TestNearFlushOnKilledTrackingConnectionAndRearm(t *testing.T) {
	forEachNearTopology(t, func(t *testing.T, tp topo, outside redis.UniversalClient) {
		ctx := ctxT(t)
		f := newNearFixture(t, tp.rdb, outside, NearOptions{})
		f.warm(t, "k", "v1")
		tr := f.tracker(t)
		id := tr.id.Load()
		flushes := f.c.NearStats().Flushes
		// Kill the tracking connection from another client; on Cluster, on
		// the master that tracker follows (elsewhere the outside client
		// reaches the one master: a failover client's tracker has no plain
		// address).
		killer := outside
		if tp.cluster {
			kc := redis.NewClient(&redis.Options{Addr: tr.rdb.Options().Addr})
			defer kc.Close()
			killer = kc
		}
		if err := killer.ClientKillByFilter(ctx, "ID", strconv.FormatInt(id, 10)).Err(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the flush", func() bool { return f.c.NearStats().Flushes > flushes })
		waitFor(t, "tracking re-armed on a new connection", func() bool {
			return tr.id.Load() != id && f.c.NearStats().Serving
		})
		// Re-armed: an outside write reaches us again.
		f.warm(t, "k", "v1")
		inv := f.c.NearStats().Invalidations
		if err := outside.Set(ctx, f.c.key("k"), f.stored(t, "v2"), 0).Err(); err != nil {
			t.Fatal(err)
		}
		// The local v1 has no expiry: only the invalidation can end it. (The
		// count alone could move on warm's own write, whose invalidation
		// may arrive after warm returned.)
		waitFor(t, "the invalidation", func() bool { return f.c.NearStats().Invalidations > inv })
		waitFor(t, "v2 after re-arm and outside write", func() bool {
			v, _, _ := f.value(t, "k")
			return v == "v2"
		})
	})
}

func TestNearFlushWhenProxyCutsAndWhileServerPaused(t *testing.T) {
	srv := redistest.Start(t)
	proxy := redistest.NewProxy(t, srv.Addr)
	rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	outside := srv.Client(t)
	f := newNearFixture(t, rdb, outside, NearOptions{HealthInterval: 200 * time.Millisecond})
	f.warm(t, "k", "v1")
	flushes := f.c.NearStats().Flushes
	proxy.CutAll()
	waitFor(t, "the flush", func() bool { return f.c.NearStats().Flushes > flushes })
	waitFor(t, "re-armed", func() bool { return f.c.NearStats().Serving })
	f.warm(t, "k", "v1")
	// A black hole: the connection stays open but nothing comes back. The
	// health ping notices it, flushes and stops serving.
	flushes = f.c.NearStats().Flushes
	proxy.SetBlackHole(true)
	waitFor(t, "the flush of a silent connection", func() bool { return f.c.NearStats().Flushes > flushes })
	if f.c.NearStats().Serving {
		t.Fatal("serving while the tracking connection is silent")
	}
	proxy.SetBlackHole(false)
	proxy.CutAll()
	waitFor(t, "re-armed after the black hole", func() bool { return f.c.NearStats().Serving })
}

func TestNearFlushAllFlushesAndRearms(t *testing.T) {
	srv := redistest.Start(t)
	f := newNearFixture(t, srv.Client(t), srv.Client(t), NearOptions{})
	f.warm(t, "a", "1")
	f.warm(t, "b", "2")
	flushes := f.c.NearStats().Flushes
	if err := f.outside.FlushAll(ctxT(t)).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the flush", func() bool { return f.c.NearStats().Flushes > flushes })
	if _, ok, _ := f.value(t, "a"); ok {
		t.Fatal("value served after FLUSHALL")
	}
	waitFor(t, "re-armed", func() bool { return f.c.NearStats().Serving })
	f.warm(t, "a", "3")
}

func TestNearRearmAfterSentinelFailover(t *testing.T) {
	s := redistest.StartSentinel(t)
	rdb := s.Client(t)
	outside := s.Client(t)
	f := newNearFixture(t, rdb, outside, NearOptions{})
	f.warm(t, "k", "v1")
	flushes := f.c.NearStats().Flushes
	s.Failover(t)
	waitFor(t, "the flush at failover", func() bool { return f.c.NearStats().Flushes > flushes })
	waitFor(t, "re-armed on the new master", func() bool { return f.c.NearStats().Serving })
	f.warm(t, "k", "v1")
	inv := f.c.NearStats().Invalidations
	ctx := ctxT(t)
	waitFor(t, "an outside write on the new master", func() bool {
		return outside.Set(ctx, f.c.key("k"), f.stored(t, "v2"), 0).Err() == nil
	})
	waitFor(t, "the invalidation from the new master", func() bool { return f.c.NearStats().Invalidations > inv })
	if v, _, _ := f.value(t, "k"); v != "v2" {
		t.Fatalf("Get = %q after failover and outside write, want v2", v)
	}
}

func TestNearFollowsClusterMasterReplacement(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster failover takes seconds")
	}
	cl := redistest.StartCluster(t, redistest.WithReplicas(1))
	rdb := cl.Client(t)
	outside := cl.Client(t)
	f := newNearFixture(t, rdb, outside, NearOptions{TopologyInterval: 200 * time.Millisecond})
	ctx := ctxT(t)
	// A key on the master that will die.
	victim := cl.Masters[0]
	key := ""
	for i := 0; key == ""; i++ {
		k := "k" + strconv.Itoa(i)
		if n, err := rdb.MasterForKey(ctx, f.c.key(k)); err == nil && n.Options().Addr == victim.Addr {
			key = k
		}
	}
	f.warm(t, key, "v1")
	flushes := f.c.NearStats().Flushes
	victim.Kill()
	waitFor(t, "the flush", func() bool { return f.c.NearStats().Flushes > flushes })
	if v, st := nearValue[string](f.c.near, key, true); st != nearNone {
		t.Fatalf("served %q (state %d) locally with a master down", v, st)
	}
	// Promote the victim's replica. (Redis would do it by itself after the
	// node timeout, given a majority; TAKEOVER makes the test independent
	// of the election.)
	nodes, err := cl.Masters[1].Do(ctx, "CLUSTER", "NODES")
	if err != nil {
		t.Fatal(err)
	}
	victimID, replicaAddr := "", ""
	for line := range strings.SplitSeq(nodes.(string), "\n") {
		if fs := strings.Fields(line); len(fs) > 3 && strings.HasPrefix(fs[1], victim.Addr+"@") {
			victimID = fs[0]
		}
	}
	for line := range strings.SplitSeq(nodes.(string), "\n") {
		if fs := strings.Fields(line); len(fs) > 3 && fs[3] == victimID {
			replicaAddr, _, _ = strings.Cut(fs[1], "@")
		}
	}
	if victimID == "" || replicaAddr == "" {
		t.Fatalf("no replica of %s in\n%s", victim.Addr, nodes)
	}
	promoted := redis.NewClient(&redis.Options{Addr: replicaAddr})
	defer promoted.Close()
	if err := promoted.Do(ctx, "CLUSTER", "FAILOVER", "TAKEOVER").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replica promoted", func() bool {
		role, err := promoted.Do(ctx, "ROLE").Slice()
		return err == nil && len(role) > 0 && role[0] == "master"
	})
	cl.WaitOK(t)
	waitFor(t, "serving again with the promoted master tracked", func() bool { return f.c.NearStats().Serving })
	waitFor(t, "the client routing to the promoted master", func() bool {
		return f.typed.Set(ctx, key, "v1", 0) == nil
	})
	f.warm(t, key, "v1")
	inv := f.c.NearStats().Invalidations
	waitFor(t, "an outside write", func() bool {
		return outside.Set(ctx, f.c.key(key), f.stored(t, "v2"), 0).Err() == nil
	})
	waitFor(t, "the invalidation from the promoted master", func() bool { return f.c.NearStats().Invalidations > inv })
	if v, _, _ := f.value(t, key); v != "v2" {
		t.Fatalf("Get = %q, want v2", v)
	}
}

// logCounter counts slog records.
type logCounter struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}
func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCounter) WithGroup(string) slog.Handler      { return l }
func (l *logCounter) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.msgs...)
}

// TestNearOffWhereServerCannotTrack uses an ACL user without CLIENT
// TRACKING: the tier turns itself off with one log line, or serves in
// TTL-only mode with MaxStaleness.
func TestNearOffWhereServerCannotTrack(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client(t)
	ctx := ctxT(t)
	if err := admin.Do(ctx, "ACL", "SETUSER", "notrack", "on", ">pw", "~*", "&*", "+@all", "-client|tracking").Err(); err != nil {
		t.Fatal(err)
	}
	for _, ttl := range []time.Duration{0, 300 * time.Millisecond} {
		t.Run("MaxStaleness="+ttl.String(), func(t *testing.T) {
			rdb := srv.Client(t, func(o *redis.Options) { o.Username, o.Password = "notrack", "pw" })
			logs := &logCounter{}
			c, err := New(rdb, Options{Prefix: strings.TrimSuffix(redistest.Prefix(t), ":"),
				Near: &NearOptions{MaxStaleness: ttl, Logger: slog.New(logs)}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			want := NearDisabled
			if ttl > 0 {
				want = NearTTLOnly
			}
			waitFor(t, "the mode "+want.String(), func() bool { return c.NearStats().Mode == want })
			typed := NewTyped[string](c, nil)
			if err := typed.Set(ctx, "k", "v", 0); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if v, ok, err := typed.Get(ctx, "k"); err != nil || !ok || v != "v" {
					t.Fatalf("Get = %q, %v, %v", v, ok, err)
				}
			}
			st := c.NearStats()
			if ttl == 0 && (st.Hits != 0 || st.Serving) {
				t.Fatalf("disabled tier served: %+v", st)
			}
			if ttl > 0 {
				if st.Hits != 2 {
					t.Fatalf("TTL-only: %d local hits, want 2", st.Hits)
				}
				// Bounded staleness: an outside write is seen after MaxStaleness.
				if err := admin.Set(ctx, c.key("k"), mustEncode(t, c, "v2"), 0).Err(); err != nil {
					t.Fatal(err)
				}
				waitFor(t, "the local copy to expire", func() bool {
					v, _, _ := typed.Get(ctx, "k")
					return v == "v2"
				})
			}
			time.Sleep(100 * time.Millisecond) // a second log line would come now
			if l := logs.lines(); len(l) != 1 {
				t.Fatalf("log lines %q, want exactly 1", l)
			}
		})
	}
}

func mustEncode(t *testing.T, c *Cache, v string) []byte {
	p, _ := JSONCodec{}.Marshal(v)
	b, err := c.encode(codecJSON, p, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNearBoundsEntriesAndBytes(t *testing.T) {
	srv := redistest.Shared(t)
	f := newNearFixture(t, srv.Client(t), srv.Client(t), NearOptions{MaxEntries: 50, MaxBytes: 1 << 20})
	ctx := ctxT(t)
	for i := range 500 {
		k := "k" + strconv.Itoa(i)
		if err := f.typed.Set(ctx, k, "v", 0); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.typed.Get(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	f.c.near.lru.CleanUp()
	st := f.c.NearStats()
	if st.Entries > 50 || st.Evictions == 0 || st.Bytes > 1<<20 {
		t.Fatalf("NearStats = %+v; want ≤ 50 entries, evictions, ≤ 1 MiB", st)
	}
	// Bytes bound with large values: 1 MiB / (10 KiB + overhead) < 100.
	big := strings.Repeat("x", 10<<10)
	for i := range 300 {
		k := "big" + strconv.Itoa(i)
		if err := f.typed.Set(ctx, k, big, 0); err != nil {
			t.Fatal(err)
		}
		_, _, _ = f.typed.Get(ctx, k)
	}
	f.c.near.lru.CleanUp()
	if st := f.c.NearStats(); st.Bytes > 1<<20 {
		t.Fatalf("Bytes %d over MaxBytes", st.Bytes)
	}
}

func TestNearCloseStopsEveryGoroutine(t *testing.T) {
	forEachNearTopology(t, func(t *testing.T, tp topo, outside redis.UniversalClient) {
		ctx := ctxT(t)
		_ = tp.rdb.Ping(ctx) // the client's own connections are not ours
		ignore := goleak.IgnoreCurrent()
		c, err := New(tp.rdb, Options{Prefix: strings.TrimSuffix(redistest.Prefix(t), ":"), Near: &NearOptions{}})
		if err != nil {
			t.Fatal(err)
		}
		typed := NewTyped[string](c, nil)
		waitFor(t, "serving", func() bool { return c.NearStats().Serving })
		for i := range 100 {
			_ = typed.Set(ctx, fmt.Sprint(i), "v", 0)
			_, _, _ = typed.Get(ctx, fmt.Sprint(i))
		}
		_ = c.Close()
		_ = c.Close() // idempotent
		// The client's AutoPipeliner, which go-redis keeps per client and
		// stops when the client closes, is the client's, like its
		// connections: a lone caller's commands start it to time that path
		// (internal/pipeline, TestLonePath).
		goleak.VerifyNone(t, ignore, goleak.IgnoreTopFunction("github.com/redis/go-redis/v9.(*apShard).flusher"))
	})
}

const nearHelperEnv = "CACHE_NEAR_HELPER"

// freshnessBound is how long after a write acknowledged by Redis another
// process may still serve the old value. Measured on loopback (bench/NEAR.md)
// the p99 is well under a millisecond; the bound is generous because this is
// a correctness test, not a speed test.
const freshnessBound = time.Second

// TestNearTwoProcesses: this process writes, a helper process (the test
// binary re-executed) reads through its own near tier. After every
// acknowledged write, the helper must stop serving the old value within
// freshnessBound; before each write it is checked to serve the old value
// from its near tier, so the test exercises an invalidation every time.
func TestNearTwoProcesses(t *testing.T) {
	forEachNearTopology(t, func(t *testing.T, tp topo, outside redis.UniversalClient) {
		ctx := ctxT(t)
		prefix := strings.TrimSuffix(redistest.Prefix(t), ":")
		c := newCache(t, tp.rdb, Options{Prefix: prefix})
		typed := NewTyped[string](c, nil)
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestNearHelperProcess$", "-test.count=1")
		cmd.Env = append(append(os.Environ(), tp.helperEnv()...), helperEnv+"=1", nearHelperEnv+"=1",
			"CACHE_HELPER_PREFIX="+prefix)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = stdin.Close()
			_ = cmd.Wait()
		}()
		out := bufio.NewScanner(stdout)
		// ask sends a request ("get" by default, or "get KEY", "mget KEY").
		ask := func(req ...string) (string, bool) {
			line := "get"
			if len(req) > 0 {
				line = strings.Join(req, " ")
			}
			if _, err := fmt.Fprintln(stdin, line); err != nil {
				t.Fatal(err)
			}
			if !out.Scan() {
				t.Fatalf("helper gone: %v", out.Err())
			}
			v, local, _ := strings.Cut(out.Text(), " ")
			return v, local == "local"
		}
		if err := typed.Set(ctx, "fresh", "v0", 0); err != nil {
			t.Fatal(err)
		}
		var worst time.Duration
		for i := range 20 {
			old, next := "v"+strconv.Itoa(i), "v"+strconv.Itoa(i+1)
			waitFor(t, "the helper serving "+old+" locally", func() bool {
				v, local := ask()
				return v == old && local
			})
			if err := typed.Set(ctx, "fresh", next, 0); err != nil {
				t.Fatal(err)
			}
			acked := time.Now()
			for {
				v, _ := ask()
				if v == next {
					worst = max(worst, time.Since(acked))
					break
				}
				if time.Since(acked) > freshnessBound {
					t.Fatalf("trial %d: the helper still served %q %v after the write of %q was acknowledged", i, v, freshnessBound, next)
				}
			}
		}
		t.Logf("slowest of 20 trials: the other process served the new value %v after the ack", worst)

		// The same bound for an entry filled by MGet and for a negative
		// entry (a key read while missing), each served locally before the
		// write.
		for _, tc := range []struct{ what, op, key, old string }{
			{"an MGet-filled entry", "mget", "batch", "b0"},
			{"a negative entry", "get", "absent", ""},
		} {
			if tc.old != "" {
				if err := typed.Set(ctx, tc.key, tc.old, 0); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "the helper serving "+tc.what+" locally", func() bool {
				v, local := ask(tc.op, tc.key)
				return v == tc.old && local
			})
			if err := typed.Set(ctx, tc.key, "new", 0); err != nil {
				t.Fatal(err)
			}
			acked := time.Now()
			for {
				if v, _ := ask(tc.op, tc.key); v == "new" {
					break
				}
				if time.Since(acked) > freshnessBound {
					t.Fatalf("the helper still served %s of %q %v after the write was acknowledged", tc.what, tc.key, freshnessBound)
				}
			}
		}
	})
}

// TestNearHelperProcess is the reader of TestNearTwoProcesses: for each
// line on stdin ("get", "get KEY", "mget KEY") it prints the value read
// ("fresh" for a bare "get"; empty when there is none) and whether it came
// from the near tier (a value or a negative entry).
func TestNearHelperProcess(t *testing.T) {
	if os.Getenv(nearHelperEnv) == "" {
		t.Skip("helper process for TestNearTwoProcesses")
	}
	rdb := helperClient(0)
	defer rdb.Close()
	c, err := New(rdb, Options{Prefix: os.Getenv("CACHE_HELPER_PREFIX"), Near: &NearOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	typed := NewTyped[string](c, nil)
	ctx := context.Background()
	in := bufio.NewScanner(os.Stdin)
	local := func() uint64 { st := c.NearStats(); return st.Hits + st.NegativeHits }
	for in.Scan() {
		// "get" reads "fresh"; "get KEY" and "mget KEY" read KEY with Get
		// and MGet.
		op, key, _ := strings.Cut(in.Text(), " ")
		if key == "" {
			key = "fresh"
		}
		before := local()
		var v string
		var err error
		if op == "mget" {
			var m map[string]string
			m, err = typed.MGet(ctx, []string{key})
			v = m[key]
		} else {
			v, _, err = typed.Get(ctx, key)
		}
		if err != nil {
			v = "error:" + strings.ReplaceAll(err.Error(), " ", "_")
		}
		where := "redis"
		if local() > before {
			where = "local"
		}
		fmt.Println(v, where)
	}
}
