package cache

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

type user struct {
	ID   int    `json:"id" msgpack:"id"`
	Name string `json:"name" msgpack:"name"`
}

func TestTypedRoundTripBothCodecs(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{})
		for _, codec := range []Codec{nil, MsgpackCodec{}} {
			tc := NewTyped[user](c, codec)
			key := "u-" + string(rune('a'+tc.codec.ID()))
			if err := tc.Set(ctx, key, user{1, "ann"}, time.Minute); err != nil {
				t.Fatal(err)
			}
			if u, ok, err := tc.Get(ctx, key); err != nil || !ok || u != (user{1, "ann"}) {
				t.Fatalf("Get = %+v, %v, %v", u, ok, err)
			}
			if err := tc.MSet(ctx, map[string]user{"m1": {2, "bo"}, "m2": {3, "cy"}}, time.Minute); err != nil {
				t.Fatal(err)
			}
			got, err := tc.MGet(ctx, []string{"m1", "m2", "none"})
			if err != nil || len(got) != 2 || got["m2"].Name != "cy" {
				t.Fatalf("MGet = %+v, %v", got, err)
			}
			u, err := tc.GetOrSet(ctx, "gos-"+key, time.Minute, func(context.Context) (user, error) { return user{4, "di"}, nil })
			if err != nil || u.Name != "di" {
				t.Fatalf("GetOrSet = %+v, %v", u, err)
			}
			raw, err := tp.rdb.Get(ctx, c.key(key)).Bytes()
			if err != nil {
				t.Fatal(err)
			}
			h, _, err := decodeHeader(raw)
			if err != nil || h.Codec != tc.codec.ID() || h.Version != 1 {
				t.Fatalf("stored header %+v, %v", h, err)
			}
		}
	})
}

func TestDecodeFailuresAreCountedDeletedAndMisses(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{})
		js := NewTyped[user](c, nil)
		mp := NewTyped[user](c, MsgpackCodec{})
		// Written with msgpack, read as JSON: another codec.
		if err := mp.Set(ctx, "other-codec", user{1, "x"}, time.Minute); err != nil {
			t.Fatal(err)
		}
		future := appendHeader(nil, valueHeader{Codec: codecJSON})
		future[1] = 2 // a format version from a later release
		future = append(future, `{"id":1}`...)
		badJSON := append(appendHeader(nil, valueHeader{Codec: codecJSON}), `{"id":"not a number"`...)
		for k, v := range map[string][]byte{
			"no-header":   []byte(`{"id":1,"name":"legacy"}`),
			"future":      future,
			"bad-payload": badJSON,
			"truncated":   {0xCA, 1, 1},
			"bad-flate":   append(appendHeader(nil, valueHeader{Codec: codecJSON, Compressed: true}), 0xff, 0xfe),
		} {
			if err := tp.rdb.Set(ctx, c.key(k), v, time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
		}
		keys := []string{"other-codec", "no-header", "future", "bad-payload", "truncated", "bad-flate"}
		for _, k := range keys {
			u, ok, err := js.Get(ctx, k)
			if err != nil || ok || u != (user{}) {
				t.Fatalf("Get(%q) = %+v, %v, %v; want a miss", k, u, ok, err)
			}
			if n := tp.rdb.Exists(ctx, c.key(k)).Val(); n != 0 {
				t.Fatalf("%q not deleted after a decode failure", k)
			}
		}
		if st := c.LocalStats(); st.DecodeFailures != uint64(len(keys)) || st.Hits != 0 || st.Misses != uint64(len(keys)) {
			t.Fatalf("counters %+v", st)
		}
		// GetOrSet over a corrupt value reloads it.
		if err := tp.rdb.Set(ctx, c.key("g"), "garbage", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		u, err := js.GetOrSet(ctx, "g", time.Minute, func(context.Context) (user, error) { return user{9, "fresh"}, nil })
		if err != nil || u.Name != "fresh" {
			t.Fatalf("GetOrSet over garbage = %+v, %v", u, err)
		}
		// The []byte core refuses a value written by Typed, too.
		if _, ok, err := c.Get(ctx, "g"); ok || err != nil {
			t.Fatalf("raw Get of a JSON value = %v, %v; want a miss", ok, err)
		}
	})
}

func TestCompressionAboveThreshold(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{CompressThreshold: 1024, MaxValueSize: 1 << 20})
		big := bytes.Repeat([]byte("compressible "), 1000)
		if err := c.Set(ctx, "big", big, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := c.Set(ctx, "small", []byte("tiny"), time.Minute); err != nil {
			t.Fatal(err)
		}
		raw := tp.rdb.Get(ctx, c.key("big")).Val()
		h, _, err := decodeHeader([]byte(raw))
		if err != nil || !h.Compressed || len(raw) >= len(big)/4 {
			t.Fatalf("big stored as %d bytes, header %+v, %v", len(raw), h, err)
		}
		rawSmall := tp.rdb.Get(ctx, c.key("small")).Val()
		if h, _, _ := decodeHeader([]byte(rawSmall)); h.Compressed {
			t.Fatal("small value compressed")
		}
		if v, ok, err := c.Get(ctx, "big"); err != nil || !ok || !bytes.Equal(v, big) {
			t.Fatalf("Get big: %d bytes, %v, %v", len(v), ok, err)
		}
		if err := c.Set(ctx, "huge", make([]byte, 2<<20), time.Minute); err == nil || !strings.Contains(err.Error(), "too large") {
			t.Fatalf("Set over MaxValueSize: %v", err)
		}
	})
}
