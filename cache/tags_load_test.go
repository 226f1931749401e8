package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clearHook runs before() ahead of every pipeline that removes an
// invalidation's marks: InvalidateTags' last step, after its purges.
type clearHook struct{ before func() }

func (h clearHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h clearHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h clearHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if a := c.Args(); c.Name() == "zrem" && len(a) > 1 && strings.Contains(fmt.Sprint(a[1]), "#tagm{") {
				h.before()
				break
			}
		}
		return next(ctx, cmds)
	}
}

// refusedHook counts the tag registrations refused by an invalidation in
// progress.
type refusedHook struct{ n *atomic.Int64 }

func (h refusedHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h refusedHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h refusedHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			if a := c.Args(); c.Name() == "evalsha" && len(a) > 1 && a[1] == scriptTagRegister.Hash() {
				v, _ := c.(interface{ Val() any }).Val().(string)
				if v == "" && c.Err() == nil {
					h.n.Add(1)
				}
			}
		}
		return err
	}
}

// A tagged GetOrSet hit is one command, a miss three (lease, registration,
// write) in three round trips; an untagged GetOrSet keeps its two. Loaded
// values and cached "not found" answers carry their tags, through Cache
// and Typed, GetOrSetTagged and GetOrSetManyTagged.
func TestGetOrSetTaggedCommands(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{NegativeTTL: time.Minute})
		var calls atomic.Int64
		load := countingLoader(&calls, 0)
		// Warm the cluster client's slot map and command info.
		if _, err := c.GetOrSetTagged(ctx, "warm", time.Minute, load, "t"); err != nil {
			t.Fatal(err)
		}
		tp.cnt.reset()
		if _, err := c.GetOrSet(ctx, "u", time.Minute, load); err != nil {
			t.Fatal(err)
		}
		if cmds, trips, _, names := tp.cnt.snapshot(); cmds != 2 || trips != 2 {
			t.Fatalf("untagged miss: %d commands %v in %d round trips, want 2 in 2", cmds, names, trips)
		}
		tp.cnt.reset()
		v, err := c.GetOrSetTagged(ctx, "k", time.Minute, load, "t")
		if err != nil || string(v) != "value-3" {
			t.Fatalf("tagged miss = %q, %v", v, err)
		}
		if cmds, trips, _, names := tp.cnt.snapshot(); cmds != 3 || trips != 3 {
			t.Fatalf("tagged miss: %d commands %v in %d round trips, want 3 in 3", cmds, names, trips)
		}
		tp.cnt.reset()
		if v, err := c.GetOrSetTagged(ctx, "k", time.Minute, load, "t"); err != nil || string(v) != "value-3" {
			t.Fatalf("tagged hit = %q, %v", v, err)
		}
		if cmds, _, _, names := tp.cnt.snapshot(); cmds != 1 {
			t.Fatalf("tagged hit: %d commands %v, want 1", cmds, names)
		}
		if n, err := c.Exists(ctx, "k"); err != nil || !n {
			t.Fatalf("tagged value not stored: %v, %v", n, err)
		}
		// A "not found" is cached with its tags too.
		notFound := func(context.Context) ([]byte, error) { calls.Add(1); return nil, ErrNotFound }
		for range 2 {
			if _, err := c.GetOrSetTagged(ctx, "absent", time.Minute, notFound, "t"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("absent: %v", err)
			}
		}
		if calls.Load() != 4 {
			t.Fatalf("loader calls %d, want 4 (the negative entry cached)", calls.Load())
		}
		ty := NewTyped[string](c, nil)
		if s, err := ty.GetOrSetTagged(ctx, "typed", time.Minute, func(context.Context) (string, error) { return "x", nil }, "t"); err != nil || s != "x" {
			t.Fatalf("typed = %q, %v", s, err)
		}
		got, err := ty.GetOrSetManyTagged(ctx, []string{"tm1", "tm2"}, time.Minute, func(_ context.Context, keys []string) (map[string]string, error) {
			return map[string]string{"tm1": "1", "tm2": "2"}, nil
		}, "t")
		if err != nil || len(got) != 2 {
			t.Fatalf("typed many = %v, %v", got, err)
		}
		var mcalls [][]string
		var mu sync.Mutex
		if _, err := c.GetOrSetManyTagged(ctx, manyKeys("m", 10), time.Minute, echoLoader(&mcalls, &mu, nil), "t", "t"); err != nil {
			t.Fatal(err)
		}

		// warm, k, absent, typed, tm1, tm2 and m0..m9.
		n, err := c.InvalidateTags(ctx, "t")
		if err != nil || n != 16 {
			t.Fatalf("InvalidateTags = %d, %v; want 16", n, err)
		}
		if ok, _ := c.Exists(ctx, "u"); !ok {
			t.Fatal("the untagged value was removed")
		}
		if v, err := c.GetOrSetTagged(ctx, "k", time.Minute, load, "t"); err != nil || string(v) != "value-5" {
			t.Fatalf("after the invalidation = %q, %v; want a new load", v, err)
		}
		if _, err := c.GetOrSetTagged(ctx, "absent", time.Minute, notFound, "t"); !errors.Is(err, ErrNotFound) || calls.Load() != 6 {
			t.Fatalf("absent after the invalidation: %v, %d loads; want a new load", err, calls.Load())
		}
		if _, err := c.GetOrSetManyTagged(ctx, []string{"m0"}, time.Minute, echoLoader(&mcalls, &mu, nil), "t"); err != nil || len(mcalls) != 2 {
			t.Fatalf("many after the invalidation: %v, %d loader calls; want 2", err, len(mcalls))
		}
		if _, err := c.GetOrSetTagged(ctx, "x", time.Minute, load, "ok", ""); !errors.Is(err, ErrBadTag) {
			t.Fatalf("empty tag: %v, want ErrBadTag", err)
		}
		if _, err := ty.GetOrSetManyTagged(ctx, []string{"x"}, time.Minute, func(context.Context, []string) (map[string]string, error) { return nil, nil }, ""); !errors.Is(err, ErrBadTag) {
			t.Fatalf("empty tag: %v, want ErrBadTag", err)
		}
	})
}

