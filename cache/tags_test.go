package cache

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
)

// scanAll returns the keys matching pattern on every master of tp.
func scanAll(t *testing.T, ctx context.Context, tp topo, pattern string) []string {
	t.Helper()
	var out []string
	var mu sync.Mutex
	scan := func(ctx context.Context, n *redis.Client) error {
		it := n.Scan(ctx, 0, pattern, 1000).Iterator()
		for it.Next(ctx) {
			mu.Lock()
			out = append(out, it.Val())
			mu.Unlock()
		}
		return it.Err()
	}
	var err error
	if cc, ok := tp.rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, scan)
	} else {
		err = scan(ctx, tp.rdb.(*redis.Client))
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// InvalidateTags removes exactly the values of its tags, on every master,
// in two round trips to the tag's master (the bump, the mark's removal)
// and one per master holding them; hostile tag names are literal.
func TestTagInvalidation(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{})
		ty := NewTyped[int](c, nil)
		hostile := []string{"*", "{a}", "a*", "%41", "a b", "ä", "\x00\r\n", "}{"}
		for i := range 200 {
			k := "k" + strconv.Itoa(i)
			var tags []string
			if i%2 == 0 {
				tags = append(tags, "a")
			}
			if i%3 == 0 {
				tags = append(tags, "b")
			}
			tags = append(tags, hostile[i%len(hostile)])
			if err := c.SetTagged(ctx, k, []byte(k), time.Minute, tags...); err != nil {
				t.Fatal(err)
			}
		}
		if err := ty.SetTagged(ctx, "typed", 7, time.Minute, "a"); err != nil {
			t.Fatal(err)
		}
		if err := c.Set(ctx, "untagged", []byte("u"), time.Minute); err != nil {
			t.Fatal(err)
		}
		// A write with one tag: the epoch read, then the write script.
		tp.cnt.reset()
		if err := c.SetTagged(ctx, "one", []byte("1"), time.Minute, "c"); err != nil {
			t.Fatal(err)
		}
		if cmds, trips, _, _ := tp.cnt.snapshot(); cmds != 2 || trips != 2 {
			t.Fatalf("SetTagged: %d commands in %d round trips, want 2 in 2", cmds, trips)
		}

		slots := map[int]bool{}
		for i := 0; i < 200; i += 2 {
			s, _ := c.tagSlot(c.key("k" + strconv.Itoa(i)))
			slots[s] = true
		}
		s, _ := c.tagSlot(c.key("typed"))
		slots[s] = true
		tp.cnt.reset()
		n, err := c.InvalidateTags(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if n != 101 {
			t.Fatalf("removed %d, want 101", n)
		}
		cmds, trips, _, _ := tp.cnt.snapshot()
		// The bump, one purge per slot, the mark's removal.
		if tp.cluster {
			if cmds != 2+len(slots) || trips != 2+tp.masters {
				t.Fatalf("InvalidateTags: %d commands in %d round trips, want %d in %d", cmds, trips, 2+len(slots), 2+tp.masters)
			}
		} else if cmds != 3 || trips != 3 {
			t.Fatalf("InvalidateTags: %d commands in %d round trips, want 3 in 3", cmds, trips)
		}
		got, err := c.MGet(ctx, append(manyKeys("k", 200), "untagged", "one"))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 200 {
			k := "k" + strconv.Itoa(i)
			if _, ok := got[k]; ok == (i%2 == 0) {
				t.Fatalf("%s present = %v after invalidating a", k, ok)
			}
		}
		if got["untagged"] == nil || got["one"] == nil {
			t.Fatal("a value without tag a was removed")
		}
		if _, hit, _ := ty.Get(ctx, "typed"); hit {
			t.Fatal("typed value of tag a survived")
		}
		// Each hostile tag removes its own values alone.
		for j, h := range hostile {
			n, err := c.InvalidateTags(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			for i := 1; i < 200; i += 2 {
				if i%len(hostile) == j {
					want++
				}
			}
			if n != want {
				t.Fatalf("tag %q removed %d, want %d", h, n, want)
			}
		}
		// MSetTagged: the epochs in one round trip, the values in one per
		// master; one invalidation removes them all.
		items := make(map[string][]byte)
		slots = map[int]bool{}
		for _, k := range manyKeys("m", 100) {
			items[k] = []byte(k)
			s, _ := c.tagSlot(c.key(k))
			slots[s] = true
		}
		tp.cnt.reset()
		if err := c.MSetTagged(ctx, items, time.Minute, "m", "m2"); err != nil {
			t.Fatal(err)
		}
		metaNodes := 1 // the masters of the two tags' meta keys
		if cc, ok := tp.rdb.(*redis.ClusterClient); ok {
			n1, err1 := cc.MasterForKey(ctx, c.tagMeta("m"))
			n2, err2 := cc.MasterForKey(ctx, c.tagMeta("m2"))
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			if n1.Options().Addr != n2.Options().Addr {
				metaNodes = 2
			}
		}
		if cmds, trips, _, _ := tp.cnt.snapshot(); cmds != 2+100 || trips != metaNodes+tp.masters {
			t.Fatalf("MSetTagged: %d commands in %d round trips, want %d in %d", cmds, trips, 2+100, metaNodes+tp.masters)
		}
		if err := NewTyped[string](c, nil).MSetTagged(ctx, map[string]string{"ts": "x"}, time.Minute, "m2"); err != nil {
			t.Fatal(err)
		}
		if n, err := c.InvalidateTags(ctx, "m2"); n != 101 || err != nil {
			t.Fatalf("InvalidateTags(m2) = %d, %v; want 101", n, err)
		}
		if n, err := c.InvalidateTags(ctx, "m"); n != 0 || err != nil {
			t.Fatalf("InvalidateTags(m) after m2 = %d, %v; want 0", n, err)
		}
		if n, err := c.InvalidateTags(ctx, "never-used"); n != 0 || err != nil {
			t.Fatalf("unknown tag: %d, %v", n, err)
		}
		if _, err := c.InvalidateTags(ctx, ""); err == nil {
			t.Fatal("empty tag accepted")
		}
		if err := c.SetTagged(ctx, "x", nil, time.Minute, ""); err == nil {
			t.Fatal("empty tag accepted")
		}
	})
}

