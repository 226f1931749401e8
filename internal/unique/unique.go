// Package unique makes strings unique across processes and time: a random
// prefix per Source and a counter. The cache's lease markers and the
// session store's call nonces are made this way.
package unique

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
)

// Source hands out "<32 random hex digits>:<counter in base 36>". The zero
// value is not usable: call New.
type Source struct {
	prefix string
	seq    atomic.Uint64
}

// New returns a Source with a fresh random prefix.
func New() *Source {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return &Source{prefix: hex.EncodeToString(b[:]) + ":"}
}

// MaxLen bounds the length of what Append appends.
const MaxLen = 32 + 1 + 13

// Append appends the next value to b.
func (s *Source) Append(b []byte) []byte {
	return strconv.AppendUint(append(b, s.prefix...), s.seq.Add(1), 36)
}

// Next returns the next value.
func (s *Source) Next() string { return string(s.Append(make([]byte, 0, MaxLen))) }
