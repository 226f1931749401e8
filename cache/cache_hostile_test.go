package cache

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// hostileKeys are keys a caller might pass straight from user input. Every
// one must name exactly one value of the namespace: no key reads, deletes
// or clears another.
func hostileKeys() map[string]string {
	return map[string]string{
		"empty":          "",
		"1MiB":           strings.Repeat("k", 1<<20),
		"binary":         "\x00\xff\x01\n\r",
		"NUL inside":     "a\x00b",
		"unicode":        "ключ-🔑-鍵",
		"invalid utf-8":  "\xc3\x28\xff",
		"star":           "*",
		"question":       "?",
		"class":          "[a-z]",
		"backslash":      `a\*`,
		"open brace":     "{",
		"close brace":    "}",
		"hash tag":       "{user1}",
		"empty tag":      "{}x",
		"tag in middle":  "a{b}c",
		"lease-looking":  "#lease{0}x",
		"namespace-like": "x:v0:y",
		"prefix of star": "a*",
		"sibling of a*":  "ab",
	}
}

// TestHostileKeys stores a value under every hostile key, then reads,
// batch-reads, counts, loads, clears and deletes them one at a time: each
// operation touches its own key only, on standalone and on cluster.
func TestHostileKeys(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{})
		keys := hostileKeys()
		items := make(map[string][]byte, len(keys))
		for name, k := range keys {
			items[k] = []byte("value of " + name)
		}
		if err := c.MSet(ctx, items, time.Minute); err != nil {
			t.Fatalf("MSet: %v", err)
		}
		all := make([]string, 0, len(keys))
		for _, k := range keys {
			all = append(all, k)
		}
		got, err := c.MGet(ctx, all)
		if err != nil || len(got) != len(keys) {
			t.Fatalf("MGet: %d of %d, %v", len(got), len(keys), err)
		}
		for name, k := range keys {
			if !bytes.Equal(got[k], items[k]) {
				t.Errorf("%s: MGet = %q", name, got[k])
			}
			if v, ok, err := c.Get(ctx, k); err != nil || !ok || !bytes.Equal(v, items[k]) {
				t.Errorf("%s: Get = %.40q, %v, %v", name, v, ok, err)
			}
			// A hit needs no loader; the loader would panic if called.
			if v, err := c.GetOrSet(ctx, k, time.Minute, nil); err != nil || !bytes.Equal(v, items[k]) {
				t.Errorf("%s: GetOrSet hit = %.40q, %v", name, v, err)
			}
		}
		// A counter and a loaded value under every hostile key of a second
		// namespace: keys that look like globs, tags or leases work alike.
		c2 := newCache(t, tp.rdb, Options{Prefix: strings.TrimSuffix(c.opt.Prefix, ":") + "-2"})
		var loads atomic.Int64
		for name, k := range keys {
			if n, err := c2.Incr(ctx, k, 2, time.Minute); err != nil || n != 2 {
				t.Errorf("%s: Incr = %d, %v", name, n, err)
			}
			if err := c2.Delete(ctx, k); err != nil {
				t.Errorf("%s: Delete counter: %v", name, err)
			}
			if v, err := c2.GetOrSet(ctx, k, time.Minute, countingLoader(&loads, 0)); err != nil || !strings.HasPrefix(string(v), "value-") {
				t.Errorf("%s: GetOrSet miss = %q, %v", name, v, err)
			}
		}
		if int(loads.Load()) != len(keys) {
			t.Errorf("%d loads for %d keys", loads.Load(), len(keys))
		}

		// Clearing one literal key removes that key and nothing else, even
		// when it is "*" or "[a-z]".
		for _, name := range []string{"star", "class", "prefix of star", "question", "backslash", "empty", "1MiB"} {
			k := keys[name]
			n, err := c.Clear(ctx, Literal(k), ClearOptions{})
			if err != nil || n != 1 {
				t.Fatalf("%s: Clear(Literal) = %d, %v; want 1", name, n, err)
			}
			delete(keys, name)
			for other, ok := range keys {
				if exists, _ := c.Exists(ctx, ok); !exists {
					t.Fatalf("clearing %s removed %s", name, other)
				}
			}
		}
		// Prefix of user text: "a" matches "a{b}c" and "a\x00b" but not "ab"
		// through a '*' the user typed.
		if n, err := c.Clear(ctx, Prefix("a["), ClearOptions{DryRun: true}); err != nil || n != 0 {
			t.Fatalf(`Prefix("a[") matched %d, %v`, n, err)
		}
		if n, err := c.Clear(ctx, Prefix("{"), ClearOptions{DryRun: true}); err != nil || n != 3 {
			t.Fatalf(`Prefix("{") matched %d, %v; want "{", "{user1}" and "{}x"`, n, err)
		}
		rest := make([]string, 0, len(keys))
		for _, k := range keys {
			rest = append(rest, k)
		}
		if err := c.Delete(ctx, rest...); err != nil {
			t.Fatal(err)
		}
		if got, err := c.MGet(ctx, rest); err != nil || len(got) != 0 {
			t.Fatalf("after Delete: %d left, %v", len(got), err)
		}
	})
}

