package cache

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"
)

func TestSetGetDeleteExists(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{})
		if err := c.Set(ctx, "warm", []byte("x"), time.Minute); err != nil {
			t.Fatal(err)
		}

		tp.cnt.reset()
		if err := c.Set(ctx, "k", []byte("hello"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if cmds, trips, _, names := tp.cnt.snapshot(); cmds != 1 || trips != 1 {
			t.Fatalf("Set: %d commands in %d round trips %v, want 1", cmds, trips, names)
		}
		tp.cnt.reset()
		v, ok, err := c.Get(ctx, "k")
		if err != nil || !ok || string(v) != "hello" {
			t.Fatalf("Get = %q, %v, %v", v, ok, err)
		}
		if cmds, trips, _, names := tp.cnt.snapshot(); cmds != 1 || trips != 1 {
			t.Fatalf("Get: %d commands in %d round trips %v, want 1", cmds, trips, names)
		}
		if ex, err := c.Exists(ctx, "k"); err != nil || !ex {
			t.Fatalf("Exists = %v, %v", ex, err)
		}
		// The stored key is namespaced.
		if n, err := tp.rdb.Exists(ctx, c.Namespace()+"k").Result(); err != nil || n != 1 {
			t.Fatalf("raw key %q: %d, %v", c.Namespace()+"k", n, err)
		}
		if err := c.Delete(ctx, "k", "missing"); err != nil {
			t.Fatal(err)
		}
		if v, ok, err := c.Get(ctx, "k"); err != nil || ok || v != nil {
			t.Fatalf("Get after Delete = %q, %v, %v", v, ok, err)
		}
		if ex, err := c.Exists(ctx, "k"); err != nil || ex {
			t.Fatalf("Exists after Delete = %v, %v", ex, err)
		}
		st := c.LocalStats()
		if st.Hits != 1 || st.Misses != 1 || st.HitRatio != 0.5 {
			t.Fatalf("counters %+v", st)
		}
		if err := c.Set(ctx, "neg", nil, -time.Second); err == nil {
			t.Fatal("Set with a negative ttl succeeded")
		}
	})
}

func TestIncrTTLSetOnceAtCreation(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{})
		if _, ok, err := c.Counter(ctx, "n"); err != nil || ok {
			t.Fatalf("Counter before Incr: %v, %v", ok, err)
		}
		tp.cnt.reset()
		v, err := c.Incr(ctx, "n", 5, 10*time.Second)
		if err != nil || v != 5 {
			t.Fatalf("Incr = %d, %v", v, err)
		}
		if cmds, _, _, names := tp.cnt.snapshot(); cmds != 1 {
			t.Fatalf("Incr: %d commands %v, want 1", cmds, names)
		}
		// Shorten the TTL by hand: a later Incr with a long TTL must not reset it.
		rk := c.Namespace() + "n"
		if err := tp.rdb.PExpire(ctx, rk, 3*time.Second).Err(); err != nil {
			t.Fatal(err)
		}
		if v, err = c.Decr(ctx, "n", 2, time.Hour); err != nil || v != 3 {
			t.Fatalf("Decr = %d, %v", v, err)
		}
		pttl, err := tp.rdb.PTTL(ctx, rk).Result()
		if err != nil || pttl <= 0 || pttl > 3*time.Second {
			t.Fatalf("PTTL after second Incr = %v, %v; want (0, 3s]", pttl, err)
		}
		if n, ok, err := c.Counter(ctx, "n"); err != nil || !ok || n != 3 {
			t.Fatalf("Counter = %d, %v, %v", n, ok, err)
		}
		// ttl 0: no expiry.
		if _, err := c.Incr(ctx, "forever", 1, 0); err != nil {
			t.Fatal(err)
		}
		if pttl, err := tp.rdb.PTTL(ctx, c.Namespace()+"forever").Result(); err != nil || pttl != -1 {
			t.Fatalf("PTTL of a counter without ttl = %v, %v", pttl, err)
		}
		if err := c.Set(ctx, "notnum", []byte("x"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Counter(ctx, "notnum"); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Counter of a non-integer: %v, want ErrCorrupt", err)
		}
	})
}

func TestMGetMSetThousandKeysOneRoundTripPerNode(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{})
		items := make(map[string][]byte, 1000)
		keys := make([]string, 0, 1010)
		for i := range 1000 {
			k := "k" + strconv.Itoa(i)
			items[k] = []byte("v" + strconv.Itoa(i))
			keys = append(keys, k)
		}
		// Hash-tagged keys share a slot: one MGET for them on Cluster.
		for i := range 10 {
			keys = append(keys, fmt.Sprintf("{tag}missing%d", i))
		}
		// Warm the cluster client's slot map and command info.
		if _, err := c.MGet(ctx, keys[:3]); err != nil {
			t.Fatal(err)
		}
		tp.cnt.reset()
		if err := c.MSet(ctx, items, time.Minute); err != nil {
			t.Fatal(err)
		}
		checkPerNode(t, tp, "MSet", 1000)

		tp.cnt.reset()
		got, err := c.MGet(ctx, keys)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1000 {
			t.Fatalf("MGet returned %d hits, want 1000", len(got))
		}
		for k, v := range items {
			if !bytes.Equal(got[k], v) {
				t.Fatalf("MGet[%q] = %q, want %q", k, got[k], v)
			}
		}
		cmds, _, _, _ := tp.cnt.snapshot()
		if tp.cluster {
			checkPerNode(t, tp, "MGet", -1)
			// 1000 keys in distinct slots mostly, the 10 tagged keys in one MGET.
			if cmds > 1001 {
				t.Fatalf("MGet: %d commands, want at most 1001", cmds)
			}
		} else if cmds != 1 {
			t.Fatalf("MGet standalone: %d commands, want 1 MGET", cmds)
		}
	})
}

