package session

import (
	"context"
	"errors"
	"fmt"
	"sort"
)

// ListByUser returns the metadata of the user's live sessions, oldest
// first, without decoding any value. Expired entries found on the way are
// pruned. A user without sessions gets an empty list.
func (s *Store) ListByUser(ctx context.Context, userID string) ([]Info, error) {
	if userID == "" {
		return nil, errors.New("session: list by user: empty user ID")
	}
	if s.isClosed() {
		return nil, ErrClosed
	}
	tag := b64.EncodeToString(s.userTag(userID))
	res, err := scriptList.RunRepeatable(ctx, s.rdb, s.keys(tag, s.indexKey(tag)), s.now(), s.base(tag), userID).Slice()
	if err != nil {
		return nil, wrapRedis("list by user", err)
	}
	out := make([]Info, 0, len(res))
	for _, r := range res {
		f, ok := r.([]any)
		if !ok || len(f) != 3 {
			return nil, fmt.Errorf("session: list by user: %w: unexpected reply", ErrCorrupt)
		}
		handle, _ := f[0].(string)
		m, _ := f[1].(string)
		x, _ := f[2].(string)
		md := metadata{handle: handle, user: userID}
		if _, err := parseMeta(m, &md); err != nil {
			continue // the script lists only parseable metadata
		}
		md.device = x
		out = append(out, md.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// DeleteByUser deletes every session of the user ("log out everywhere") in
// one script and returns how many there were, also when the call was
// re-sent after its reply was lost (a 10-second tombstone keeps the count:
// TestLostReplyMatrix, session.DeleteByUser).
func (s *Store) DeleteByUser(ctx context.Context, userID string) (n int, err error) {
	ctx, sp := s.trace(ctx, opDeleteByUser)
	defer func() { sp.SetInt(AttrDeleted, n); sp.Done(err) }()
	return s.deleteUser(ctx, "delete by user", userID, "")
}

// RevokeHandle deletes the user's session with the given Info.Handle (from
// ListByUser). It reports whether it existed (after a re-send too, as
// DeleteByUser); a handle of another user's session is never deleted.
func (s *Store) RevokeHandle(ctx context.Context, userID, handle string) (bool, error) {
	if len(handle) != 43 {
		return false, fmt.Errorf("session: revoke handle: %w", ErrMalformedToken)
	}
	if _, err := b64.DecodeString(handle); err != nil {
		return false, fmt.Errorf("session: revoke handle: %w", ErrMalformedToken)
	}
	n, err := s.deleteUser(ctx, "revoke handle", userID, handle)
	return n == 1, err
}

func (s *Store) deleteUser(ctx context.Context, op, userID, handle string) (int, error) {
	if userID == "" {
		return 0, fmt.Errorf("session: %s: empty user ID", op)
	}
	if s.isClosed() {
		return 0, ErrClosed
	}
	tag := b64.EncodeToString(s.userTag(userID))
	tomb := s.tombKey(tag, "u:"+s.nonce()) // this call's
	n, err := s.write(ctx, scriptDeleteUser, repeatable, s.keys(tag, s.indexKey(tag), tomb), s.now(), s.base(tag), userID, handle).Int64()
	if err != nil {
		return 0, s.wrapRepeated(op, err)
	}
	return int(n), nil
}
