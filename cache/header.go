package cache

import "github.com/rediskit/rediskit/internal/cachefmt"

// The stored value format (header layout, codec ids, flags) has one home:
// internal/cachefmt, shared with the load test's audit. These short names
// are the package's view of it.
type valueHeader = cachefmt.Header

const (
	codecRaw     = cachefmt.CodecRaw
	codecJSON    = cachefmt.CodecJSON
	codecMsgpack = cachefmt.CodecMsgpack

	headerMagic    = cachefmt.Magic
	formatVersion  = cachefmt.FormatVersion
	headerLen      = cachefmt.HeaderLen
	flagCompressed = cachefmt.FlagCompressed
	flagNegative   = cachefmt.FlagNegative
	flagLease      = cachefmt.FlagLease
)

func appendHeader(dst []byte, h valueHeader) []byte { return cachefmt.Append(dst, h) }

// decodeHeader splits a stored value into its header and payload; see
// cachefmt.Decode. Errors wrap ErrCorrupt.
func decodeHeader(b []byte) (valueHeader, []byte, error) { return cachefmt.Decode(b) }