// TestHostileSizesTTLsContextsAndLoaders: values over the limit, bad TTLs,
// ended contexts and a nil loader each get a clear error or a documented
// result, and never cost a stored value.
func TestHostileSizesTTLsContextsAndLoaders(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{MaxValueSize: 1024, LeasePoll: 10 * time.Millisecond})
		keep := func(k string) {
			t.Helper()
			if err := c.Set(ctx, k, []byte("kept"), time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		kept := func(what, k string) {
			t.Helper()
			if v, ok, err := c.Get(ctx, k); err != nil || !ok || string(v) != "kept" {
				t.Errorf("%s lost the stored value: %q, %v, %v", what, v, ok, err)
			}
		}
		big := bytes.Repeat([]byte("x"), 1025)

		keep("big")
		if err := c.Set(ctx, "big", big, time.Minute); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Set over MaxValueSize = %v, want ErrTooLarge", err)
		}
		kept("Set over the limit", "big")
		keep("big2")
		if err := c.MSet(ctx, map[string][]byte{"big2": []byte("small"), "big3": big}, time.Minute); !errors.Is(err, ErrTooLarge) {
			t.Errorf("MSet with one value over the limit = %v, want ErrTooLarge", err)
		}
		kept("MSet over the limit (nothing is written)", "big2")
		if err := c.Set(ctx, "exact", big[:1024], time.Minute); err != nil {
			t.Errorf("Set of exactly MaxValueSize: %v", err)
		}
		// A loader's oversized result: an error, the lease released at once
		// (the next GetOrSet loads without waiting for the lease TTL).
		_, err := c.GetOrSet(ctx, "bigload", time.Minute, func(context.Context) ([]byte, error) { return big, nil })
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("GetOrSet of an oversized load = %v, want ErrTooLarge", err)
		}
		if ok, _ := c.Exists(ctx, "bigload"); ok {
			t.Error("an oversized load left its lease behind")
		}

		// TTLs: negative is an error and writes nothing; zero is "no
		// expiry"; a sub-millisecond TTL becomes Redis's minimum (1 ms).
		keep("ttl")
		for name, err := range map[string]error{
			"Set":      c.Set(ctx, "ttl", []byte("x"), -time.Second),
			"MSet":     c.MSet(ctx, map[string][]byte{"ttl": []byte("x")}, -1),
			"Incr":     func() error { _, err := c.Incr(ctx, "ttl-n", 1, -time.Second); return err }(),
			"GetOrSet": func() error { _, err := c.GetOrSet(ctx, "ttl", -time.Second, nil); return err }(),
		} {
			if err == nil || !strings.Contains(err.Error(), "negative ttl") {
				t.Errorf("%s with a negative TTL = %v", name, err)
			}
		}
		kept("writes with a negative TTL", "ttl")
		if ok, _ := c.Exists(ctx, "ttl-n"); ok {
			t.Error("Incr with a negative TTL created the counter")
		}
		if err := c.Set(ctx, "zero", []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
		if d, err := tp.rdb.PTTL(ctx, c.key("zero")).Result(); err != nil || d != -1 {
			t.Errorf("TTL 0: PTTL = %v, %v; want no expiry", d, err)
		}
		if err := c.Set(ctx, "tiny", []byte("v"), time.Nanosecond); err != nil {
			t.Errorf("Set with 1ns TTL: %v", err)
		}

		// Ended contexts: the caller's context error, nothing written,
		// nothing lost, no lease left behind.
		keep("ctx")
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		expired, cancel2 := context.WithDeadline(ctx, time.Now().Add(-time.Second))
		defer cancel2()
		for _, cc := range []context.Context{cancelled, expired} {
			want := cc.Err()
			if _, _, err := c.Get(cc, "ctx"); !errors.Is(err, want) {
				t.Errorf("Get with an ended context = %v, want %v", err, want)
			}
			if err := c.Set(cc, "ctx", []byte("overwritten"), time.Minute); !errors.Is(err, want) {
				t.Errorf("Set with an ended context = %v", err)
			}
			if _, err := c.GetOrSet(cc, "ctx-miss", time.Minute, func(context.Context) ([]byte, error) { return []byte("v"), nil }); !errors.Is(err, want) {
				t.Errorf("GetOrSet with an ended context = %v", err)
			}
			if _, err := c.MGet(cc, []string{"ctx", "ctx-miss"}); err == nil {
				t.Error("MGet with an ended context succeeded")
			}
			if _, err := c.Incr(cc, "ctx-n", 1, 0); !errors.Is(err, want) {
				t.Errorf("Incr with an ended context = %v", err)
			}
			if _, err := c.Clear(cc, Prefix(""), ClearOptions{}); err == nil {
				t.Error("Clear with an ended context succeeded")
			}
		}
		kept("calls with ended contexts", "ctx")
		for _, k := range []string{"ctx-miss", "ctx-n"} {
			if ok, _ := c.Exists(ctx, k); ok {
				t.Errorf("a call with an ended context left %q behind", k)
			}
		}

		// A nil loader: documented result. On a hit it is never called; on a
		// miss the call is recovered like any panicking loader: every caller
		// gets a *PanicError and the lease is released.
		_, err = c.GetOrSet(ctx, "nil-loader", time.Minute, nil)
		var pe *PanicError
		if !errors.As(err, &pe) {
			t.Fatalf("GetOrSet with a nil loader on a miss = %v, want *PanicError", err)
		}
		if ok, _ := c.Exists(ctx, "nil-loader"); ok {
			t.Error("a nil loader left its lease behind")
		}
		typed := NewTyped[user](c, nil)
		if _, err := typed.GetOrSet(ctx, "nil-typed", time.Minute, nil); !errors.As(err, &pe) {
			t.Errorf("Typed.GetOrSet with a nil loader = %v, want *PanicError", err)
		}
	})
}

