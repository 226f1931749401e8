package cache

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// FuzzTypedDecode feeds the read path of Typed — header, inflate, codec —
// with values another client could have planted: any flags and codec id,
// and any payload, under a well-formed header. Decoding either fails with
// an error wrapping ErrCorrupt (header, inflate) or an error of the codec,
// or yields a value; it never panics, and never inflates past the limit.
func FuzzTypedDecode(f *testing.F) {
	js, _ := JSONCodec{}.Marshal(user{1, "ann"})
	mp, _ := MsgpackCodec{}.Marshal(user{1, "ann"})
	big, _ := msgpack.Marshal(make([]user, 50))
	for _, s := range []struct {
		codec, flags byte
		payload      []byte
	}{
		{codecJSON, 0, js}, {codecMsgpack, 0, mp}, {codecMsgpack, 0, big},
		{codecJSON, flagCompressed, compressTo(nil, js)},
		{codecMsgpack, flagCompressed, compressTo(nil, big)},
		{codecJSON, 0, []byte(`{"id":1e400,"name":"\ud800"}`)},
		{codecJSON, 0, []byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`)},
		{codecMsgpack, 0, []byte{0xdd, 0xff, 0xff, 0xff, 0xff}}, // array32 of 4G elements
		{codecMsgpack, 0, []byte{0xdf, 0xff, 0xff, 0xff, 0xff}}, // map32 of 4G entries
		{codecMsgpack, 0, []byte{0xdb, 0xff, 0xff, 0xff, 0xff}}, // str32 of 4 GB
		{codecMsgpack, 0, []byte{0xc6, 0x7f, 0xff, 0xff, 0xff}}, // bin32 of 2 GB
		{codecMsgpack, 0, []byte{0xc7, 0x05, 0xff, 0, 0, 0, 0}}, // timestamp ext
		{codecMsgpack, flagNegative, nil}, {codecJSON, flagLease, []byte("tok")}, {codecJSON, 0xff, nil},
	} {
		f.Add(s.codec, s.flags, s.payload)
	}
	c := &Cache{opt: Options{MaxValueSize: 1 << 16}}
	f.Fuzz(func(t *testing.T, codec, flags byte, payload []byte) {
		b := append([]byte{headerMagic, formatVersion, codec, flags, 0, 0, 0, 0, 0, 0, 0, 0}, payload...)
		for _, cd := range []Codec{JSONCodec{}, MsgpackCodec{}} {
			e, err := c.decode(b, cd.ID())
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("decode error %v does not wrap ErrCorrupt", err)
				}
				continue
			}
			if len(e.payload) > c.opt.MaxValueSize && e.h.Compressed {
				t.Fatalf("inflated to %d bytes, limit %d", len(e.payload), c.opt.MaxValueSize)
			}
			if e.h.Negative || e.h.Lease {
				continue // never handed to the codec
			}
			var u user
			_ = cd.Unmarshal(e.payload, &u)
			var m map[string]any
			_ = cd.Unmarshal(e.payload, &m)
			var s []user
			_ = cd.Unmarshal(e.payload, &s)
			var a any
			_ = cd.Unmarshal(e.payload, &a)
		}
	})
}

// TestMsgpackHostileShapes: MessagePack values that declare more elements
// than they hold, or nest deeper than any real value, are refused before
// msgpack/v5 sizes a slice from them (a fatal out-of-memory before the
// fix) or recurses through them (a fatal stack overflow); valid values
// still decode, however large.
func TestMsgpackHostileShapes(t *testing.T) {
	mp := MsgpackCodec{}
	for name, b := range map[string][]byte{
		"array32 of 4G":    {0xdd, 0xff, 0xff, 0xff, 0xff},
		"array16 of 64K":   {0xdc, 0xff, 0xff, 0xc0},
		"map32 of 4G":      {0xdf, 0xff, 0xff, 0xff, 0xff},
		"str32 of 4 GB":    {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'},
		"bin32 of 2 GB":    {0xc6, 0x7f, 0xff, 0xff, 0xff},
		"ext32 truncated":  {0xc9, 0x00, 0x00, 0x00, 0x10, 0x01},
		"nested 1M deep":   bytes.Repeat([]byte{0x91}, 1<<20),
		"never-used 0xc1":  {0xc1},
		"fixarray missing": {0x93, 0x01},
		"empty":            {},
	} {
		var s []user
		if err := mp.Unmarshal(b, &s); err == nil {
			t.Errorf("%s: decoded into %d elements", name, len(s))
		}
		var a any
		if err := mp.Unmarshal(b, &a); err == nil {
			t.Errorf("%s: decoded into any", name)
		}
	}
	// Valid values of every kind pass the check and round-trip.
	type all struct {
		I   int8
		U   uint64
		F   float32
		D   float64
		S   string
		B   []byte
		T   time.Time
		M   map[string][]int
		N   *int
		Big []user
	}
	in := all{-5, 1 << 63, 1.5, 2.5, strings.Repeat("s", 70000), bytes.Repeat([]byte{1}, 300),
		time.Unix(1700000000, 123).UTC(), map[string][]int{"a": {1, 2}, "b": nil}, nil, make([]user, 70000)}
	b, err := mp.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out all
	if err := mp.Unmarshal(b, &out); err != nil || out.S != in.S || len(out.Big) != 70000 || !out.T.Equal(in.T) || out.U != in.U {
		t.Fatalf("round trip: %v", err)
	}
	deep := append(bytes.Repeat([]byte{0x91}, maxMsgpackDepth-1), 0xc0)
	var a any
	if err := mp.Unmarshal(deep, &a); err != nil {
		t.Fatalf("nesting at the limit: %v", err)
	}
}

// TestPlantedMsgpackBomb: the 5-byte value that declares 4G elements,
// planted in Redis under a Typed[[]user] key, reads as a miss.
func TestPlantedMsgpackBomb(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{})
		list := NewTyped[[]user](c, MsgpackCodec{})
		bomb := []byte{headerMagic, formatVersion, codecMsgpack, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xdd, 0xff, 0xff, 0xff, 0xff}
		if err := tp.rdb.Set(ctx, c.key("users"), bomb, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if v, ok, err := list.Get(ctx, "users"); ok || err != nil {
			t.Fatalf("Get of the bomb = %d users, %v, %v; want a miss", len(v), ok, err)
		}
		if c.LocalStats().DecodeFailures != 1 {
			t.Fatalf("DecodeFailures = %d, want 1", c.LocalStats().DecodeFailures)
		}
	})
}