// A cold tagged batch is the untagged batch's two round trips per master
// plus one registration per tag, in one round trip to the tag's master; a
// warm one a round trip per master.
func TestGetOrSetManyTaggedRoundTrips(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c, keys, calls, loader := batchSetup(t, tp)
		got, err := c.GetOrSetManyTagged(ctx, keys, time.Minute, loader, "b")
		if err != nil {
			t.Fatal(err)
		}
		checkAll(t, got, keys)
		cmds, trips, perNode, names := tp.cnt.snapshot()
		if cmds != 201 {
			t.Fatalf("cold batch: %d commands (%v), want 100 SET NX GET, 1 registration, 100 writes", cmds, names)
		}
		if cc, ok := tp.rdb.(*redis.ClusterClient); ok {
			tagNode, err := cc.MasterForKey(ctx, c.tagMeta("b"))
			if err != nil {
				t.Fatal(err)
			}
			for addr, n := range perNode {
				want := 2
				if addr == tagNode.Options().Addr {
					want = 3
				}
				if n != want {
					t.Fatalf("cold batch: %d round trips to %s (%v), want %d", n, addr, perNode, want)
				}
			}
		} else if trips != 3 {
			t.Fatalf("cold batch: %d round trips, want 3", trips)
		}
		tp.cnt.reset()
		if got, err = c.GetOrSetManyTagged(ctx, keys, time.Minute, loader, "b"); err != nil {
			t.Fatal(err)
		}
		checkAll(t, got, keys)
		cmds, trips, perNode, _ = tp.cnt.snapshot()
		if cmds != 100 || len(*calls) != 1 {
			t.Fatalf("warm batch: %d commands, %d loader calls; want 100, 1", cmds, len(*calls))
		}
		checkTrips(t, tp, "warm tagged GetOrSetMany", trips, perNode, 1)
		if n, err := c.InvalidateTags(ctx, "b"); err != nil || n != 100 {
			t.Fatalf("InvalidateTags = %d, %v; want 100", n, err)
		}
	})
}

