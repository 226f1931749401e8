package session

import (
	"fmt"
	"time"
)

// Info is a session's metadata, kept apart from its values: building a
// "your sessions" page never decodes a payload.
type Info struct {
	// Handle names the session without being a credential: the base64url
	// SHA-256 of its ID. It is safe to show and log, and RevokeHandle takes it.
	Handle string
	// UserID is the user the session belongs to, "" for an anonymous one.
	UserID string
	// IP and UserAgent are what CreateOptions recorded.
	IP, UserAgent string
	// CreatedAt is when Create ran; LastSeen when the session was last
	// touched (within Options.TouchInterval).
	CreatedAt, LastSeen time.Time
	// ExpiresAt is when the session ends unless used again: the earlier of
	// LastSeen+IdleTimeout and Deadline.
	ExpiresAt time.Time
	// Deadline is the absolute deadline.
	Deadline time.Time
	// IdleTimeout is this session's sliding timeout.
	IdleTimeout time.Duration
	// Persist says whether the client asked to be remembered.
	Persist bool
}

// Session is a loaded session: its ID, metadata, version and encoded
// values. Values are decoded on demand with Decode. A Session is a snapshot;
// change the stored session with Store.Update.
type Session struct {
	id      string
	md      metadata
	version int64
	rec     record // as stored, every value's envelope checked
	codec   Codec
	buf     [8]field // backs rec.vals of a session of up to 8 values
}

// ID returns the session ID: the secret the client presents. Never log it.
func (s *Session) ID() string { return s.id }

// Info returns the session's metadata.
func (s *Session) Info() Info { return s.md.info() }

// Version returns the stored version; every Update increments it. Pass it
// as Changes.IfVersion for an optimistic update.
func (s *Session) Version() int64 { return s.version }

// Keys returns the names of the session's values, sorted.
func (s *Session) Keys() []string { return s.rec.keys() }

// Has reports whether the session holds a value under key.
func (s *Session) Has(key string) bool { _, ok := s.rec.value(key); return ok }

// Raw returns the codec bytes of the value under key (without envelope).
func (s *Session) Raw(key string) ([]byte, bool) {
	v, ok := s.rec.value(key)
	if !ok {
		return nil, false
	}
	return []byte(v.payload()), true
}

// Decode decodes the value under key into dst. It returns ErrNoValue when
// there is none and an error wrapping ErrCorrupt when the codec cannot
// decode it.
func (s *Session) Decode(key string, dst any) error {
	v, ok := s.rec.value(key)
	if !ok {
		return ErrNoValue
	}
	return v.decode(s.codec, key, dst)
}

// String describes the session without its ID. Its receiver is a value,
// so formatting a Session value hides the ID as well as a *Session.
func (s Session) String() string {
	return fmt.Sprintf("session.Session{handle:%s user:%q version:%d values:%d}",
		s.md.handle, s.md.user, s.version, len(s.rec.vals))
}

// GoString is String: %#v must not print the ID either.
func (s Session) GoString() string { return s.String() }

// CreateOptions are the per-session settings of Create.
type CreateOptions struct {
	// IP and UserAgent are device metadata shown by ListByUser. At most 512
	// bytes each.
	IP, UserAgent string
	// IdleTimeout and AbsoluteTimeout override the store's for this
	// session, shorter or longer: Get slides the session's own idle expiry
	// (see Options.TouchInterval) and its own deadline ends it
	// (TestPerSessionTimeouts).
	IdleTimeout, AbsoluteTimeout time.Duration
	// Persist records that the client asked to be remembered.
	Persist bool
}

// Changes is a partial update: only the named keys are written, so
// concurrent updates of different keys all survive. Writers of the same key
// are ordered by Redis and the last one wins, unless IfVersion is set.
type Changes struct {
	// Set maps keys to new values (encoded with the store's codec).
	Set map[string]any
	// Delete lists keys to remove.
	Delete []string
	// Persist, when not nil, records whether the client asked to be
	// remembered.
	Persist *bool
	// IfVersion, when not 0, makes the update apply only if the stored
	// version is still this one; otherwise Update fails with ErrConflict.
	IfVersion int64
}
