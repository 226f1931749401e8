package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rediskit/rediskit/retry"
)

// Create stores a new session for userID ("" makes an anonymous session)
// with the given values, and returns it with a fresh ID. With
// Options.MaxPerUser set, the user's oldest sessions are revoked first, or
// Create fails with ErrLimit (Options.OnLimit).
//
// Create is never sent twice: a retry after the session was deleted would
// bring it back. When its reply is lost, the error matches
// retry.ErrAmbiguous and the returned Session is not nil: it holds the ID
// the session has if it was stored, and Get on that ID settles it.
func (s *Store) Create(ctx context.Context, userID string, data map[string]any, opts CreateOptions) (*Session, error) {
	values, err := s.encodeAll(data)
	if err != nil {
		return nil, fmt.Errorf("session: create: %w", err)
	}
	return s.createSealed(ctx, userID, values, opts)
}

// createSealed is Create with encoded values (see "The seam to Manager").
func (s *Store) createSealed(ctx context.Context, userID string, values map[string]sealed, opts CreateOptions) (_ *Session, err error) {
	ctx, sp := s.trace(ctx, opCreate) // here, not in Create: a Manager's save comes this way
	defer func() { sp.Done(err) }()
	if s.isClosed() {
		return nil, ErrClosed
	}
	if len(opts.IP) > maxMetaBytes || len(opts.UserAgent) > maxMetaBytes || len(userID) > maxMetaBytes {
		return nil, fmt.Errorf("session: create: %w: user ID, IP or user agent over %d bytes", ErrTooLarge, maxMetaBytes)
	}
	idle, abs := opts.IdleTimeout, opts.AbsoluteTimeout
	if idle <= 0 {
		idle = s.opts.IdleTimeout
	}
	if abs <= 0 {
		abs = s.opts.AbsoluteTimeout
	}
	var tag []byte
	if userID != "" {
		tag = s.userTag(userID)
	} else {
		t, err := anonTag()
		if err != nil {
			return nil, err
		}
		tag = t
	}
	tok, p, err := newToken(s.opts.Prefix, tag)
	if err != nil {
		return nil, err
	}
	refuse := "0"
	if s.opts.OnLimit == RefuseNew {
		refuse = "1"
	}
	device := packDevice(opts.IP, opts.UserAgent)
	args := []any{s.now(), p.handle, idle.Milliseconds(), abs.Milliseconds(), userID,
		boolArg(opts.Persist), s.opts.MaxPerUser, refuse, s.base(p.tag), body(userID, device, values)}
	rec := recordOf(values)
	sess := &Session{
		id: tok, version: 1, rec: rec, codec: s.opts.Codec,
		md: metadata{handle: p.handle, user: userID, device: device,
			idle: idle.Milliseconds(), persist: opts.Persist},
	}
	// times fills in the session's times: from the script's reply, or
	// estimated from the store's clock when the outcome is unknown.
	times := func(now, exp, dl int64) *Session {
		md := &sess.md
		md.created, md.lastSeen, md.expires, md.deadline = now, now, exp, dl
		return sess
	}
	res, err := s.write(ctx, scriptCreate, once, s.keys(p.tag, p.key, s.indexKey(p.tag)), args...).Slice()
	if err != nil {
		err = wrapWrite("create", err)
		if errors.Is(err, retry.ErrAmbiguous) {
			// The caller learns the ID the session has if it was stored:
			// Get(ID) settles it.
			now := s.localNow()
			return times(now, now+min(idle, abs).Milliseconds(), now+abs.Milliseconds()), err
		}
		return nil, err
	}
	if len(res) < 3 {
		return nil, fmt.Errorf("session: create: %w: unexpected reply", ErrCorrupt)
	}
	s.observe(res[0])
	return times(msOf(res[0]), msOf(res[1]), msOf(res[2])), nil
}

// Get loads a session and records the access: last-seen moves to now and
// the idle expiry slides, at most once per Options.TouchInterval. It
// returns ErrNotFound for a missing, deleted or timed-out session (a
// timed-out one is deleted on the spot), ErrMalformedToken without calling
// Redis, and ErrCorrupt for data it cannot read, which it leaves untouched.
//
// A Get within the touch interval is one GET: the key's TTL already
// ends the session at its idle or absolute timeout, so Redis answers for
// a dead session with nothing. A Get that finds the touch due (or the
// session past a timeout by the store's clock) runs the touch script
// after it: two round trips, once per TouchInterval per session. See
// "Reads and touches" in the package documentation.
func (s *Store) Get(ctx context.Context, id string) (*Session, error) {
	sess := new(Session)
	if err := s.get(ctx, id, sess); err != nil {
		return nil, err
	}
	return sess, nil
}

