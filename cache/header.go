package cache

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Stored value layout (all values written by Set, MSet, GetOrSet and Typed):
//
//	offset size field
//	0      1    magic 0xCA
//	1      1    format version (1)
//	2      1    codec id (CodecRaw, CodecJSON, CodecMsgpack or a user codec id)
//	3      1    flags: bit 0 payload is flate-compressed, bit 1 "not found"
//	            marker, bit 2 load-lease marker (the payload is the owner token)
//	4      8    soft expiry, Unix milliseconds, big endian; 0 = none
//	12     ...  payload
//
// Counters written by Incr/Decr are plain integers without a header.
const (
	headerMagic   byte = 0xCA
	formatVersion byte = 1
	headerLen          = 12

	flagCompressed byte = 1 << 0
	flagNegative   byte = 1 << 1
	flagLease      byte = 1 << 2
	knownFlags          = flagCompressed | flagNegative | flagLease
)

// Header is the decoded header of a stored value.
type Header struct {
	// Version is the format version; only 1 is accepted.
	Version byte
	// Codec is the codec id of the payload.
	Codec byte
	// Compressed reports a flate-compressed payload.
	Compressed bool
	// Negative reports a cached "not found" marker (empty payload).
	Negative bool
	// Lease reports a load-lease marker: a GetOrSet is loading this key and
	// the payload is its owner token. Reads treat it as a miss.
	Lease bool
	// SoftExpiry is the Unix time in milliseconds after which the value is
	// stale; 0 means it never goes stale.
	SoftExpiry int64
}

func appendHeader(dst []byte, h Header) []byte {
	var flags byte
	if h.Compressed {
		flags |= flagCompressed
	}
	if h.Negative {
		flags |= flagNegative
	}
	if h.Lease {
		flags |= flagLease
	}
	dst = append(dst, headerMagic, formatVersion, h.Codec, flags)
	return binary.BigEndian.AppendUint64(dst, uint64(h.SoftExpiry))
}

// DecodeHeader splits a stored value into its header and payload. Anything
// that is not a well-formed version-1 value — too short, wrong magic, another
// format version, unknown flags, a negative marker with a payload, a soft
// expiry out of range, a marker with a payload it must not have — returns an
// error wrapping ErrCorrupt. It never panics
// and the payload aliases b.
func DecodeHeader(b []byte) (Header, []byte, error) {
	if len(b) < headerLen {
		return Header{}, nil, fmt.Errorf("%w: %d bytes, shorter than the header", ErrCorrupt, len(b))
	}
	if b[0] != headerMagic {
		return Header{}, nil, fmt.Errorf("%w: bad magic 0x%02x", ErrCorrupt, b[0])
	}
	if b[1] != formatVersion {
		return Header{}, nil, fmt.Errorf("%w: format version %d, want %d", ErrCorrupt, b[1], formatVersion)
	}
	flags := b[3]
	if flags&^knownFlags != 0 {
		return Header{}, nil, fmt.Errorf("%w: unknown flags 0x%02x", ErrCorrupt, flags)
	}
	soft := binary.BigEndian.Uint64(b[4:12])
	if soft > math.MaxInt64 {
		return Header{}, nil, fmt.Errorf("%w: soft expiry out of range", ErrCorrupt)
	}
	h := Header{
		Version:    b[1],
		Codec:      b[2],
		Compressed: flags&flagCompressed != 0,
		Negative:   flags&flagNegative != 0,
		Lease:      flags&flagLease != 0,
		SoftExpiry: int64(soft),
	}
	payload := b[headerLen:]
	if h.Negative && (len(payload) != 0 || h.Compressed || h.Lease) {
		return Header{}, nil, fmt.Errorf("%w: not-found marker with a payload", ErrCorrupt)
	}
	if h.Lease && (len(payload) == 0 || h.Compressed) {
		return Header{}, nil, fmt.Errorf("%w: lease marker without a plain token", ErrCorrupt)
	}
	return h, payload, nil
}
