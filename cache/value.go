package cache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// The Go side of a stored value: what is written (TTLs, header, payload)
// and what a read makes of it. The byte layout is internal/cachefmt's.

// ttls returns the Redis TTL and the soft expiry (Unix ms, 0 = none) of a
// value written now with ttl: jitter applied, and the TTL lengthened by the
// stale windows so GetOrSet can still serve the value after it goes stale.
func (c *Cache) ttls(ttl time.Duration, now time.Time) (time.Duration, int64) {
	if ttl <= 0 {
		return 0, 0
	}
	if j := c.opt.TTLJitter; j > 0 {
		ttl -= time.Duration(rand.Float64() * j * float64(ttl))
		if ttl < time.Millisecond {
			ttl = time.Millisecond
		}
	}
	soft := now.Add(ttl).UnixMilli()
	return ttl + max(c.opt.StaleWhileRevalidate, c.opt.StaleIfError), soft
}

// encode builds a stored value: header, then the payload, compressed above
// the threshold.
func (c *Cache) encode(codec byte, payload []byte, soft int64, negative bool) ([]byte, error) {
	if len(payload) > c.opt.MaxValueSize {
		return nil, fmt.Errorf("%w: %d bytes > %d", ErrTooLarge, len(payload), c.opt.MaxValueSize)
	}
	h := valueHeader{Codec: codec, SoftExpiry: soft, Negative: negative}
	if t := c.opt.CompressThreshold; t > 0 && len(payload) >= t {
		h.Compressed = true
		buf := appendHeader(make([]byte, 0, headerLen+len(payload)/2), h)
		return compressTo(buf, payload), nil
	}
	buf := make([]byte, 0, headerLen+len(payload))
	return append(appendHeader(buf, h), payload...), nil
}

// entry is a decoded stored value.
type entry struct {
	h       valueHeader
	payload []byte
}

// age is how long e has been past its soft expiry at now (Unix ms);
// negative while it is fresh. Values without a soft expiry never go stale.
func (e entry) age(now int64) time.Duration {
	if e.h.SoftExpiry == 0 {
		return -1
	}
	return time.Duration(now-e.h.SoftExpiry) * time.Millisecond
}

// stale reports whether e is past its soft expiry at now (Unix ms).
func (e entry) stale(now int64) bool { return e.age(now) >= 0 }

// answer reports whether e settles a GetOrSet at now: a fresh value or a
// fresh cached "not found" — not a lease marker, not a stale value.
func (e entry) answer(now int64) bool { return !e.h.Lease && !e.stale(now) }

// hit reports whether a read returns e at now: a fresh value.
func (e entry) hit(now int64) bool { return e.answer(now) && !e.h.Negative }

// decode parses a stored value written with codec. A wrong codec, a corrupt
// header or a payload that does not inflate returns an error wrapping
// ErrCorrupt.
func (c *Cache) decode(b []byte, codec byte) (entry, error) {
	h, p, err := decodeHeader(b)
	if err != nil {
		return entry{}, err
	}
	if h.Lease {
		return entry{h: h, payload: p}, nil // any codec's load may hold it
	}
	if h.Codec != codec {
		return entry{}, fmt.Errorf("%w: codec %d, want %d", ErrCorrupt, h.Codec, codec)
	}
	if h.Compressed {
		if p, err = decompress(p, c.opt.MaxValueSize); err != nil {
			return entry{}, err
		}
	}
	return entry{h: h, payload: p}, nil
}

// dropCorrupt counts a decode failure and deletes the value, so it is read
// as a miss from now on.
func (c *Cache) dropCorrupt(ctx context.Context, rk string) {
	c.st.decodeFailures.Add(1)
	_ = c.rdb.Del(ctx, rk).Err() // best effort: the next read retries it
}
