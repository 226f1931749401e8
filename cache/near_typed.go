package cache

import (
	"context"
	"fmt"
	"time"
)

// nearValue returns the local value of key if the near tier serves it and
// it holds a T (another Typed over the same Cache may have stored another
// type under the key: that reads as a local miss). No allocation.
func nearValue[T any](n *near, key string) (T, bool) {
	v, ok := n.lookup(key)
	if ok {
		if tv, ok := v.(T); ok {
			n.st.hits.Add(1)
			return tv, true
		}
		n.st.misses.Add(1)
	}
	var zero T
	return zero, false
}

// nearGet is Get with a near tier: the local value, or a read from Redis
// whose decoded value is published locally if no invalidation of the key
// arrived since the read was sent.
func (t *Typed[T]) nearGet(ctx context.Context, key string) (T, bool, error) {
	var zero T
	n := t.c.near
	if v, ok := nearValue[T](n, key); ok {
		return v, true, nil
	}
	tok := n.begin(key)
	e, ok, err := t.c.getEntry(ctx, t.c.key(key), t.codec.ID())
	if err != nil {
		return zero, false, fmt.Errorf("cache: get %q: %w", key, err)
	}
	if !ok || e.h.Negative || e.h.Lease || e.stale(time.Now().UnixMilli()) {
		t.t.count(0, 1)
		return zero, false, nil
	}
	v, ok := t.decode(ctx, key, e.payload)
	if !ok {
		t.t.count(0, 1)
		return zero, false, nil
	}
	t.t.count(1, 0)
	n.publish(key, tok, v, e.h.SoftExpiry, len(e.payload))
	return v, true, nil
}

// nearMGet is MGet with a near tier: local values first, the rest from
// Redis. Values read by MGet are not published locally (the batch read does
// not return their soft expiry); Get and GetOrSet fill the near tier.
func (t *Typed[T]) nearMGet(ctx context.Context, keys []string) (map[string]T, error) {
	n := t.c.near
	out := make(map[string]T, len(keys))
	rest := keys[:0:0]
	for _, k := range keys {
		if v, ok := nearValue[T](n, k); ok {
			out[k] = v
		} else {
			rest = append(rest, k)
		}
	}
	if len(rest) == 0 {
		return out, nil
	}
	raw, failed, err := t.t.mget(ctx, rest, t.codec.ID())
	hits := 0
	for k, p := range raw {
		if v, ok := t.decode(ctx, k, p); ok {
			out[k] = v
			hits++
		}
	}
	t.t.count(hits, len(rest)-failed-hits)
	return out, err
}

// nearInvalidate drops the local copies of keys after a write by this
// process, so it reads its own writes at once; other processes hear of the
// write from Redis.
func (c *Cache) nearInvalidate(keys ...string) {
	if c.near != nil {
		c.near.invalidate(keys...)
	}
}

// nearFlush drops every local entry.
func (c *Cache) nearFlush() {
	if c.near != nil {
		c.near.flush()
	}
}
