package session

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
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

// parsed is a syntactically valid token split into the parts the store
// needs. tag and handle are substrings of key, so parsing a token costs one
// allocation.
type parsed struct {
	key    string // <prefix>{<tag>}:s:<handle>: the session hash
	tag    string // base64url of the 16-byte tag: goes inside {…} in keys
	handle string // base64url of sha256(token): the session's public handle
}

const (
	tagB64Len    = (tagLen*8 + 5) / 6      // 22
	handleB64Len = (sha256.Size*8 + 5) / 6 // 43
)

// parseToken validates the shape of a session ID without touching Redis:
// exactly TokenLen characters of the base64url alphabet that decode to 48
// bytes. Anything else is ErrMalformedToken. The key is built with prefix.
func parseToken(prefix, tok string) (parsed, error) {
	var src [TokenLen]byte
	var raw [rawTokenLen]byte
	if !decodeToken(tok, &src, &raw) {
		return parsed{}, ErrMalformedToken
	}
	return locate(prefix, raw[:tagLen], sha256.Sum256(src[:])), nil
}

// decodeToken decodes tok into raw, copying it into src, and reports
// whether it has a token's shape. RawURLEncoding accepts non-canonical
// trailing bits only when the length is not a multiple of 4; 64 characters
// has none, so decoding is 1:1 and two different strings can never name
// the same session.
func decodeToken(tok string, src *[TokenLen]byte, raw *[rawTokenLen]byte) bool {
	if len(tok) != TokenLen {
		return false
	}
	copy(src[:], tok)
	n, err := b64.Decode(raw[:], src[:])
	return err == nil && n == rawTokenLen
}

// locate builds the session key from the tag and the token's hash, in one
// allocation.
func locate(prefix string, tag []byte, sum [sha256.Size]byte) parsed {
	var t [tagB64Len]byte
	b64.Encode(t[:], tag)
	var h [handleB64Len]byte
	b64.Encode(h[:], sum[:])
	var b strings.Builder
	b.Grow(len(prefix) + 1 + tagB64Len + 4 + handleB64Len)
	b.WriteString(prefix)
	b.WriteByte('{')
	b.Write(t[:])
	b.WriteString("}:s:")
	b.Write(h[:])
	key := b.String()
	n := len(prefix)
	return parsed{key: key, tag: key[n+1 : n+1+tagB64Len], handle: key[len(key)-handleB64Len:]}
}

// hashToken is the key material stored in Redis in place of the token.
func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return b64.EncodeToString(sum[:])
}

// newToken returns a fresh token for the given 16-byte tag, and its parts
// with the key built with prefix.
func newToken(prefix string, tag []byte) (string, parsed, error) {
	var raw [rawTokenLen]byte
	copy(raw[:tagLen], tag)
	if _, err := rand.Read(raw[tagLen:]); err != nil {
		return "", parsed{}, fmt.Errorf("session: reading crypto/rand: %w", err)
	}
	tok := b64.EncodeToString(raw[:])
	return tok, locate(prefix, raw[:tagLen], sha256.Sum256([]byte(tok))), nil
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
	var src [TokenLen]byte
	var raw [rawTokenLen]byte
	return decodeToken(tok, &src, &raw)
}