// A load that registered its tags before an InvalidateTags of one of them
// ran is not stored: its callers get the loaded value, the key holds
// nothing afterwards (neither value nor lease), and the next call loads
// again and stores. For GetOrSetTagged and GetOrSetManyTagged, with a tag
// whose first value this load is (its slot registered by the load alone).
func TestGetOrSetTaggedLoadDuringInvalidation(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{})
		keys := []string{"one", "many1", "many2"}
		started, release := make(chan struct{}, 2), make(chan struct{})
		var calls atomic.Int64
		loader := func(context.Context) ([]byte, error) {
			if calls.Add(1) <= 1 {
				started <- struct{}{}
				<-release
			}
			return []byte("old"), nil
		}
		batch := func(_ context.Context, keys []string) (map[string][]byte, error) {
			if calls.Add(1) <= 2 {
				started <- struct{}{}
				<-release
			}
			m := map[string][]byte{}
			for _, k := range keys {
				m[k] = []byte("old")
			}
			return m, nil
		}
		one := make(chan error, 1)
		go func() {
			v, err := c.GetOrSetTagged(ctx, "one", time.Minute, loader, "fresh")
			if err == nil && string(v) != "old" {
				err = fmt.Errorf("GetOrSetTagged = %q, want the loaded value", v)
			}
			one <- err
		}()
		<-started
		many := make(chan error, 1)
		go func() {
			got, err := c.GetOrSetManyTagged(ctx, keys[1:], time.Minute, batch, "other", "fresh")
			if err == nil && len(got) != 2 {
				err = fmt.Errorf("GetOrSetManyTagged = %q, want the loaded values", got)
			}
			many <- err
		}()
		<-started
		if _, err := c.InvalidateTags(ctx, "fresh"); err != nil {
			t.Fatal(err)
		}
		close(release)
		if err := <-one; err != nil {
			t.Fatal(err)
		}
		if err := <-many; err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if n, err := tp.rdb.Exists(ctx, c.key(k)).Result(); err != nil || n != 0 {
				t.Fatalf("%s: a load that registered before the invalidation left %d keys (%v)", k, n, err)
			}
		}
		calls.Store(10)
		if _, err := c.GetOrSetTagged(ctx, "one", time.Minute, loader, "fresh"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetOrSetManyTagged(ctx, keys[1:], time.Minute, batch, "other", "fresh"); err != nil {
			t.Fatal(err)
		}
		if got, _ := c.MGet(ctx, keys); len(got) != 3 || calls.Load() != 12 {
			t.Fatalf("after the invalidation: %d of 3 stored, %d loads; want 3, 2", len(got), calls.Load()-10)
		}
	})
}

