package cache

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Typed is a cache of T values over a Cache: values are encoded with a Codec
// and carry the codec's id in their header. A stored value that does not
// decode as T with this codec is counted as a decode failure, deleted and
// read as a miss — never returned as a zero-valued hit. Typed holds no state
// of its own; several Typed may share one Cache only if they use distinct key
// spaces or the same T and codec.
//
// With Options.Near, reads are answered from the near tier first and the
// values they read from Redis are published there. The near tier enters
// Typed through one seam, its *near (nil without one), on one code path:
// nearValue, begin, publish and publishAbsent do nothing on a nil near.
type Typed[T any] struct {
	c     *Cache
	near  *near
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
	return &Typed[T]{c: c, near: c.near, codec: codec}
}

// decode unmarshals a payload; a failure counts and deletes the stored value.
func (t *Typed[T]) decode(ctx context.Context, key string, p []byte) (T, bool) {
	var v T
	if err := t.codec.Unmarshal(p, &v); err != nil {
		var zero T
		t.c.invalid(ctx, key)
		return zero, false
	}
	return v, true
}

// Get returns the value under key: (v, true, nil) on a hit, (zero, false,
// nil) on a miss, a stale value, a cached "not found" or a value that does
// not decode (deleted and counted). One command, none on a near-tier hit or
// negative hit; what Redis answered is published in the near tier — the
// value, or a negative entry when it had none — if no invalidation of the
// key arrived since the read was sent.
func (t *Typed[T]) Get(ctx context.Context, key string) (_ T, hit bool, err error) {
	ctx, sp := t.c.trace(ctx, opGet)
	defer func() { sp.SetBool(AttrHit, hit); sp.Done(err) }()
	switch v, st := nearValue[T](t.near, key, true); st {
	case nearHit:
		return v, true, nil
	case nearNegative:
		return v, false, nil
	}
	tok := t.near.begin(key)
	var v T
	e, ok, err := t.c.get(ctx, key, t.codec.ID())
	if err != nil {
		return v, false, err
	}
	if !ok {
		t.c.countOne(false)
		t.near.publishAbsent(key, tok, 0)
		return v, false, nil
	}
	v, ok = t.decode(ctx, key, e.payload) // a failure invalidates key
	t.c.countOne(ok)
	if ok {
		t.near.publish(key, tok, v, e.h.SoftExpiry, len(e.payload))
	}
	return v, ok, nil
}

// Set stores v under key for ttl (0: no expiry). One command; a lost reply
// is handled as in Cache.Set.
func (t *Typed[T]) Set(ctx context.Context, key string, v T, ttl time.Duration) (err error) {
	ctx, sp := t.c.trace(ctx, opSet)
	defer func() { sp.Done(err) }()
	p, err := t.codec.Marshal(v)
	if err != nil {
		return fmt.Errorf("cache: set %q: encode: %w", key, err)
	}
	return t.c.set(ctx, key, t.codec.ID(), p, ttl)
}

// Delete removes keys and their load leases; see Cache.Delete.
func (t *Typed[T]) Delete(ctx context.Context, keys ...string) error {
	return t.c.Delete(ctx, keys...)
}

// MGet returns the hits among keys; see Cache.MGet. Values that do not decode
// are deleted and left out. With a near tier, keys it serves (values and
// negative entries) are answered locally and only the others are read from
// Redis, in one round trip per master; what Redis answered for them is
// published as Get publishes it: the values, and negative entries for the
// keys it had nothing usable for.
func (t *Typed[T]) MGet(ctx context.Context, keys []string) (out map[string]T, err error) {
	ctx, sp := t.c.trace(ctx, opMGet)
	defer func() { sp.SetInt(AttrKeys, len(keys)); sp.SetInt(AttrHits, len(out)); sp.Done(err) }()
	out = make(map[string]T, len(keys))
	rest := nearValues(t.near, keys, out)
	if len(rest) == 0 {
		return out, nil
	}
	var toks []nearToken
	if t.near != nil {
		toks = make([]nearToken, len(rest))
		for i, k := range rest {
			toks[i] = t.near.begin(k)
		}
	}
	res, failed, err := t.c.mgetEntries(ctx, rest, t.codec.ID())
	hits := 0
	for i, r := range res {
		k := rest[i]
		switch r.state {
		case readHit:
			v, ok := t.decode(ctx, k, r.e.payload)
			if !ok {
				continue
			}
			out[k] = v
			hits++
			if toks != nil {
				t.near.publish(k, toks[i], v, r.e.h.SoftExpiry, len(r.e.payload))
			}
		case readMissing:
			if toks != nil {
				t.near.publishAbsent(k, toks[i], 0)
			}
		}
	}
	t.c.count(hits, len(rest)-failed-hits)
	return out, err
}

// MSet stores every value of items for ttl; see Cache.MSet.
func (t *Typed[T]) MSet(ctx context.Context, items map[string]T, ttl time.Duration) error {
	raw, err := t.marshalAll(items)
	if err != nil {
		return err
	}
	return t.c.mset(ctx, raw, ttl, t.codec.ID())
}

// marshalAll encodes every value of items with the codec.
func (t *Typed[T]) marshalAll(items map[string]T) (map[string][]byte, error) {
	raw := make(map[string][]byte, len(items))
	for k, v := range items {
		p, err := t.codec.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("cache: mset %q: encode: %w", k, err)
		}
		raw[k] = p
	}
	return raw, nil
}

// GetOrSet returns the value under key or loads, stores and returns it, with
// the stampede protection and freshness controls of Cache.GetOrSet. A stored
// value that does not decode is deleted and reloaded once.
func (t *Typed[T]) GetOrSet(ctx context.Context, key string, ttl time.Duration, loader LoaderFunc[T]) (T, error) {
	return t.GetOrSetTagged(ctx, key, ttl, loader)
}

// GetOrSetTagged is GetOrSet, the value it loads stored with tags; see
// Cache.GetOrSetTagged.
func (t *Typed[T]) GetOrSetTagged(ctx context.Context, key string, ttl time.Duration, loader LoaderFunc[T], tags ...string) (_ T, err error) {
	ctx, sp := t.c.trace(ctx, opGetOrSet)
	defer func() { sp.Done(err) }()
	enc, err := t.c.loadTags(tags)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("cache: get or set %q: %w", key, err)
	}
	return t.getOrSet(ctx, sp, key, ttl, loader, enc)
}

func (t *Typed[T]) getOrSet(ctx context.Context, sp span, key string, ttl time.Duration, loader LoaderFunc[T], tags []string) (T, error) {
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
	if v, st := nearValue[T](t.near, key, false); st == nearHit {
		sp.SetBool(AttrHit, true)
		return v, nil // a negative entry is a local miss here: the loader may have to run
	}
	tok := t.near.begin(key)
	for attempt := 0; ; attempt++ {
		e, err := t.c.getOrLoad(ctx, key, ttl, t.codec.ID(), load, tags)
		if err != nil {
			return zero, err
		}
		var v T
		if err := t.codec.Unmarshal(e.payload, &v); err != nil {
			t.c.invalid(ctx, key)
			if attempt == 0 {
				continue
			}
			return zero, fmt.Errorf("cache: get or set %q: decode: %w", key, errors.Join(ErrCorrupt, err))
		}
		if !e.stale(time.Now().UnixMilli()) {
			t.near.publish(key, tok, v, e.h.SoftExpiry, len(e.payload))
		}
		return v, nil
	}
}
