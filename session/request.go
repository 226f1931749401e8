package session

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// entry is one value of the request's session: as stored, and the Go
// value when the handler put it in this request.
type entry struct {
	v      sealed
	val    any
	hasVal bool
}

// state is the per-request session. Handlers may use it from several
// goroutines, hence the mutex.
type state struct {
	// Context is the request's: the state is the context handlers see,
	// answering Value(m.key) with itself.
	context.Context
	w  writer
	mu sync.Mutex
	m  *Manager
	r  *http.Request
	id string // "" until the session exists in Redis
	// snap is the session as Get read it (into the state: no allocation
	// of its own). snap.md is the request's session metadata from then
	// on (Login replaces it); its values, snap.rec, are read in place
	// until the first change; values is nil until then, and from then on
	// holds every value.
	snap   Session
	values map[string]entry
	// dirty holds the keys changed in this request: set if present in
	// values, deleted otherwise. nil until the first change.
	dirty        map[string]struct{}
	persist      bool
	persistDirty bool
	setCookie    bool // send the current ID
	clearCookie  bool // tell the client to drop its cookie
	committed    bool
	encodeErr    error
	header       http.Header
}

// Value returns the state for its Manager's key and asks the request's
// context for any other.
func (st *state) Value(key any) any {
	if key == st.m.key {
		return st
	}
	return st.Context.Value(key)
}

func (m *Manager) state(ctx context.Context) *state {
	st, ok := ctx.Value(m.key).(*state)
	if !ok {
		panic("session: no session in context: wrap the handler with Manager.LoadAndSave")
	}
	return st
}

// load takes the session that Get read into st.snap.
func (st *state) load() {
	s := &st.snap
	st.id = s.id
	st.persist = s.md.persist || st.m.opts.Cookie.Persist
}

// lookup returns the value under key.
func (st *state) lookup(key string) (entry, bool) {
	if st.values != nil {
		e, ok := st.values[key]
		return e, ok
	}
	v, ok := st.snap.rec.value(key)
	return entry{v: v}, ok
}

// change returns the values to modify and marks key dirty ("" marks
// nothing): the loaded hash is copied into values at the first change.
func (st *state) change(key string) map[string]entry {
	if st.values == nil {
		st.values = make(map[string]entry, len(st.snap.rec.vals))
		st.snap.rec.eachValue(func(k string, v sealed) { st.values[k] = entry{v: v} })
		st.snap.rec = record{}
	}
	if key != "" {
		if st.dirty == nil {
			st.dirty = make(map[string]struct{})
		}
		st.dirty[key] = struct{}{}
	}
	return st.values
}

// save writes the request's changes (at most one Redis call) and sets the
// cookie headers. It runs once, before the response is committed.
func (st *state) save() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.committed = true
	if st.encodeErr != nil {
		return st.encodeErr
	}
	ctx := st.r.Context()
	if len(st.dirty) > 0 || st.persistDirty {
		if st.id == "" {
			if err := st.createLocked(ctx, st.snap.md.user); err != nil {
				return err
			}
		} else {
			set := make(map[string]sealed, len(st.dirty))
			var del []string
			for k := range st.dirty {
				if e, ok := st.lookup(k); ok {
					set[k] = e.v
				} else {
					del = append(del, k)
				}
			}
			var persist *bool
			if st.persistDirty {
				persist = &st.persist
				st.setCookie = true
			}
			_, err := st.m.store.updateSealed(ctx, st.id, set, del, persist, 0)
			switch {
			case errors.Is(err, ErrNotFound):
				// Deleted elsewhere during this request ("log out
				// everywhere"): the change is dropped, never resurrected.
				st.m.opts.Logger.LogAttrs(ctx, slog.LevelInfo, "session: ended during the request; changes dropped",
					slog.String("handle", st.snap.md.handle))
				st.resetLocked()
			case err != nil:
				return err
			}
		}
		st.dirty = nil
		st.persistDirty = false
	}
	h := st.header
	switch {
	case st.setCookie && st.id != "":
		c := st.m.cookie(st.id)
		if st.persist {
			dl := time.UnixMilli(st.snap.md.deadline)
			c.Expires = dl.UTC()
			c.MaxAge = max(1, int(time.Until(dl).Seconds()))
		}
		addCookie(h, c)
	case st.clearCookie:
		c := st.m.cookie("")
		c.MaxAge = -1
		c.Expires = time.Unix(1, 0)
		addCookie(h, c)
	}
	return nil
}

// createLocked stores the request's values as a new session of userID.
func (st *state) createLocked(ctx context.Context, userID string) error {
	values := st.change("")
	enc := make(map[string]sealed, len(values))
	for k, e := range values {
		enc[k] = e.v
	}
	ua := st.r.UserAgent()
	if len(ua) > maxMetaBytes {
		ua = ua[:maxMetaBytes]
	}
	ip := st.m.opts.ClientIP(st.r)
	if len(ip) > maxMetaBytes {
		ip = ip[:maxMetaBytes]
	}
	s, err := st.m.store.createSealed(ctx, userID, enc, CreateOptions{IP: ip, UserAgent: ua, Persist: st.persist})
	if err != nil {
		return err
	}
	st.id, st.snap.md = s.id, s.md
	st.setCookie, st.clearCookie = true, false
	st.dirty = nil
	st.persistDirty = false
	return nil
}

func (st *state) resetLocked() {
	st.id, st.snap.md = "", metadata{}
	st.snap.rec, st.values, st.dirty = record{}, nil, nil
	st.persistDirty = false
	st.setCookie, st.clearCookie = false, true
}

func (st *state) warnIfCommitted(op string) {
	if st.committed {
		st.m.opts.Logger.LogAttrs(st.r.Context(), slog.LevelWarn,
			"session: changed after the response was committed; the change is not saved", slog.String("op", op))
	}
}
