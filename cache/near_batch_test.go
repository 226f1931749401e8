package cache

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// mgetLocal runs Typed.MGet and reports whether it sent no command at all.
func (f *nearFixture) mgetLocal(t *testing.T, tp topo, keys []string) (map[string]string, bool) {
	t.Helper()
	tp.cnt.reset()
	got, err := f.typed.MGet(ctxT(t), keys)
	if err != nil {
		t.Fatal(err)
	}
	cmds, _, _, _ := tp.cnt.snapshot()
	return got, cmds == 0
}

// held reports whether the local tier holds an entry for key (value or
// negative), whatever its serving state.
func (f *nearFixture) held(key string) bool {
	_, ok := f.c.near.lru.GetIfPresent(key)
	return ok
}

// TestNearMGetFillsAndReadsLocalFirst: MGet publishes what it reads (values
// and negative entries), later MGets are answered locally with no command,
// and after outside writes only the invalidated keys go to Redis, still one
// round trip per master.
func TestNearMGetFillsAndReadsLocalFirst(t *testing.T) {
	forEachNearTopology(t, func(t *testing.T, tp topo, outside redis.UniversalClient) {
		ctx := ctxT(t)
		f := newNearFixture(t, tp.rdb, outside, NearOptions{})
		var present, absent []string
		want := map[string]string{}
		inv := f.c.NearStats().Invalidations
		for i := range 30 {
			k := fmt.Sprintf("m%d", i)
			present = append(present, k)
			want[k] = "v" + k
			if err := f.typed.Set(ctx, k, want[k], 0); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 10 {
			absent = append(absent, fmt.Sprintf("none%d", i))
		}
		keys := append(slices.Clone(present), absent...)
		// Each Set is reported by one invalidation message; wait for them all,
		// so none arrives in the middle of what follows.
		waitFor(t, "the Sets' invalidations", func() bool { return f.c.NearStats().Invalidations >= inv+uint64(len(present)) })

		// The first MGet reads all 40 keys: one round trip per master at most.
		tp.cnt.reset()
		got, err := f.typed.MGet(ctx, keys)
		if err != nil || !maps.Equal(got, want) {
			t.Fatalf("MGet = %v, %v; want %v", got, err, want)
		}
		_, trips, perNode, names := tp.cnt.snapshot()
		if trips > tp.masters {
			t.Fatalf("first MGet: %d round trips %v (%v), want at most one per master (%d)", trips, perNode, names, tp.masters)
		}
		for n, c := range perNode {
			if c != 1 {
				t.Fatalf("first MGet: %d round trips to %s, want 1", c, n)
			}
		}
		// A tracking reconnect could still refuse inserts (the coherence
		// rule): MGet until everything is local.
		waitFor(t, "all 40 keys served locally", func() bool {
			got, local := f.mgetLocal(t, tp, keys)
			return local && maps.Equal(got, want)
		})
		st := f.c.NearStats()
		if st.NegativeFills < uint64(len(absent)) || st.Fills < uint64(len(keys)) {
			t.Fatalf("NearStats = %+v: want at least %d fills, %d negative", st, len(keys), len(absent))
		}
		negHits := st.NegativeHits
		if got, local := f.mgetLocal(t, tp, keys); !local || !maps.Equal(got, want) {
			t.Fatalf("local MGet = %v (local %v)", got, local)
		}
		if d := f.c.NearStats().NegativeHits - negHits; d != uint64(len(absent)) {
			t.Fatalf("negative hits of one MGet = %d, want %d", d, len(absent))
		}

		// Outside writes: a value changed, a missing key created.
		changed, created := present[3], absent[4]
		for k, v := range map[string]string{changed: "new", created: "born"} {
			if err := outside.Set(ctx, f.c.key(k), f.stored(t, v), 0).Err(); err != nil {
				t.Fatal(err)
			}
			want[k] = v
		}
		waitFor(t, "both invalidations", func() bool { return !f.held(changed) && !f.held(created) })
		tp.cnt.reset()
		got, err = f.typed.MGet(ctx, keys)
		if err != nil || !maps.Equal(got, want) {
			t.Fatalf("MGet after outside writes = %v, %v; want %v", got, err, want)
		}
		cmds, trips, perNode, names := tp.cnt.snapshot()
		if cmds > 2 || trips > 2 || trips < 1 {
			t.Fatalf("MGet after 2 invalidations sent %d commands in %d round trips %v (%v): want only the 2 invalidated keys", cmds, trips, perNode, names)
		}
		for n, c := range perNode {
			if c != 1 {
				t.Fatalf("%d round trips to %s, want 1", c, n)
			}
		}
	})
}

// TestNearNegativeEntries: a read that finds nothing leaves a negative
// entry, answered locally with no command; Redis reports writes to keys
// that were read while missing (broadcast tracking), so an outside write, a
// Lua script and the creation of a NegativeTTL "not found" each invalidate
// it; local writes and GetOrSet are read back at once.
func TestNearNegativeEntries(t *testing.T) {
	forEachNearTopology(t, func(t *testing.T, tp topo, outside redis.UniversalClient) {
		ctx := ctxT(t)
		f := newNearFixture(t, tp.rdb, outside, NearOptions{})
		negLocal := func(key string) bool {
			before := f.c.NearStats().NegativeHits
			tp.cnt.reset()
			v, ok, err := f.typed.Get(ctx, key)
			if err != nil || ok {
				t.Fatalf("Get(%q) = %q, %v, %v; want a miss", key, v, ok, err)
			}
			cmds, _, _, _ := tp.cnt.snapshot()
			return f.c.NearStats().NegativeHits > before && cmds == 0
		}
		outsideWrites := map[string]func(rk string, b []byte) error{
			"SET": func(rk string, b []byte) error { return outside.Set(ctx, rk, b, 0).Err() },
			"Lua": func(rk string, b []byte) error {
				return outside.Eval(ctx, "redis.call('SET', KEYS[1], ARGV[1]) return 1", []string{rk}, b).Err()
			},
		}
		for name, write := range outsideWrites {
			t.Run("outside "+name, func(t *testing.T) {
				key := "neg-" + name
				waitFor(t, "a negative hit of "+key, func() bool { return negLocal(key) })
				if err := write(f.c.key(key), f.stored(t, "here")); err != nil {
					t.Fatal(err)
				}
				// This key's invalidation: the count of all of them may have
				// moved for the other subtest's key, whose arrives late.
				waitFor(t, "the invalidation", func() bool { return !f.held(key) })
				if v, ok, local := f.value(t, key); !ok || v != "here" || local {
					t.Fatalf("after the outside write: Get = %q, %v, local %v; want here from Redis", v, ok, local)
				}
			})
		}
		t.Run("local Set", func(t *testing.T) {
			waitFor(t, "a negative hit", func() bool { return negLocal("neg-own") })
			if err := f.typed.Set(ctx, "neg-own", "mine", 0); err != nil {
				t.Fatal(err)
			}
			if v, ok, _ := f.value(t, "neg-own"); !ok || v != "mine" {
				t.Fatalf("Get after own Set = %q, %v", v, ok)
			}
		})
		t.Run("GetOrSet", func(t *testing.T) {
			// A negative entry does not answer GetOrSet: the loader runs, and
			// its value is read back at once.
			waitFor(t, "a negative hit", func() bool { return negLocal("neg-load") })
			calls := 0
			v, err := f.typed.GetOrSet(ctx, "neg-load", time.Minute, func(context.Context) (string, error) {
				calls++
				return "loaded", nil
			})
			if err != nil || v != "loaded" || calls != 1 {
				t.Fatalf("GetOrSet = %q, %v, %d loader calls", v, err, calls)
			}
			if v, ok, _ := f.value(t, "neg-load"); !ok || v != "loaded" {
				t.Fatalf("Get after GetOrSet = %q, %v", v, ok)
			}
		})
		t.Run("Typed[any]", func(t *testing.T) {
			// A negative entry is never passed off as a value, even to a T
			// that every value satisfies.
			anyT := NewTyped[any](f.c, nil)
			for range 3 {
				if v, ok, err := anyT.Get(ctx, "neg-any"); ok || err != nil || v != nil {
					t.Fatalf("Typed[any].Get = %v, %v, %v; want a miss", v, ok, err)
				}
				got, err := anyT.MGet(ctx, []string{"neg-any"})
				if err != nil || len(got) != 0 {
					t.Fatalf("Typed[any].MGet = %v, %v; want nothing", got, err)
				}
			}
		})
	})
}

// hostileBatchKeys are user keys that look like patterns, hash tags,
// protocol text or nothing at all.
func hostileBatchKeys() []string {
	return []string{
		"*", "?", "[a-z]", "\\", "{", "}", "{}", "}{", "{a}", "{a}x", "x{a}", "a{b}c", "{{a}}", "{}{a}",
		"\x00", "\r\n*1\r\n$4\r\nPING\r\n", " ", "é", "\xff\xfe", strings.Repeat("k", 4096), "",
	}
}

// TestMGetHostileKeys: keys that look like globs, hash tags or protocol
// text are literal keys to MGet, on every deployment: each reads back its
// own value (no CROSSSLOT on Cluster: the grouping by slot agrees with the
// server's CLUSTER KEYSLOT), a glob-like key that was never written matches
// nothing, and with a near tier an outside write to "*" invalidates that one
// key and no other.
func TestMGetHostileKeys(t *testing.T) {
	forEachNearTopology(t, func(t *testing.T, tp topo, outside redis.UniversalClient) {
		ctx := ctxT(t)
		f := newNearFixture(t, tp.rdb, outside, NearOptions{})
		keys := hostileBatchKeys()
		want := map[string]string{}
		inv := f.c.NearStats().Invalidations
		for i, k := range keys {
			want[k] = fmt.Sprintf("value-%d", i)
			if err := f.typed.Set(ctx, k, want[k], 0); err != nil {
				t.Fatalf("Set(%q): %v", k, err)
			}
			if tp.cluster {
				slot, err := outside.ClusterKeySlot(ctx, f.c.key(k)).Result()
				if err != nil || int(slot) != keySlot(f.c.key(k)) {
					t.Fatalf("key %q: server slot %d (%v), ours %d", k, slot, err, keySlot(f.c.key(k)))
				}
			}
		}
		// Each Set is reported by one invalidation message; wait for them all,
		// so none arrives after the entries are filled.
		waitFor(t, "the Sets' invalidations", func() bool { return f.c.NearStats().Invalidations >= inv+uint64(len(keys)) })
		unwritten := []string{"m*", "*x", "{*}", "[*]"}
		all := append(slices.Clone(keys), unwritten...)
		got, err := f.typed.MGet(ctx, all)
		if err != nil || !maps.Equal(got, want) {
			t.Fatalf("MGet = %d values, %v; want %d", len(got), err, len(want))
		}
		waitFor(t, "every key served locally", func() bool {
			got, local := f.mgetLocal(t, tp, all)
			return local && maps.Equal(got, want)
		})
		if err := outside.Set(ctx, f.c.key("*"), f.stored(t, "star"), 0).Err(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, `the invalidation of "*"`, func() bool { return !f.held("*") })
		for _, k := range all {
			if k != "*" && !f.held(k) {
				t.Fatalf("the write to %q dropped the local entry of %q", "*", k)
			}
		}
		want["*"] = "star"
		tp.cnt.reset()
		if got, err := f.typed.MGet(ctx, all); err != nil || !maps.Equal(got, want) {
			t.Fatalf("MGet after the write = %v, %v", got, err)
		}
		if cmds, _, _, names := tp.cnt.snapshot(); cmds != 1 {
			t.Fatalf("MGet after one invalidation sent %d commands %v, want 1", cmds, names)
		}
	})
}
