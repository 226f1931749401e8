package session

import (
	"context"
	"errors"
)

// RememberMe makes the cookie persistent (true: it expires at the session's
// absolute deadline) or a browser-session cookie (false).
func (m *Manager) RememberMe(ctx context.Context, v bool) {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.warnIfCommitted("remember me")
	st.persist, st.persistDirty = v, true
}

// RenewToken gives the session a new ID now (Store.Rotate), keeping its
// values; the new cookie goes out with the response. Call it on privilege
// change. For a session not stored yet it does nothing: it will get a fresh
// ID when saved. It fails after the response is committed.
func (m *Manager) RenewToken(ctx context.Context) error {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.committed {
		return ErrCommitted
	}
	if st.id == "" {
		return nil
	}
	id, err := m.store.Rotate(ctx, st.id)
	if err != nil {
		return err
	}
	st.id, st.setCookie, st.clearCookie = id, true, false
	st.snap.md.handle = hashToken(id)
	return nil
}

// Login binds the session to userID under a new ID, keeping its values:
// call it when a user signs in. For the same user it is RenewToken. For
// another user (or an anonymous session) the values move to a new session
// in the user's slot and the old one is deleted: two Redis calls, since
// the two live in different hash slots.
func (m *Manager) Login(ctx context.Context, userID string) error {
	if userID == "" {
		return errors.New("session: login: empty user ID")
	}
	st := m.state(ctx)
	st.mu.Lock()
	if st.committed {
		st.mu.Unlock()
		return ErrCommitted
	}
	if st.id != "" && st.snap.md.user == userID {
		st.mu.Unlock()
		return m.RenewToken(ctx)
	}
	defer st.mu.Unlock()
	old := st.id
	if err := st.createLocked(ctx, userID); err != nil {
		return err
	}
	if old != "" {
		if _, err := m.store.Delete(ctx, old); err != nil {
			return err
		}
	}
	return nil
}

// Destroy deletes the session now and tells the client to drop its cookie.
// Values put afterwards start a new anonymous session.
func (m *Manager) Destroy(ctx context.Context) error {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.committed {
		return ErrCommitted
	}
	if st.id != "" {
		if _, err := m.store.Delete(ctx, st.id); err != nil {
			return err
		}
	}
	st.resetLocked()
	return nil
}

// LogoutEverywhere deletes every session of the request's user (all
// devices), including this one, and returns how many there were.
func (m *Manager) LogoutEverywhere(ctx context.Context) (int, error) {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.committed {
		return 0, ErrCommitted
	}
	if st.snap.md.user == "" {
		return 0, errors.New("session: logout everywhere: anonymous session")
	}
	n, err := m.store.DeleteByUser(ctx, st.snap.md.user)
	if err != nil {
		return 0, err
	}
	st.resetLocked()
	return n, nil
}