// get is Get into dst, which the Manager keeps in its request state: a
// request loads its session without allocating one. On an error dst is
// left empty, even when a first read had filled it and the touch then
// found the session dead (TestManagerDeadSessionReadsEmpty).
func (s *Store) get(ctx context.Context, id string, dst *Session) (err error) {
	ctx, sp := s.trace(ctx, opGet)
	defer func() {
		if err != nil {
			*dst = Session{}
		}
		sp.Done(err)
	}()
	p, err := parseToken(s.opts.Prefix, id)
	if err != nil {
		return fmt.Errorf("session: get: %w", err)
	}
	if s.isClosed() {
		return ErrClosed
	}
	if s.fastReads {
		cmd := redis.NewStringCmd(ctx, "get", p.key)
		_ = s.exec.Process(ctx, cmd)
		raw, err := cmd.Result()
		switch {
		case err == nil:
		case err == redis.Nil:
			return fmt.Errorf("session: get: %w", ErrNotFound)
		case redis.HasErrorPrefix(err, "WRONGTYPE"):
			// Stored by the first version: the script converts it.
		default:
			return wrapRedis("get", err)
		}
		if err == nil {
			if err := s.loadInto(dst, id, p.handle, raw); err != nil {
				return fmt.Errorf("session: get: %w", err)
			}
			if !s.touchDue(&dst.md) {
				return nil
			}
		}
	}
	res, err := s.touch(ctx, p)
	if err != nil {
		return wrapRedis("get", err)
	}
	if err := s.loadTouched(dst, id, p.handle, res); err != nil {
		return fmt.Errorf("session: get: %w", err)
	}
	return nil
}

// loadTouched loads the reply of a touch into dst: {the stored string,
// now}, or {the stored string before the touch, now, 1} when scriptTouch
// moved last-seen to now in place.
func (s *Store) loadTouched(dst *Session, id, handle string, res []any) error {
	if len(res) != 2 && len(res) != 3 {
		return fmt.Errorf("%w: unexpected reply", ErrCorrupt)
	}
	raw, _ := res[0].(string)
	if raw == "" {
		return fmt.Errorf("%w: unexpected reply", ErrCorrupt)
	}
	s.observe(res[1])
	if err := s.loadInto(dst, id, handle, raw); err != nil {
		return err
	}
	if len(res) == 3 {
		dst.md.seen(msOf(res[1]))
	}
	return nil
}

// touch runs the touch script for p: scriptTouch, and scriptGet for what
// it hands back (events on, a session to kill or to convert).
func (s *Store) touch(ctx context.Context, p parsed) ([]any, error) {
	touchMs, idleMs := s.opts.TouchInterval.Milliseconds(), s.opts.IdleTimeout.Milliseconds()
	if !s.opts.Events {
		v, err := scriptTouch.RunRepeatable(ctx, s.exec, []string{p.key, s.indexKey(p.tag)}, s.now(), p.handle, touchMs, idleMs).Result()
		if err != nil {
			return nil, err
		}
		if res, ok := v.([]any); ok {
			return res, nil
		}
	}
	return scriptGet.RunRepeatable(ctx, s.exec, s.keys(p.tag, p.key, s.indexKey(p.tag)), s.now(), p.handle, touchMs, idleMs).Slice()
}

// Update applies changes to a live session, keeping its expiry: an Update
// is not use, and neither last-seen nor the idle expiry moves
// (TestPerSessionTimeouts). A Manager request is use because it starts with
// Get. Update never brings back a session that is gone: it returns
// ErrNotFound and writes nothing. It returns the new version.
//
// Update is never sent twice (a second run would bump the version again,
// or fail IfVersion after the first succeeded): when its reply is lost the
// error matches retry.ErrAmbiguous.
func (s *Store) Update(ctx context.Context, id string, ch Changes) (int64, error) {
	values, err := s.encodeAll(ch.Set)
	if err != nil {
		return 0, fmt.Errorf("session: update: %w", err)
	}
	return s.updateSealed(ctx, id, values, ch.Delete, ch.Persist, ch.IfVersion)
}