// The window the mark closes: writes of every kind that register after an
// invalidation's purges but before it returns (a hook runs them just
// before its marks are removed) are refused, on a tag with values and on
// a tag with none; a completed invalidation leaves another's mark in
// place. Then writers and slowed invalidations run concurrently: no value
// whose registration was seen to complete before the last invalidation's
// marks were removed is readable at the end. On the protocol without
// marks, the writes in the window carry the new epoch and survive.
func TestTagInvalidationStrictRace(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		var refused atomic.Int64
		wrdb := tp.client(t)
		wrdb.AddHook(refusedHook{&refused})
		w := newCache(t, wrdb, Options{})
		inv := tp.client(t)
		var before atomic.Pointer[func()]
		inv.AddHook(clearHook{func() {
			if f := before.Load(); f != nil {
				(*f)()
			}
		}})
		c := newCache(t, inv, Options{Prefix: w.opt.Prefix})
		tw := NewTyped[string](w, nil)
		var loads atomic.Int64
		loader := func(context.Context) ([]byte, error) { loads.Add(1); return []byte("in-window"), nil }
		batch := func(_ context.Context, keys []string) (map[string][]byte, error) {
			loads.Add(1)
			m := map[string][]byte{}
			for _, k := range keys {
				m[k] = []byte("in-window")
			}
			return m, nil
		}
		written := []string{"s", "m1", "m2", "g", "gm1", "gm2", "ts"}
		stored := func() (n int64) { // values or leases: whatever a write left
			for _, k := range written {
				n += tp.rdb.Exists(ctx, w.key(k)).Val()
			}
			return n
		}
		writeAll := func(tag string) error {
			if err := w.SetTagged(ctx, "s", []byte("in-window"), time.Minute, tag); err != nil {
				return err
			}
			if err := w.MSetTagged(ctx, map[string][]byte{"m1": []byte("x"), "m2": []byte("x")}, time.Minute, "z", tag); err != nil {
				return err
			}
			if v, err := w.GetOrSetTagged(ctx, "g", time.Minute, loader, tag); err != nil || string(v) != "in-window" {
				return fmt.Errorf("GetOrSetTagged = %q, %v", v, err)
			}
			if m, err := w.GetOrSetManyTagged(ctx, []string{"gm1", "gm2"}, time.Minute, batch, tag); err != nil || len(m) != 2 {
				return fmt.Errorf("GetOrSetManyTagged = %q, %v", m, err)
			}
			return tw.SetTagged(ctx, "ts", "x", time.Minute, tag)
		}
		for _, tag := range []string{"used", "unused"} {
			if err := w.Delete(ctx, written...); err != nil {
				t.Fatal(err)
			}
			if tag == "used" {
				if err := w.SetTagged(ctx, "seed", []byte("s"), time.Minute, tag); err != nil {
					t.Fatal(err)
				}
			}
			var werr error
			f := func() { werr = writeAll(tag) }
			before.Store(&f)
			if _, err := c.InvalidateTags(ctx, tag); err != nil {
				t.Fatal(err)
			}
			before.Store(nil)
			if werr != nil {
				t.Fatal(werr)
			}
			if n := tp.rdb.Exists(ctx, w.key("seed")).Val() + stored(); n != 0 {
				t.Fatalf("tag %s: %d keys written by writes registered before InvalidateTags returned", tag, n)
			}
			if refused.Load() != 5 {
				t.Fatalf("tag %s: %d registrations refused, want 5", tag, refused.Load())
			}
			refused.Store(0)
			if err := writeAll(tag); err != nil {
				t.Fatal(err)
			}
			if n := stored(); n != int64(len(written)) {
				t.Fatalf("tag %s: writes after InvalidateTags returned: %d of %d stored", tag, n, len(written))
			}
		}
		if loads.Load() != 8 {
			t.Fatalf("%d loads, want 8 (one per GetOrSet, refused or not)", loads.Load())
		}
		// Another invalidation's mark (by hand: a bump never cleared) stays
		// when this one completes.
		if err := scriptTagBump.Run(ctx, tp.rdb, []string{c.tagMeta("used"), c.tagMarks("used")}, int64(1000), "other", int64(60_000)).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.InvalidateTags(ctx, "used"); err != nil {
			t.Fatal(err)
		}
		if err := w.SetTagged(ctx, "s", []byte("v"), time.Minute, "used"); err != nil {
			t.Fatal(err)
		}
		if _, hit, _ := w.Get(ctx, "s"); hit {
			t.Fatal("a write was stored under another invalidation's live mark")
		}
		if err := tp.rdb.ZRem(ctx, c.tagMarks("used"), "other").Err(); err != nil {
			t.Fatal(err)
		}

		// Concurrent: gen is the number of invalidations whose marks'
		// removal was sent, bumped after a delay that holds each
		// invalidation open between its purges and that removal. A write
		// records gen once its registration is known to have completed
		// (after it returns, or in its loader, which runs after it).
		var gen atomic.Int64
		delay := func() { time.Sleep(20 * time.Millisecond); gen.Add(1) }
		before.Store(&delay)
		refused.Store(0)
		var done sync.Map // value -> gen
		var keys sync.Map
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for wr := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("w%d-%d", wr, i)
					rec := func(ids ...string) {
						g := gen.Load()
						for _, id := range ids {
							done.Store(id, g)
						}
					}
					var err error
					switch i % 4 {
					case 0:
						k := fmt.Sprintf("s%d-%d", wr, i%20)
						keys.Store(k, true)
						if err = w.SetTagged(ctx, k, []byte(id), time.Minute, "r"); err == nil {
							rec(id)
						}
					case 1:
						k1, k2 := fmt.Sprintf("m%d-%d", wr, i%20), fmt.Sprintf("n%d-%d", wr, i%20)
						keys.Store(k1, true)
						keys.Store(k2, true)
						if err = w.MSetTagged(ctx, map[string][]byte{k1: []byte(id), k2: []byte(id)}, time.Minute, "r"); err == nil {
							rec(id)
						}
					case 2:
						k := "g" + id
						keys.Store(k, true)
						_, err = w.GetOrSetTagged(ctx, k, time.Minute, func(context.Context) ([]byte, error) {
							rec(id)
							return []byte(id), nil
						}, "r")
					case 3:
						k1, k2 := "ga"+id, "gb"+id
						keys.Store(k1, true)
						keys.Store(k2, true)
						_, err = w.GetOrSetManyTagged(ctx, []string{k1, k2}, time.Minute, func(_ context.Context, ks []string) (map[string][]byte, error) {
							rec(id)
							return map[string][]byte{k1: []byte(id), k2: []byte(id)}, nil
						}, "r")
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		for range 10 {
			if _, err := c.InvalidateTags(ctx, "r"); err != nil {
				t.Error(err)
				break
			}
			time.Sleep(5 * time.Millisecond) // let writes land between invalidations
		}
		last := gen.Load()
		close(stop)
		wg.Wait()
		before.Store(nil)
		var all []string
		keys.Range(func(k, _ any) bool { all = append(all, k.(string)); return true })
		got, err := w.MGet(ctx, all)
		if err != nil {
			t.Fatal(err)
		}
		assertWrittenSince(t, got, &done, last, "registered")
		if refused.Load() == 0 {
			t.Fatal("no write registered while an invalidation was in progress: the test did not reach the window")
		}
		t.Logf("%d values readable, %d registrations refused", len(got), refused.Load())
	})
}