// The race, step by step: a write that read its tag's epoch before an
// invalidation and stores after it returned is refused; a write after it
// is stored. Then writers and invalidations run concurrently: at the end no
// value remains whose write returned before the last invalidation was
// called (writes and invalidations are linearizable).
func TestTagInvalidationRace(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{})
		if err := c.SetTagged(ctx, "seed", []byte("s"), time.Minute, "r"); err != nil {
			t.Fatal(err)
		}
		// The write's first step, by hand: register and read the epoch.
		rk := c.key("late")
		slot, _ := c.tagSlot(rk)
		epochs, ok, err := c.registerTags(ctx, []string{"r"}, []any{slot}, 60000)
		if err != nil || !ok {
			t.Fatalf("register: %v, %v", ok, err)
		}
		if _, err := c.InvalidateTags(ctx, "r"); err != nil {
			t.Fatal(err)
		}
		b, _ := c.encode(codecRaw, []byte("late"), 0, false)
		w := c.writeTagged(rk, slot, []string{"r"}, epochs, nil, b, 60000, time.Now().UnixMilli())
		res, err := w.s.Run(ctx, tp.rdb, w.keys, w.args...).Int()
		if err != nil || res != 2 {
			t.Fatalf("write carrying the old epoch: %d, %v; want 2, refused", res, err)
		}
		if _, hit, _ := c.Get(ctx, "late"); hit {
			t.Fatal("a write that began before the invalidation is readable after it")
		}
		if err := c.SetTagged(ctx, "late", []byte("new"), time.Minute, "r"); err != nil {
			t.Fatal(err)
		}
		if v, _, _ := c.Get(ctx, "late"); string(v) != "new" {
			t.Fatalf("a write after the invalidation: %q", v)
		}

		// Concurrent: each write's value names it; done records the
		// generation in which it returned.
		var gen atomic.Int64
		var done sync.Map
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					k := fmt.Sprintf("w%d-%d", w, i%50)
					id := fmt.Sprintf("w%d-%d", w, i)
					if err := c.SetTagged(ctx, k, []byte(id), time.Minute, "r"); err != nil {
						t.Error(err)
						return
					}
					done.Store(id, gen.Load())
				}
			})
		}
		for range 20 {
			gen.Add(1)
			if _, err := c.InvalidateTags(ctx, "r"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond) // let writes land between invalidations
		}
		last := gen.Load()
		close(stop)
		wg.Wait()
		var keys []string
		for w := range 8 {
			for i := range 50 {
				keys = append(keys, fmt.Sprintf("w%d-%d", w, i))
			}
		}
		got, err := c.MGet(ctx, keys)
		if err != nil {
			t.Fatal(err)
		}
		assertWrittenSince(t, got, &done, last, "returned")
	})
}