// TestPlantedCorruptValues: another client writes bytes the cache never
// wrote under its keys. A read is a miss (the value counted and deleted) or,
// for a key of another Redis type, an error that names it; nothing panics
// and no other key is touched.
func TestPlantedCorruptValues(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{MaxValueSize: 1 << 10})
		raw := NewTyped[[]byte](c, nil)
		js := NewTyped[user](c, nil)
		mp := NewTyped[user](c, MsgpackCodec{})
		hdr := func(codec, flags byte, payload []byte) []byte {
			b := []byte{headerMagic, formatVersion, codec, flags, 0, 0, 0, 0, 0, 0, 0, 0}
			return append(b, payload...)
		}
		bomb := compressTo(nil, bytes.Repeat([]byte{0}, 1<<20)) // inflates far past MaxValueSize
		planted := map[string][]byte{
			"empty":                 {},
			"short":                 {headerMagic, formatVersion},
			"bad magic":             append([]byte("JSON"), make([]byte, 20)...),
			"future version":        {headerMagic, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
			"unknown flags":         hdr(codecRaw, 0x80, nil),
			"negative with payload": hdr(codecRaw, flagNegative, []byte("x")),
			"lease without token":   hdr(codecRaw, flagLease, nil),
			"soft expiry overflow":  {headerMagic, formatVersion, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
			"bad deflate":           hdr(codecRaw, flagCompressed, []byte{0xff, 0xfe, 0xfd}),
			"deflate bomb":          hdr(codecRaw, flagCompressed, bomb),
			"json garbage":          hdr(codecJSON, 0, []byte(`{"id": "not a number"`)),
			"msgpack garbage":       hdr(codecMsgpack, 0, []byte{0xc1, 0xff, 0x00}),
			"msgpack truncated":     hdr(codecMsgpack, 0, []byte{0x82, 0xa2, 'i', 'd'}),
			"plain text":            []byte("hello"),
		}
		if err := c.Set(ctx, "bystander", []byte("safe"), time.Minute); err != nil {
			t.Fatal(err)
		}
		plant := func(k string, v []byte) {
			t.Helper()
			if err := tp.rdb.Set(ctx, c.key(k), v, time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
		}
		before := c.LocalStats().DecodeFailures
		reads := []struct {
			name string
			read func(k string) (bool, error)
		}{
			{"Get", func(k string) (bool, error) { _, ok, err := c.Get(ctx, k); return ok, err }},
			{"MGet", func(k string) (bool, error) {
				m, err := c.MGet(ctx, []string{k, "bystander"})
				_, ok := m[k]
				return ok, err
			}},
			{"Typed JSON Get", func(k string) (bool, error) { _, ok, err := js.Get(ctx, k); return ok, err }},
			{"Typed msgpack Get", func(k string) (bool, error) { _, ok, err := mp.Get(ctx, k); return ok, err }},
			{"Typed []byte MGet", func(k string) (bool, error) { m, err := raw.MGet(ctx, []string{k}); _, ok := m[k]; return ok, err }},
			{"GetOrSet", func(k string) (bool, error) {
				v, err := c.GetOrSet(ctx, k, time.Minute, func(context.Context) ([]byte, error) { return []byte("reloaded"), nil })
				if err == nil && string(v) != "reloaded" {
					return true, nil
				}
				return false, err
			}},
			{"Typed GetOrSet", func(k string) (bool, error) {
				u, err := js.GetOrSet(ctx, k, time.Minute, func(context.Context) (user, error) { return user{7, "re"}, nil })
				if err == nil && u != (user{7, "re"}) {
					return true, nil
				}
				return false, err
			}},
		}
		for name, v := range planted {
			for _, r := range reads {
				plant(name, v)
				hit, err := r.read(name)
				if err != nil || hit {
					t.Errorf("%s of %s: hit=%v err=%v; want a miss", r.name, name, hit, err)
				}
			}
		}
		if n := c.LocalStats().DecodeFailures - before; n < uint64(len(planted)) {
			t.Errorf("DecodeFailures rose by %d for %d planted values", n, len(planted))
		}
		if v, ok, err := c.Get(ctx, "bystander"); err != nil || !ok || string(v) != "safe" {
			t.Fatalf("bystander = %q, %v, %v", v, ok, err)
		}
		// A value with a header is not a counter: Counter says corrupt, Incr
		// fails with Redis's own error; neither changes it.
		if _, _, err := c.Counter(ctx, "bystander"); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Counter of a value = %v, want ErrCorrupt", err)
		}
		if _, err := c.Incr(ctx, "bystander", 1, 0); err == nil || !strings.Contains(err.Error(), "not an integer") {
			t.Errorf("Incr of a value = %v", err)
		}
		// A key of another Redis type is not ours to delete: reads and
		// writes through the lease report Redis's WRONGTYPE, naming the key;
		// the foreign key survives.
		if err := tp.rdb.HSet(ctx, c.key("hash"), "f", "v").Err(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Get(ctx, "hash"); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") || !strings.Contains(err.Error(), `"hash"`) {
			t.Errorf("Get of a hash = %v", err)
		}
		if _, err := c.GetOrSet(ctx, "hash", time.Minute, func(context.Context) ([]byte, error) { return []byte("x"), nil }); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
			t.Errorf("GetOrSet of a hash = %v", err)
		}
		if m, err := c.MGet(ctx, []string{"hash", "bystander"}); string(m["bystander"]) != "safe" || m["hash"] != nil {
			t.Errorf("MGet with a hash among the keys = %q, %v", m, err)
		}
		if n, err := tp.rdb.HLen(ctx, c.key("hash")).Result(); err != nil || n != 1 {
			t.Errorf("the foreign hash was touched: %d fields, %v", n, err)
		}
	})
}

// TestNamespacesDoNotLeak: two caches whose prefixes differ by a suffix
// never see each other's keys, whatever key text is used.
func TestNamespacesDoNotLeak(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		a := newCache(t, tp.rdb, Options{})
		b := newCache(t, tp.rdb, Options{Prefix: a.opt.Prefix + "x"})
		for _, k := range []string{"k", "x:v0:k", ":v0:k", "../k", "*"} {
			if err := a.Set(ctx, k, []byte("a"), time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		n, err := b.Clear(ctx, Prefix(""), ClearOptions{})
		if err != nil || n != 0 {
			t.Fatalf("clearing namespace b removed %d keys of a, %v", n, err)
		}
		for _, k := range []string{"k", "x:v0:k", ":v0:k", "../k", "*"} {
			if _, ok, _ := b.Get(ctx, k); ok {
				t.Errorf("b reads a's %q", k)
			}
		}
	})
}
