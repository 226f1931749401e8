package cache

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// tier is what Typed needs from the storage below it, keyed by the caller's
// key, payloads already encoded. *Cache is the Redis tier; an in-process near
// cache can implement tier by wrapping a *Cache and be put under Typed
// without changing Typed's API.
type tier interface {
	get(ctx context.Context, key string, codec byte) ([]byte, bool, error)
	set(ctx context.Context, key string, codec byte, p []byte, ttl time.Duration) error
	mget(ctx context.Context, keys []string, codec byte) (map[string][]byte, int, error)
	mset(ctx context.Context, items map[string][]byte, ttl time.Duration, codec byte) error
	getOrLoad(ctx context.Context, key string, ttl time.Duration, codec byte, loader LoaderFunc[[]byte]) (entry, error)
	Delete(ctx context.Context, keys ...string) error
	// invalid reports a stored payload that did not decode: count it, drop it.
	invalid(ctx context.Context, key string)
	// count records read outcomes.
	count(hits, misses int)
}

var _ tier = (*Cache)(nil)

// Typed is a cache of T values over a Cache: values are encoded with a Codec
// and carry the codec's id in their header. A stored value that does not
// decode as T with this codec is counted as a decode failure, deleted and
// read as a miss — never returned as a zero-valued hit. Typed holds no state
// of its own; several Typed may share one Cache only if they use distinct key
// spaces or the same T and codec.
type Typed[T any] struct {
	c     *Cache
	t     tier
	codec Codec
}

// NewTyped returns a Typed over c using codec; a nil codec means JSONCodec.
// It panics if c is nil.
func NewTyped[T any](c *Cache, codec Codec) *Typed[T] {
	if c == nil {
		panic("cache: NewTyped with a nil Cache")
	}
	if codec == nil {
		codec = JSONCodec{}
	}
	return &Typed[T]{c: c, t: c, codec: codec}
}

// decode unmarshals a payload; a failure counts and deletes the stored value.
func (t *Typed[T]) decode(ctx context.Context, key string, p []byte) (T, bool) {
	var v T
	if err := t.codec.Unmarshal(p, &v); err != nil {
		var zero T
		t.t.invalid(ctx, key)
		return zero, false
	}
	return v, true
}

// Get returns the value under key: (v, true, nil) on a hit, (zero, false,
// nil) on a miss, a stale value, a cached "not found" or a value that does
// not decode (deleted and counted). One command.
func (t *Typed[T]) Get(ctx context.Context, key string) (T, bool, error) {
	if t.c.near != nil {
		return t.nearGet(ctx, key)
	}
	var zero T
	p, ok, err := t.t.get(ctx, key, t.codec.ID())
	if err != nil {
		return zero, false, err
	}
	var v T
	if ok {
		v, ok = t.decode(ctx, key, p)
	}
	if ok {
		t.t.count(1, 0)
	} else {
		t.t.count(0, 1)
	}
	return v, ok, nil
}

// Set stores v under key for ttl (0: no expiry). One command; a lost reply
// is handled as in Cache.Set.
func (t *Typed[T]) Set(ctx context.Context, key string, v T, ttl time.Duration) error {
	p, err := t.codec.Marshal(v)
	if err != nil {
		return fmt.Errorf("cache: set %q: encode: %w", key, err)
	}
	return t.t.set(ctx, key, t.codec.ID(), p, ttl)
}

// Delete removes keys and their load leases; see Cache.Delete.
func (t *Typed[T]) Delete(ctx context.Context, keys ...string) error {
	return t.t.Delete(ctx, keys...)
}

// MGet returns the hits among keys; see Cache.MGet. Values that do not decode
// are deleted and left out.
func (t *Typed[T]) MGet(ctx context.Context, keys []string) (map[string]T, error) {
	if t.c.near != nil {
		return t.nearMGet(ctx, keys)
	}
	raw, failed, err := t.t.mget(ctx, keys, t.codec.ID())
	out := make(map[string]T, len(raw))
	for k, p := range raw {
		if v, ok := t.decode(ctx, k, p); ok {
			out[k] = v
		}
	}
	t.t.count(len(out), len(keys)-failed-len(out))
	return out, err
}

// MSet stores every value of items for ttl; see Cache.MSet.
func (t *Typed[T]) MSet(ctx context.Context, items map[string]T, ttl time.Duration) error {
	raw := make(map[string][]byte, len(items))
	for k, v := range items {
		p, err := t.codec.Marshal(v)
		if err != nil {
			return fmt.Errorf("cache: mset %q: encode: %w", k, err)
		}
		raw[k] = p
	}
	return t.t.mset(ctx, raw, ttl, t.codec.ID())
}

// GetOrSet returns the value under key or loads, stores and returns it, with
// the stampede protection and freshness controls of Cache.GetOrSet. A stored
// value that does not decode is deleted and reloaded once.
func (t *Typed[T]) GetOrSet(ctx context.Context, key string, ttl time.Duration, loader LoaderFunc[T]) (T, error) {
	var zero T
	load := func(ctx context.Context) ([]byte, error) {
		v, err := loader(ctx)
		if err != nil {
			return nil, err
		}
		p, err := t.codec.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode: %w", err)
		}
		return p, nil
	}
	var tok nearToken
	if n := t.c.near; n != nil {
		if v, ok := nearValue[T](n, key); ok {
			return v, nil
		}
		tok = n.begin(key)
	}
	for attempt := 0; ; attempt++ {
		e, err := t.t.getOrLoad(ctx, key, ttl, t.codec.ID(), load)
		if err != nil {
			return zero, err
		}
		var v T
		if err := t.codec.Unmarshal(e.payload, &v); err != nil {
			t.t.invalid(ctx, key)
			if attempt == 0 {
				continue
			}
			return zero, fmt.Errorf("cache: get or set %q: decode: %w", key, errors.Join(ErrCorrupt, err))
		}
		if n := t.c.near; n != nil && !e.stale(time.Now().UnixMilli()) {
			n.publish(key, tok, v, e.h.SoftExpiry, len(e.payload))
		}
		return v, nil
	}
}