// 10,000 expired tagged values (written by SetTagged, GetOrSetTagged and
// GetOrSetManyTagged) and an invalidation among them leave no tag key
// behind: no meta, index, floor or mark.
func TestTagIndexesExpire(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		// A load's registration covers LeaseTTL beyond its value's TTL,
		// and a floor lives LeaseTTL+LoadTimeout: short here.
		c := newCache(t, tp.rdb, Options{LoadTimeout: 100 * time.Millisecond, LeaseTTL: 100 * time.Millisecond})
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for w := range 64 {
			wg.Go(func() {
				for i := w; i < 10_000; i += 64 {
					tags := []string{"all", "t" + strconv.Itoa(i%7)}
					k := "e" + strconv.Itoa(i)
					var err error
					switch i % 3 {
					case 0:
						err = c.SetTagged(ctx, k, []byte("v"), 300*time.Millisecond, tags...)
					case 1:
						_, err = c.GetOrSetTagged(ctx, k, 300*time.Millisecond, func(context.Context) ([]byte, error) { return []byte("v"), nil }, tags...)
					default:
						_, err = c.GetOrSetManyTagged(ctx, []string{k, k + "b"}, 300*time.Millisecond, func(_ context.Context, keys []string) (map[string][]byte, error) {
							return map[string][]byte{k: []byte("v"), k + "b": []byte("v")}, nil
						}, tags...)
					}
					if err != nil {
						errs <- err
						return
					}
					if i == 5000 {
						if _, err := c.InvalidateTags(ctx, "t3"); err != nil {
							errs <- err
							return
						}
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		pattern := c.tagBase() + "#tag*"
		if len(scanAll(t, ctx, tp, pattern)) == 0 {
			t.Fatal("no tag keys were written")
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			left := scanAll(t, ctx, tp, pattern)
			if len(left) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d tag keys outlive their values, e.g. %q (PTTL %v)", len(left), left[0], tp.rdb.PTTL(ctx, left[0]).Val())
			}
		}
		// Every index's TTL covers its members: none expired early above
		// (SetTagged raised it), and a longer write raises it again.
		if err := c.SetTagged(ctx, "long", []byte("v"), time.Hour, "all"); err != nil {
			t.Fatal(err)
		}
		if err := c.SetTagged(ctx, "short", []byte("v"), time.Second, "all"); err != nil {
			t.Fatal(err)
		}
		slot, _ := c.tagSlot(c.key("long"))
		if p := tp.rdb.PTTL(ctx, c.tagIndex(slot, "all")).Val(); p < 59*time.Minute {
			t.Fatalf("index TTL %v below its longest member's", p)
		}
		if p := tp.rdb.PTTL(ctx, c.tagMeta("all")).Val(); p < 59*time.Minute {
			t.Fatalf("meta TTL %v below its longest member's", p)
		}
	})
}

// decodeTag inverts encodeTag.
func decodeTag(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String(), true
}

// FuzzEncodeTag: an encoded tag has no brace, glob or control byte, is
// ASCII, and decodes back to the tag (so distinct tags stay distinct).
func FuzzEncodeTag(f *testing.F) {
	for _, s := range []string{"a", "*", "{x}", "%41", "a b", "ä", "\x00", "}{", "a?[b]\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tag string) {
		e := encodeTag(tag)
		if strings.ContainsAny(e, "{}*?[]\\ ") || !utf8.ValidString(e) {
			t.Fatalf("encodeTag(%q) = %q", tag, e)
		}
		for i := 0; i < len(e); i++ {
			if e[i] < 0x21 || e[i] > 0x7e {
				t.Fatalf("encodeTag(%q) = %q has byte %#x", tag, e, e[i])
			}
		}
		if d, ok := decodeTag(e); !ok || d != tag {
			t.Fatalf("decode(encodeTag(%q)) = %q, %v", tag, d, ok)
		}
	})
}

// BenchmarkInvalidateTag removes 10,000 tagged values from a namespace of
// 100,000 keys (1,000,000 with CACHE_TAG_BENCH_KEYS=1000000) on a
// standalone server: InvalidateTags of their tag against Clear of a
// pattern matching the same keys, which SCANs the whole keyspace. Each
// iteration writes the 10,000 values again with the timer stopped. Run:
//
//	go test -run '^$' -bench InvalidateTag -benchtime 5x ./cache/
//	CACHE_TAG_BENCH_KEYS=1000000 go test -run '^$' -bench InvalidateTag -benchtime 5x -timeout 30m ./cache/
func BenchmarkInvalidateTag(b *testing.B) {
	total := 100_000
	if s := os.Getenv("CACHE_TAG_BENCH_KEYS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 10_000 {
			b.Fatalf("CACHE_TAG_BENCH_KEYS=%q: want a number of at least 10000", s)
		}
		total = n
	}
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	c := newCache(b, rdb, Options{})
	ctx := context.Background()
	// The untagged rest of the keyspace, in pipelined MSETs.
	for base := 0; base < total-10_000; base += 10_000 {
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := base; i < min(base+10_000, total-10_000); i += 100 {
				args := make([]any, 0, 200)
				for j := i; j < min(i+100, total-10_000); j++ {
					args = append(args, c.key("other:"+strconv.Itoa(j)), "v")
				}
				p.MSet(ctx, args...)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	items := make(map[string][]byte, 10_000)
	for i := range 10_000 {
		items["tagged:"+strconv.Itoa(i)] = []byte("v")
	}
	fill := func(b *testing.B) {
		b.StopTimer()
		if err := c.MSetTagged(ctx, items, time.Hour, "t"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.Run("InvalidateTags", func(b *testing.B) {
		for range b.N {
			fill(b)
			if n, err := c.InvalidateTags(ctx, "t"); err != nil || n != 10_000 {
				b.Fatalf("removed %d, %v", n, err)
			}
		}
	})
	b.Run("ClearPattern", func(b *testing.B) {
		for range b.N {
			fill(b)
			if n, err := c.Clear(ctx, Prefix("tagged:"), ClearOptions{}); err != nil || n != 10_000 {
				b.Fatalf("removed %d, %v", n, err)
			}
		}
	})
}

// A tag with more values in a slot than UnlinkBatch is purged in rounds of
// at most UnlinkBatch values per script, until its index is empty.
func TestInvalidateTagsInBatches(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{UnlinkBatch: 10})
		items := make(map[string][]byte)
		for _, k := range manyKeys("{same}", 95) { // one slot on Cluster too
			items[k] = []byte("v")
		}
		if err := c.MSetTagged(ctx, items, time.Minute, "x"); err != nil {
			t.Fatal(err)
		}
		tp.cnt.reset()
		n, err := c.InvalidateTags(ctx, "x")
		if err != nil || n != 95 {
			t.Fatalf("InvalidateTags = %d, %v; want 95", n, err)
		}
		if cmds, trips, _, _ := tp.cnt.snapshot(); cmds != 12 || trips != 12 {
			t.Fatalf("%d commands in %d round trips, want 12 in 12: a bump, 10 purges of at most 10, the mark's removal", cmds, trips)
		}
		if left := scanAll(t, ctx, tp, c.tagBase()+"#tagi*"); len(left) != 0 {
			t.Fatalf("index keys left: %q", left)
		}
		if got, _ := c.MGet(ctx, manyKeys("{same}", 95)); len(got) != 0 {
			t.Fatalf("%d values left", len(got))
		}
	})
}

// assertWrittenSince fails when a value in got comes from a write that done
// (value -> the generation in which the write returned or registered, as
// what says) does not know, or that came before generation last, the
// invalidation's.
func assertWrittenSince(t *testing.T, got map[string][]byte, done *sync.Map, last int64, what string) {
	t.Helper()
	for k, v := range got {
		g, ok := done.Load(string(v))
		if !ok {
			t.Fatalf("%s holds %q, a write that never %s", k, v, what)
		}
		if g.(int64) < last {
			t.Fatalf("%s holds %q, which %s in generation %d, before invalidation %d", k, v, what, g, last)
		}
	}
}