// A mark whose invalidator died refuses the tag's writes until its
// deadline, LeaseTTL+LoadTimeout after its bump, and then expires.
func TestTagMarkOfCrashedInvalidatorExpires(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{LoadTimeout: 100 * time.Millisecond, LeaseTTL: 100 * time.Millisecond})
		if err := c.SetTagged(ctx, "k", []byte("old"), time.Minute, "z"); err != nil {
			t.Fatal(err)
		}
		// The bump of an invalidator that dies before its purges.
		life := c.markLife()
		if err := scriptTagBump.Run(ctx, tp.rdb, []string{c.tagMeta("z"), c.tagMarks("z")}, int64(200), "dead", life.Milliseconds()).Err(); err != nil {
			t.Fatal(err)
		}
		if p := tp.rdb.PTTL(ctx, c.tagMarks("z")).Val(); p <= 0 || p > life {
			t.Fatalf("marks TTL %v, want in (0, %v]", p, life)
		}
		if err := c.SetTagged(ctx, "k", []byte("new"), time.Minute, "z"); err != nil {
			t.Fatal(err)
		}
		if v, _, _ := c.Get(ctx, "k"); string(v) != "old" {
			t.Fatalf("a write under a live mark was stored: %q", v)
		}
		waitFor(t, "the dead invalidator's mark to expire", func() bool {
			_ = c.SetTagged(ctx, "k", []byte("new"), time.Minute, "z")
			v, _, _ := c.Get(ctx, "k")
			return string(v) == "new"
		})
		waitFor(t, "the marks key to expire", func() bool {
			return tp.rdb.Exists(ctx, c.tagMarks("z")).Val() == 0
		})
	})
}

// An InvalidateTags held up past its marks' life (a hook delays their
// removal) still purges its values but returns an error: it cannot vouch
// for writes registered after its marks died.
func TestInvalidateTagsOutlivingItsMark(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		inv := tp.client(t)
		opt := Options{LoadTimeout: 50 * time.Millisecond, LeaseTTL: 50 * time.Millisecond}
		c := newCache(t, inv, opt)
		inv.AddHook(clearHook{func() { time.Sleep(c.markLife() + 50*time.Millisecond) }})
		if err := c.MSetTagged(ctx, map[string][]byte{"a": []byte("1"), "b": []byte("2")}, time.Minute, "y"); err != nil {
			t.Fatal(err)
		}
		n, err := c.InvalidateTags(ctx, "y")
		if err == nil || !strings.Contains(err.Error(), "repeat the call") {
			t.Fatalf("InvalidateTags past its marks' life: %d, %v; want an error", n, err)
		}
		if got, _ := c.MGet(ctx, []string{"a", "b"}); n != 2 || len(got) != 0 {
			t.Fatalf("removed %d, %d left; want 2, 0", n, len(got))
		}
	})
}
