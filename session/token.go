package session

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// Token layout: base64url (no padding) of 48 bytes:
//
//	tag[16] || secret[32]
//
// tag is the user's slot tag (a keyed hash of the user ID, or 16 random bytes
// for an anonymous session); secret is 32 bytes from crypto/rand. The whole
// token therefore carries at least 256 bits of randomness, and always 384 bits
// for anonymous sessions. 48 bytes encode to exactly 64 characters.
const (
	tagLen      = 16
	secretLen   = 32
	rawTokenLen = tagLen + secretLen
	// TokenLen is the length in characters of every session ID.
	TokenLen = rawTokenLen / 3 * 4
)

var b64 = base64.RawURLEncoding

// parsed is a syntactically valid token split into the parts the store needs.
type parsed struct {
	tag    string // base64url of the 16-byte tag: goes inside {…} in keys
	handle string // base64url of sha256(token): the session's public handle
}

// parseToken validates the shape of a session ID without touching Redis:
// exactly TokenLen characters of the base64url alphabet that decode to 48
// bytes. Anything else is ErrMalformedToken.
func parseToken(tok string) (parsed, error) {
	if len(tok) != TokenLen {
		return parsed{}, ErrMalformedToken
	}
	var raw [rawTokenLen]byte
	n, err := b64.Decode(raw[:], []byte(tok))
	if err != nil || n != rawTokenLen {
		return parsed{}, ErrMalformedToken
	}
	// RawURLEncoding accepts non-canonical trailing bits only when the length
	// is not a multiple of 4; 64 characters has none, so decoding is 1:1 and
	// two different strings can never name the same session.
	return parsed{
		tag:    b64.EncodeToString(raw[:tagLen]),
		handle: hashToken(tok),
	}, nil
}

// hashToken is the key material stored in Redis in place of the token.
func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return b64.EncodeToString(sum[:])
}

// newToken returns a fresh token for the given 16-byte tag.
func newToken(tag []byte) (string, parsed, error) {
	var raw [rawTokenLen]byte
	copy(raw[:tagLen], tag)
	if _, err := rand.Read(raw[tagLen:]); err != nil {
		return "", parsed{}, fmt.Errorf("session: reading crypto/rand: %w", err)
	}
	tok := b64.EncodeToString(raw[:])
	return tok, parsed{tag: b64.EncodeToString(raw[:tagLen]), handle: hashToken(tok)}, nil
}

// userTag derives the 16-byte slot tag of a user. With a key it is
// HMAC-SHA256(key, userID); without one it is a domain-separated SHA-256.
// Either way the user ID never appears in a key, so no user ID can inject
// braces, glob characters or another user's tag.
func (s *Store) userTag(userID string) []byte {
	var sum []byte
	if len(s.opts.UserKey) > 0 {
		m := hmac.New(sha256.New, s.opts.UserKey)
		m.Write([]byte(userID))
		sum = m.Sum(nil)
	} else {
		h := sha256.New()
		h.Write([]byte("rediskit/session/user/v1\x00"))
		h.Write([]byte(userID))
		sum = h.Sum(nil)
	}
	return sum[:tagLen]
}

// anonTag returns a random tag for a session without a user.
func anonTag() ([]byte, error) {
	t := make([]byte, tagLen)
	if _, err := rand.Read(t); err != nil {
		return nil, fmt.Errorf("session: reading crypto/rand: %w", err)
	}
	return t, nil
}

// ValidToken reports whether tok has the shape of a session ID. It does not
// say whether such a session exists.
func ValidToken(tok string) bool {
	_, err := parseToken(tok)
	return err == nil
}