// updateSealed is Update with encoded values (see "The seam to Manager").
// A key both set and deleted is set.
func (s *Store) updateSealed(ctx context.Context, id string, set map[string]sealed, del []string, persist *bool, ifVersion int64) (_ int64, err error) {
	ctx, sp := s.trace(ctx, opUpdate) // here, not in Update: a Manager's save comes this way
	defer func() { sp.Done(err) }()
	p, err := parseToken(s.opts.Prefix, id)
	if err != nil {
		return 0, fmt.Errorf("session: update: %w", err)
	}
	if s.isClosed() {
		return 0, ErrClosed
	}
	pa := ""
	if persist != nil {
		pa = boolArg(*persist)
	}
	args := make([]any, 0, 5+2*len(set)+len(del))
	args = append(args, s.now(), p.handle, ifVersion, pa, len(set))
	args = appendValues(args, set)
	for _, k := range del {
		if _, ok := set[k]; !ok {
			args = append(args, k)
		}
	}
	res, err := s.write(ctx, scriptUpdate, once, s.keys(p.tag, p.key, s.indexKey(p.tag)), args...).Slice()
	if err != nil {
		return 0, wrapWrite("update", err)
	}
	if len(res) != 3 {
		return 0, fmt.Errorf("session: update: %w: unexpected reply", ErrCorrupt)
	}
	v, _ := res[2].(int64)
	return v, nil
}

// Delete removes a session and its index entry. Deleting a missing session
// is not an error; the result says whether one existed, also when the call
// was re-sent after its reply was lost and the re-send found the session
// gone: the deletion leaves a 10-second tombstone naming the call, which
// the re-send recognises (TestLostReplyMatrix, session.Delete).
func (s *Store) Delete(ctx context.Context, id string) (found bool, err error) {
	ctx, sp := s.trace(ctx, opDelete)
	defer func() { sp.SetBool(AttrFound, found); sp.Done(err) }()
	p, err := parseToken(s.opts.Prefix, id)
	if err != nil {
		return false, fmt.Errorf("session: delete: %w", err)
	}
	if s.isClosed() {
		return false, ErrClosed
	}
	n, err := s.write(ctx, scriptDelete, repeatable, s.deleteKeys(p.tag, p.key, p.handle), s.now(), p.handle, s.nonce()).Int64()
	if err != nil {
		return false, s.wrapRepeated("delete", err)
	}
	return n == 1, nil
}

// Extend moves a live session's absolute deadline to now+d if that is later
// (it never shortens it) and records an access. It returns the new expiry
// and deadline, or ErrNotFound.
func (s *Store) Extend(ctx context.Context, id string, d time.Duration) (expiresAt, deadline time.Time, err error) {
	ctx, sp := s.trace(ctx, opExtend)
	defer func() { sp.Done(err) }()
	p, err := parseToken(s.opts.Prefix, id)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("session: extend: %w", err)
	}
	if d <= 0 {
		return time.Time{}, time.Time{}, fmt.Errorf("session: extend: duration %v must be positive", d)
	}
	if s.isClosed() {
		return time.Time{}, time.Time{}, ErrClosed
	}
	res, err := s.write(ctx, scriptExtend, repeatable, s.keys(p.tag, p.key, s.indexKey(p.tag)),
		s.now(), p.handle, d.Milliseconds()).Slice()
	if err != nil {
		return time.Time{}, time.Time{}, s.wrapRepeated("extend", err)
	}
	if len(res) != 3 {
		return time.Time{}, time.Time{}, fmt.Errorf("session: extend: %w: unexpected reply", ErrCorrupt)
	}
	return msArg(res[1]), msArg(res[2]), nil
}

// Rotate gives a live session a new ID, keeping its values, metadata and
// deadline, and kills the old ID in the same script: call it on login and
// privilege change. It returns the new ID, or ErrNotFound. Rotate is safe
// to send twice (the script recognises its own earlier run), so a client's
// retries may re-send it; when the outcome is still unknown the error
// matches retry.ErrAmbiguous and the returned ID is not empty: it is the
// session's ID if the rotation ran, and Get on it settles which ID is live.
func (s *Store) Rotate(ctx context.Context, id string) (_ string, err error) {
	ctx, sp := s.trace(ctx, opRotate)
	defer func() { sp.Done(err) }()
	p, err := parseToken(s.opts.Prefix, id)
	if err != nil {
		return "", fmt.Errorf("session: rotate: %w", err)
	}
	if s.isClosed() {
		return "", ErrClosed
	}
	raw, _ := b64.DecodeString(p.tag)
	tok, np, err := newToken(s.opts.Prefix, raw)
	if err != nil {
		return "", err
	}
	err = s.write(ctx, scriptRotate, repeatable,
		s.keys(p.tag, p.key, np.key, s.indexKey(p.tag)),
		s.now(), p.handle, np.handle).Err()
	if err != nil {
		err = s.wrapRepeated("rotate", err)
		if errors.Is(err, retry.ErrAmbiguous) {
			return tok, err // the session's ID if the rotation ran: Get settles it
		}
		return "", err
	}
	return tok, nil
}
