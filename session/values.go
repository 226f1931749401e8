package session

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Put sets key to val in the request's session. The value is encoded with
// the store's codec now; an encoding error fails the save (ErrorHandler).
// Put after the response is committed is not saved, and logged.
func (m *Manager) Put(ctx context.Context, key string, val any) {
	st := m.state(ctx)
	b, err := m.store.encode(key, val)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.warnIfCommitted("put")
	if err != nil {
		st.encodeErr = fmt.Errorf("session: put: %w", err)
		return
	}
	st.change(key)[key] = entry{v: b, val: val, hasVal: true}
}

// Get returns the value under key, or nil. A value put in this request is
// returned as put; one loaded from Redis is decoded into an any (with the
// JSON codec, numbers come back as float64: use GetInt and friends).
func (m *Manager) Get(ctx context.Context, key string) any {
	st := m.state(ctx)
	st.mu.Lock()
	e, _ := st.lookup(key)
	st.mu.Unlock()
	if e.hasVal {
		return e.val
	}
	var v any
	if err := m.Decode(ctx, key, &v); err != nil {
		return nil
	}
	return v
}

// Decode decodes the value under key into dst (a pointer). It returns
// ErrNoValue when there is none and ErrCorrupt when it cannot be decoded.
func (m *Manager) Decode(ctx context.Context, key string, dst any) error {
	st := m.state(ctx)
	st.mu.Lock()
	e, ok := st.lookup(key)
	st.mu.Unlock()
	if !ok {
		return ErrNoValue
	}
	return e.v.decode(m.store.opts.Codec, key, dst)
}

func getAs[T any](m *Manager, ctx context.Context, key string) T {
	st := m.state(ctx)
	st.mu.Lock()
	e, ok := st.lookup(key)
	st.mu.Unlock()
	var zero T
	if !ok {
		return zero
	}
	if e.hasVal {
		if v, ok := e.val.(T); ok {
			return v
		}
	}
	if v, ok := fastJSON[T](m.store.opts.Codec, e.v); ok {
		return v
	}
	var v T
	if err := e.v.decode(m.store.opts.Codec, key, &v); err != nil {
		return zero
	}
	return v
}

// jsonInt reports whether p, which strconv read as an integer, is one in
// JSON's grammar: -?(0|[1-9][0-9]*).
func jsonInt(p string) bool {
	p = strings.TrimPrefix(p, "-")
	return p != "" && p[0] != '+' && (p[0] != '0' || len(p) == 1)
}

// fastJSON decodes, without allocating, the JSON that the typed getters
// meet most: a string without escapes, an integer, a bool. Anything else
// (and any other codec) is the codec's.
func fastJSON[T any](codec Codec, v sealed) (T, bool) {
	var out T
	if _, ok := codec.(JSONCodec); !ok {
		return out, false
	}
	p := v.payload()
	switch d := any(&out).(type) {
	case *string:
		if len(p) < 2 || p[0] != '"' || p[len(p)-1] != '"' {
			return out, false
		}
		for i := 1; i < len(p)-1; i++ {
			if c := p[i]; c == '\\' || c == '"' || c < 0x20 || c >= 0x80 {
				return out, false // escapes, or bytes json would check or replace
			}
		}
		*d = p[1 : len(p)-1]
	case *int:
		n, err := strconv.Atoi(p)
		if err != nil || !jsonInt(p) {
			return out, false
		}
		*d = n
	case *int64:
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || !jsonInt(p) {
			return out, false
		}
		*d = n
	case *bool:
		switch p {
		case "true":
			*d = true
		case "false":
		default:
			return out, false
		}
	default:
		return out, false
	}
	return out, true
}

// GetString returns the string under key, or "" if missing or not a string.
func (m *Manager) GetString(ctx context.Context, key string) string {
	return getAs[string](m, ctx, key)
}

// GetInt returns the int under key, or 0 if missing or not an int.
func (m *Manager) GetInt(ctx context.Context, key string) int { return getAs[int](m, ctx, key) }

// GetInt64 returns the int64 under key, or 0 if missing or not an int64.
func (m *Manager) GetInt64(ctx context.Context, key string) int64 { return getAs[int64](m, ctx, key) }

// GetFloat returns the float64 under key, or 0 if missing or not a number.
func (m *Manager) GetFloat(ctx context.Context, key string) float64 {
	return getAs[float64](m, ctx, key)
}

// GetBool returns the bool under key, or false if missing or not a bool.
func (m *Manager) GetBool(ctx context.Context, key string) bool { return getAs[bool](m, ctx, key) }

// GetBytes returns the []byte under key, or nil if missing or not bytes.
func (m *Manager) GetBytes(ctx context.Context, key string) []byte { return getAs[[]byte](m, ctx, key) }

// GetTime returns the time.Time under key, or the zero time.
func (m *Manager) GetTime(ctx context.Context, key string) time.Time {
	return getAs[time.Time](m, ctx, key)
}

// Pop returns the value under key and removes it: a flash message.
func (m *Manager) Pop(ctx context.Context, key string) any {
	v := m.Get(ctx, key)
	m.Remove(ctx, key)
	return v
}

// PopString returns the string under key and removes it.
func (m *Manager) PopString(ctx context.Context, key string) string {
	return popAs[string](m, ctx, key)
}

// PopInt returns the int under key and removes it.
func (m *Manager) PopInt(ctx context.Context, key string) int { return popAs[int](m, ctx, key) }

// PopBool returns the bool under key and removes it.
func (m *Manager) PopBool(ctx context.Context, key string) bool { return popAs[bool](m, ctx, key) }

func popAs[T any](m *Manager, ctx context.Context, key string) T {
	v := getAs[T](m, ctx, key)
	m.Remove(ctx, key)
	return v
}

// Remove deletes key from the session. Removing a missing key changes
// nothing and costs no write.
func (m *Manager) Remove(ctx context.Context, key string) {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.lookup(key); !ok {
		return
	}
	st.warnIfCommitted("remove")
	delete(st.change(key), key)
}

// Clear removes every value, keeping the session and its ID.
func (m *Manager) Clear(ctx context.Context) {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	for k := range st.change("") {
		st.change(k)
	}
	clear(st.values)
}

// Exists reports whether the session holds a value under key.
func (m *Manager) Exists(ctx context.Context, key string) bool {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	_, ok := st.lookup(key)
	return ok
}

// Keys returns the session's keys, sorted.
func (m *Manager) Keys(ctx context.Context) []string {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.values == nil {
		return st.snap.rec.keys()
	}
	keys := make([]string, 0, len(st.values))
	for k := range st.values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// UserID returns the user the session belongs to, "" if anonymous.
func (m *Manager) UserID(ctx context.Context) string {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.snap.md.user
}

// Info returns the metadata of the request's session; ok is false when the
// session is not stored yet.
func (m *Manager) Info(ctx context.Context) (info Info, ok bool) {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.id == "" {
		return Info{}, false
	}
	return st.snap.md.info(), true
}