// checkPerNode asserts one round trip per master (cluster) or one in total.
func checkPerNode(t *testing.T, tp topo, op string, wantCmds int) {
	t.Helper()
	cmds, trips, perNode, _ := tp.cnt.snapshot()
	if wantCmds >= 0 && cmds != wantCmds {
		t.Fatalf("%s: %d commands, want %d", op, cmds, wantCmds)
	}
	if !tp.cluster {
		if trips != 1 {
			t.Fatalf("%s: %d round trips, want 1", op, trips)
		}
		return
	}
	if len(perNode) != tp.masters {
		t.Fatalf("%s: round trips per node %v, want all %d masters", op, perNode, tp.masters)
	}
	for addr, n := range perNode {
		if n != 1 {
			t.Fatalf("%s: %d round trips to %s (%v), want 1 per master", op, n, addr, perNode)
		}
	}
}

func TestMGetReportsPerKeyFailures(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{})
		if err := c.MSet(ctx, map[string][]byte{"a": []byte("1"), "b": []byte("2")}, time.Minute); err != nil {
			t.Fatal(err)
		}
		// A hash where a value should be: GET fails with WRONGTYPE for that key.
		if err := tp.rdb.HSet(ctx, c.Namespace()+"h", "f", "v").Err(); err != nil {
			t.Fatal(err)
		}
		got, err := c.MGet(ctx, []string{"a", "h", "b"})
		if string(got["a"]) != "1" || string(got["b"]) != "2" {
			t.Fatalf("MGet hits = %q", got)
		}
		if !tp.cluster {
			// MGET answers nil for a key of another type: a miss, no error.
			if err != nil || len(got) != 2 {
				t.Fatalf("MGet = %q, %v", got, err)
			}
			return
		}
		var be *BatchError
		if !errors.As(err, &be) || len(be.Errs) != 1 || be.Errs["h"] == nil {
			t.Fatalf("MGet error = %v, want a BatchError for key h", err)
		}
	})
}

func TestNamespaceVersionAbandonsOldValues(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		v1 := newCache(t, tp.rdb, Options{Version: 1})
		v2 := newCache(t, tp.rdb, Options{Prefix: v1.opt.Prefix, Version: 2})
		if err := v1.Set(ctx, "k", []byte("old"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := v2.Get(ctx, "k"); err != nil || ok {
			t.Fatalf("v2 sees v1's value: %v, %v", ok, err)
		}
		if v1.Namespace() == v2.Namespace() {
			t.Fatal("same namespace for two versions")
		}
	})
}

func TestOptionsValidation(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{}, `cache: Options.Prefix = "": required`},
		{Options{Prefix: "a{b"}, `cache: Options.Prefix = "a{b": contains '{' or '}'`},
		{Options{Prefix: "p", TTLJitter: 1}, `cache: Options.TTLJitter = 1: out of [0, 1)`},
		{Options{Prefix: "p", LoadTimeout: -1}, `cache: Options.LoadTimeout = -1ns: negative`},
		{Options{Prefix: "p", Degrade: 7}, `cache: Options.Degrade = 7: unknown`},
		{Options{Prefix: "p", Near: &NearOptions{MaxBytes: -1}}, `cache: Options.Near.MaxBytes = -1: negative`},
	} {
		_, err := New(fakeClient(t), tc.o)
		var oe *OptionError
		if !errors.As(err, &oe) || err.Error() != tc.want {
			t.Errorf("New(%+v) = %v; want *OptionError %q", tc.o, err, tc.want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("New(nil) did not panic")
		}
	}()
	_, _ = New(nil, Options{Prefix: "p"})
}

func TestTTLJitter(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{TTLJitter: 0.5})
		seen := map[time.Duration]bool{}
		for i := range 20 {
			k := "j" + strconv.Itoa(i)
			if err := c.Set(ctx, k, []byte("x"), 100*time.Second); err != nil {
				t.Fatal(err)
			}
			pttl, err := tp.rdb.PTTL(ctx, c.Namespace()+k).Result()
			if err != nil {
				t.Fatal(err)
			}
			if pttl < 49*time.Second || pttl > 100*time.Second {
				t.Fatalf("PTTL %v outside [50s, 100s]", pttl)
			}
			seen[pttl/time.Second] = true
		}
		if len(seen) < 3 {
			t.Fatalf("20 jittered TTLs fall in only %d distinct seconds", len(seen))
		}
	})
}
