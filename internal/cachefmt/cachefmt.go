// Package cachefmt is the one home of the format of the values package cache
// stores in Redis: the header that precedes every payload. It is internal so
// that the cache package and the load test's audit (which counts the lease
// markers left behind) read one definition; users see none of it.
package cachefmt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrCorrupt is cache.ErrCorrupt: a stored value whose header or payload
// cannot be decoded.
var ErrCorrupt = errors.New("cache: corrupt value")

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
//
// Codec ids 0–15 are the package's (below); 16–255 are free for user codecs.
const (
	CodecRaw     byte = 0 // the []byte API of Cache
	CodecJSON    byte = 1 // Typed with JSONCodec
	CodecMsgpack byte = 2 // Typed with MsgpackCodec

	Magic         byte = 0xCA
	FormatVersion byte = 1
	HeaderLen          = 12

	FlagCompressed byte = 1 << 0
	FlagNegative   byte = 1 << 1
	FlagLease      byte = 1 << 2
	knownFlags          = FlagCompressed | FlagNegative | FlagLease
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

// Append appends the encoded h to dst.
func Append(dst []byte, h Header) []byte {
	var flags byte
	if h.Compressed {
		flags |= FlagCompressed
	}
	if h.Negative {
		flags |= FlagNegative
	}
	if h.Lease {
		flags |= FlagLease
	}
	dst = append(dst, Magic, FormatVersion, h.Codec, flags)
	return binary.BigEndian.AppendUint64(dst, uint64(h.SoftExpiry))
}

// Decode splits a stored value into its header and payload. Anything
// that is not a well-formed version-1 value — too short, wrong magic, another
// format version, unknown flags, a negative marker with a payload, a soft
// expiry out of range, a marker with a payload it must not have — returns an
// error wrapping ErrCorrupt. It never panics
// and the payload aliases b.
func Decode(b []byte) (Header, []byte, error) {
	if len(b) < HeaderLen {
		return Header{}, nil, fmt.Errorf("%w: %d bytes, shorter than the header", ErrCorrupt, len(b))
	}
	if b[0] != Magic {
		return Header{}, nil, fmt.Errorf("%w: bad magic 0x%02x", ErrCorrupt, b[0])
	}
	if b[1] != FormatVersion {
		return Header{}, nil, fmt.Errorf("%w: format version %d, want %d", ErrCorrupt, b[1], FormatVersion)
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
		Compressed: flags&FlagCompressed != 0,
		Negative:   flags&FlagNegative != 0,
		Lease:      flags&FlagLease != 0,
		SoftExpiry: int64(soft),
	}
	payload := b[HeaderLen:]
	if h.Negative && (len(payload) != 0 || h.Compressed || h.Lease) {
		return Header{}, nil, fmt.Errorf("%w: not-found marker with a payload", ErrCorrupt)
	}
	if h.Lease && (len(payload) == 0 || h.Compressed) {
		return Header{}, nil, fmt.Errorf("%w: lease marker without a plain token", ErrCorrupt)
	}
	return h, payload, nil
}
