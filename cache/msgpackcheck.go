package cache

import (
	"encoding/binary"
	"errors"
)

// maxMsgpackDepth bounds the nesting of a MessagePack value, as
// encoding/json bounds JSON's at 10000.
const maxMsgpackDepth = 10000

var errMsgpackShape = errors.New("msgpack: malformed or too deeply nested value")

// checkMsgpack walks one MessagePack value without recursion and without
// allocating per element. It fails when a length runs past the data or the
// nesting is deeper than maxMsgpackDepth. msgpack/v5 (v5.4.1) sizes a slice
// from its declared length before reading any element (its allocation
// limit is never applied: decode_slice.go tests the flag with "!= 1"), so
// five planted bytes declaring 4G elements make it allocate past any
// memory; and it recurses once per nesting level, so a few MB of nested
// arrays overflow the goroutine stack. Both are fatal errors, not panics.
// A value that passes holds every element it declares, so decoding it
// allocates in proportion to its size.
func checkMsgpack(b []byte) error {
	var stack [16]uint64
	pending := append(stack[:0], 1) // items still to read at each open level
	for len(pending) > 0 {
		if pending[len(pending)-1] == 0 {
			pending = pending[:len(pending)-1]
			continue
		}
		pending[len(pending)-1]--
		if len(b) == 0 {
			return errMsgpackShape
		}
		c := b[0]
		b = b[1:]
		var skip, items uint64
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		case c >= 0x80 && c <= 0x8f:
			items = 2 * uint64(c&0x0f)
		case c >= 0x90 && c <= 0x9f:
			items = uint64(c & 0x0f)
		case c >= 0xa0 && c <= 0xbf:
			skip = uint64(c & 0x1f)
		default:
			n, size, ok := msgpackLen(c, b)
			if !ok {
				return errMsgpackShape
			}
			b = b[size:]
			switch c {
			case 0xdc, 0xdd:
				items = n
			case 0xde, 0xdf:
				items = 2 * n
			default:
				skip = n
			}
		}
		if skip > uint64(len(b)) || items > uint64(len(b)) {
			return errMsgpackShape
		}
		b = b[skip:]
		if items > 0 {
			if len(pending) > maxMsgpackDepth {
				return errMsgpackShape
			}
			pending = append(pending, items)
		}
	}
	return nil
}

// msgpackLen decodes the length that follows the format byte c: the
// payload bytes to skip (strings, binary, extensions with their type byte,
// numbers) or the element count (arrays, maps); size is how many bytes of
// b the length itself took.
func msgpackLen(c byte, b []byte) (n uint64, size int, ok bool) {
	var width int
	extra := uint64(0)
	switch c {
	case 0xcc, 0xd0:
		return 1, 0, true
	case 0xcd, 0xd1:
		return 2, 0, true
	case 0xca, 0xce, 0xd2:
		return 4, 0, true
	case 0xcb, 0xcf, 0xd3:
		return 8, 0, true
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16 and the type byte
		return 1 + 1<<(c-0xd4), 0, true
	case 0xc4, 0xd9:
		width = 1
	case 0xc5, 0xda, 0xdc, 0xde:
		width = 2
	case 0xc6, 0xdb, 0xdd, 0xdf:
		width = 4
	case 0xc7:
		width, extra = 1, 1 // ext: the type byte follows the length
	case 0xc8:
		width, extra = 2, 1
	case 0xc9:
		width, extra = 4, 1
	default:
		return 0, 0, false // 0xc1 is never used
	}
	if len(b) < width {
		return 0, 0, false
	}
	switch width {
	case 1:
		n = uint64(b[0])
	case 2:
		n = uint64(binary.BigEndian.Uint16(b))
	default:
		n = uint64(binary.BigEndian.Uint32(b))
	}
	return n + extra, width, true
}
