package cache

import (
	"bytes"
	"errors"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []valueHeader{
		{Version: 1, Codec: codecRaw},
		{Version: 1, Codec: codecJSON, Compressed: true, SoftExpiry: 1700000000000},
		{Version: 1, Codec: 200, Negative: true},
		{Version: 1, Lease: true},
	} {
		b := appendHeader(nil, h)
		if len(b) != headerLen {
			t.Fatalf("header is %d bytes", len(b))
		}
		if !h.Negative {
			b = append(b, "payload"...)
		}
		got, p, err := decodeHeader(b)
		if err != nil || got != h {
			t.Fatalf("decodeHeader = %+v, %v; want %+v", got, err, h)
		}
		if !h.Negative && string(p) != "payload" {
			t.Fatalf("payload %q", p)
		}
	}
}

func FuzzDecodeHeader(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("plain old value"))
	f.Add(appendHeader(nil, valueHeader{Codec: codecJSON}))
	f.Add(append(appendHeader(nil, valueHeader{Codec: codecMsgpack, SoftExpiry: 42}), 0x81, 0xa1, 0x61, 0x01))
	f.Add(appendHeader(nil, valueHeader{Negative: true}))
	f.Add(append(appendHeader(nil, valueHeader{Lease: true}), "token"...))
	f.Add(appendHeader(nil, valueHeader{Lease: true}))
	f.Add(append(appendHeader(nil, valueHeader{Compressed: true}), 0x01, 0x00, 0x00, 0xff, 0xff))
	f.Add([]byte{0xCA, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0xCA, 1, 1, 0x80, 0xff, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, p, err := decodeHeader(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// Whatever decodes re-encodes to the same bytes.
		again := append(appendHeader(nil, h), p...)
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoded %x, want %x", again, b)
		}
		// And the full decode path never panics on it.
		c := &Cache{opt: Options{MaxValueSize: 1 << 16}}
		_, _ = c.decode(b, h.Codec)
	})
}
